-- Coordinators are told when a request of their country is overdue or has
-- been inactive too long: an inbox in the API, read state per account.
CREATE TABLE coordinator_notices (
    id          bigserial PRIMARY KEY,
    country     text NOT NULL,
    area        text NOT NULL,
    region      text,
    kind        text NOT NULL CHECK (kind IN ('overdue', 'inactive')),
    exchange_id uuid NOT NULL REFERENCES exchanges (id),
    procedure   text NOT NULL,
    state       text NOT NULL,
    authority   text NOT NULL,
    due_at      timestamptz NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX coordinator_notices_country ON coordinator_notices (country, created_at);

CREATE TABLE coordinator_notice_reads (
    notice_id  bigint NOT NULL REFERENCES coordinator_notices (id),
    account_id uuid NOT NULL REFERENCES accounts (id),
    read_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notice_id, account_id)
);

ALTER TABLE deadline_events DROP CONSTRAINT deadline_events_kind_check;
ALTER TABLE deadline_events ADD CONSTRAINT deadline_events_kind_check
    CHECK (kind IN ('reminder', 'overdue', 'inactive'));

-- Formal closure (the catalogue's closure states): retention counts from here.
ALTER TABLE exchanges ADD COLUMN closed_at timestamptz;
