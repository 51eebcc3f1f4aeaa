-- The relay re-publishes a batch's rows in the order the batch wrote them
-- (held messages before the message that released them), not by row id.
ALTER TABLE outbox ADD COLUMN seq bigserial;
CREATE INDEX outbox_batch_seq ON outbox (batch_id, seq);
