-- Retention after formal closure (Regulation (EU) 1024/2012 Art. 14): when
-- the procedure's blocking period passed, and when its personal data were
-- erased from the stored messages (the SHA-256 of the original bytes stays).
ALTER TABLE exchanges ADD COLUMN blocked_at timestamptz;
ALTER TABLE exchanges ADD COLUMN personal_data_erased_at timestamptz;
CREATE INDEX exchanges_closed ON exchanges (procedure, closed_at) WHERE closed_at IS NOT NULL;
