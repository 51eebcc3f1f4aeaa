-- Data-subject requests (docs/data-subjects.md).

-- Who each stored message is about: keyed hashes (HMAC-SHA256 under the
-- hub's index key) of the identities its payload names (name with date of
-- birth, or a national identifier). No readable copy of a name is kept
-- here; without the key a guess cannot be checked. Written with the
-- message, deleted when its exchange's personal data are erased.
CREATE TABLE subject_index (
    key         bytea NOT NULL,
    message_id  uuid NOT NULL,
    exchange_id uuid NOT NULL,
    PRIMARY KEY (key, message_id)
);
CREATE INDEX subject_index_exchange ON subject_index (exchange_id);

-- A person's request about their data in IMI: access, correction, or an
-- objection (contest). It is answered within `due_at` (one month).
CREATE TABLE subject_requests (
    id            uuid PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('access', 'correction', 'contest')),
    -- The language the person asked in; the export speaks it.
    language      text NOT NULL,
    -- The office's own reference (a letter's number): never a name.
    reference     text NOT NULL,
    -- The person's keyed hashes, to search again.
    keys          bytea[] NOT NULL,
    -- The coordinator's country handling it; NULL when operators do.
    country       text,
    received_at   timestamptz NOT NULL,
    due_at        timestamptz NOT NULL,
    answered_at   timestamptz,
    answer        text,
    opened_by     text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subject_requests_open ON subject_requests (due_at) WHERE answered_at IS NULL;

-- The exchanges a request concerns (found when it was opened, or since).
CREATE TABLE subject_request_exchanges (
    request_id  uuid NOT NULL REFERENCES subject_requests (id),
    exchange_id uuid NOT NULL REFERENCES exchanges (id),
    PRIMARY KEY (request_id, exchange_id)
);

-- A correction or an objection recorded on an exchange; its text is the
-- person's statement (personal data, erased with the exchange's).
CREATE TABLE subject_statements (
    id          bigserial PRIMARY KEY,
    request_id  uuid NOT NULL REFERENCES subject_requests (id),
    exchange_id uuid NOT NULL REFERENCES exchanges (id),
    kind        text NOT NULL CHECK (kind IN ('correction', 'contest')),
    statement   text,
    recorded_by text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subject_statements_exchange ON subject_statements (exchange_id);

-- The one-month deadline's notices, each fired once (whatever the number
-- of hub instances).
CREATE TABLE subject_request_notices (
    request_id uuid NOT NULL REFERENCES subject_requests (id),
    kind       text NOT NULL CHECK (kind IN ('reminder', 'overdue')),
    due_at     timestamptz NOT NULL,
    fired_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, kind)
);
