-- The backbone: registry (seeded for now), exchanges, messages, outbox, rejections.

CREATE TABLE endpoints (
    id          text PRIMARY KEY,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('pending', 'active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE authorities (
    id          text PRIMARY KEY,
    country     text NOT NULL,
    names       jsonb NOT NULL DEFAULT '{}',
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('pending', 'active', 'suspended')),
    endpoint_id text NOT NULL REFERENCES endpoints (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX authorities_endpoint ON authorities (endpoint_id);

CREATE TABLE authority_procedures (
    authority_id text NOT NULL REFERENCES authorities (id),
    procedure    text NOT NULL,
    PRIMARY KEY (authority_id, procedure)
);

-- One case for its whole life.
CREATE TABLE exchanges (
    id          uuid PRIMARY KEY,
    procedure   text NOT NULL,
    state       text NOT NULL,
    requester   text NOT NULL,
    responder   text NOT NULL,
    opened_by   uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One committed micro-batch. Its outbox rows are published together and
-- marked published with one row update, not one per message.
CREATE TABLE batches (
    id           uuid PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX batches_unpublished ON batches (created_at) WHERE published_at IS NULL;

-- Every accepted message, exactly as received: the raw bytes are the record
-- (with their SHA-256). The payload is not stored a second time as jsonb: the
-- view message_payloads derives it for queries.
CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    exchange_id     uuid NOT NULL REFERENCES exchanges (id),
    message_type    text NOT NULL,
    schema_version  integer NOT NULL,
    sender          text NOT NULL,
    sender_endpoint text NOT NULL,
    recipients      text[] NOT NULL,
    raw             bytea NOT NULL,
    raw_sha256      bytea NOT NULL,
    traceparent     text,
    batch_id        uuid NOT NULL REFERENCES batches (id),
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_exchange ON messages (exchange_id, received_at);

CREATE VIEW message_payloads AS
    SELECT id, convert_from(raw, 'UTF8')::jsonb -> 'payload' AS payload FROM messages;

-- Workflow history: the source of every figure and timeline.
CREATE TABLE transitions (
    id          bigserial PRIMARY KEY,
    exchange_id uuid NOT NULL REFERENCES exchanges (id),
    message_id  uuid NOT NULL,
    action      text NOT NULL,
    from_state  text,
    to_state    text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transitions_exchange ON transitions (exchange_id, id);

-- What the hub must publish, written in the same transaction as the batch
-- that caused it. The batch is marked published after every confirm; a row
-- the broker returned as unroutable is marked so and retried by the relay.
-- Rows of kind 'delivery' take their body and headers from messages.
CREATE TABLE outbox (
    id                uuid PRIMARY KEY,
    batch_id          uuid NOT NULL REFERENCES batches (id),
    kind              text NOT NULL CHECK (kind IN ('delivery', 'receipts', 'rejection')),
    source_message_id text NOT NULL,
    endpoint_id       text NOT NULL,
    recipients        text[] NOT NULL DEFAULT '{}',
    exchange_id       uuid,
    message_type      text NOT NULL,
    headers           jsonb NOT NULL DEFAULT '{}',
    body              bytea,
    created_at        timestamptz NOT NULL DEFAULT now(),
    unroutable_since  timestamptz
);
CREATE INDEX outbox_batch ON outbox (batch_id);
CREATE INDEX outbox_unroutable ON outbox (unroutable_since) WHERE unroutable_since IS NOT NULL;

-- Messages that can never pass, with their reasons, kept for inspection.
CREATE TABLE rejected_messages (
    id           bigserial PRIMARY KEY,
    message_id   text,
    user_id      text,
    message_type text,
    code         text NOT NULL,
    detail       text NOT NULL,
    errors       jsonb NOT NULL DEFAULT '[]',
    body         bytea NOT NULL,
    body_size    integer NOT NULL,
    body_sha256  bytea NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejected_messages_received ON rejected_messages (received_at);
