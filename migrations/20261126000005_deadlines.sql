-- Deadlines: every reminder and overdue notice fired, once per exchange,
-- deadline, kind and due time (the primary key makes a second hub instance's
-- attempt a no-op, and a restarted hub finds what already fired).
CREATE TABLE deadline_events (
    exchange_id  uuid NOT NULL REFERENCES exchanges (id),
    deadline     text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('reminder', 'overdue')),
    due_at       timestamptz NOT NULL,
    authority    text NOT NULL,
    fired_at     timestamptz NOT NULL,
    PRIMARY KEY (exchange_id, deadline, kind, due_at)
);
CREATE INDEX deadline_events_overdue ON deadline_events (fired_at) WHERE kind = 'overdue';

ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('delivery', 'receipts', 'rejection', 'notice'));
