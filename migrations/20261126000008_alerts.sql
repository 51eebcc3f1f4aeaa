-- 1:N notifications and alerts: frozen recipients, release (broadcast),
-- national validation, per-recipient deliveries, subscribers.

-- The recipient authorities resolved when a 1:N exchange opened (plus those
-- added by dissemination): everyone can see who got it. NULL for 1:1.
ALTER TABLE exchanges ADD COLUMN recipients text[];
-- When a 1:N exchange was released to its recipients; until then its
-- messages are held (a draft, or waiting for national validation).
ALTER TABLE exchanges ADD COLUMN released_at timestamptz;

-- Deadlines counted from a date in the opening payload (e.g. a PQ alert is
-- due 3 days after the decision). Late = released after due_at.
CREATE TABLE field_deadlines (
    exchange_id uuid NOT NULL REFERENCES exchanges (id),
    deadline    text NOT NULL,
    field_date  date NOT NULL,
    due_at      timestamptz NOT NULL,
    PRIMARY KEY (exchange_id, deadline)
);

-- One row per (copy of a message as a recipient endpoint received it,
-- recipient authority). Queued = its outbox row's batch is unpublished;
-- routed = the batch was published (broker-confirmed) and the row is not
-- unroutable; acknowledged = the recipient system said it has it. Routing is
-- derived from the batch, so confirming 10,000 deliveries is one row update.
CREATE TABLE deliveries (
    outbox_id       uuid NOT NULL,
    authority_id    text NOT NULL,
    message_id      uuid NOT NULL,
    exchange_id     uuid NOT NULL,
    endpoint_id     text NOT NULL,
    acknowledged_at timestamptz,
    reminded_at     timestamptz,
    PRIMARY KEY (outbox_id, authority_id)
);
CREATE INDEX deliveries_exchange ON deliveries (exchange_id);
CREATE INDEX deliveries_unacknowledged ON deliveries (outbox_id)
    WHERE acknowledged_at IS NULL AND reminded_at IS NULL;

CREATE VIEW delivery_status AS
    SELECT d.*, o.batch_id,
           CASE WHEN d.acknowledged_at IS NOT NULL THEN 'acknowledged'
                WHEN b.published_at IS NOT NULL AND o.unroutable_since IS NULL THEN 'routed'
                ELSE 'queued' END AS state,
           CASE WHEN o.unroutable_since IS NULL THEN b.published_at END AS routed_at
    FROM deliveries d
    JOIN outbox o ON o.id = d.outbox_id
    JOIN batches b ON b.id = o.batch_id;

-- Countries (per area) whose national coordinator validates outgoing 1:N
-- messages before they are broadcast (national gatekeeping).
CREATE TABLE validation_gates (
    country    text NOT NULL,
    area       text NOT NULL,
    account_id uuid REFERENCES accounts (id),
    set_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (country, area)
);

-- Broadcast subscribers (e.g. a national dashboard): an endpoint with no
-- authorities that binds its own queues to imi.alerts, for these areas only.
CREATE TABLE subscribers (
    endpoint_id text PRIMARY KEY REFERENCES endpoints (id),
    country     text NOT NULL,
    areas       text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('delivery', 'receipts', 'rejection', 'notice', 'broadcast', 'acknowledgements'));
