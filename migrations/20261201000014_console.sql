-- The web console: people log in with a password (argon2id), hold a
-- session, and what they do and see is recorded.

ALTER TABLE accounts
    ADD COLUMN password_hash   text,
    -- Failed logins since the last success; at the limit the account is
    -- locked until `locked_until`.
    ADD COLUMN failed_logins   integer NOT NULL DEFAULT 0,
    ADD COLUMN locked_until    timestamptz;

-- A console session. The cookie carries a random token; only its SHA-256
-- is stored, so a copy of the table opens no session.
CREATE TABLE console_sessions (
    token_sha256  bytea PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES accounts (id),
    -- Every form of the session carries this token (CSRF).
    csrf          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_account ON console_sessions (account_id);

-- What people did and saw: logins (and failed ones), views of an
-- exchange's content, re-drives and discards, decisions taken in the
-- console. Registry steps stay in `registry_events`; both are the audit
-- log the console shows.
CREATE TABLE audit_events (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    account_id    uuid REFERENCES accounts (id),
    -- The name typed at a failed login, or the account's name.
    account_name  text NOT NULL,
    action        text NOT NULL,
    -- What it concerned: an exchange id, a refused message, a group.
    subject       text,
    detail        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_action ON audit_events (action, at);

-- A refused message keeps what re-driving it needs (its correlation id and
-- the headers the hub reads), and what became of it.
ALTER TABLE rejected_messages
    ADD COLUMN correlation_id text,
    ADD COLUMN headers        jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN resolved_at    timestamptz,
    -- `redriven` or `discarded`
    ADD COLUMN resolution     text CHECK (resolution IN ('redriven', 'discarded')),
    ADD COLUMN resolved_by    text;
CREATE INDEX rejected_messages_open ON rejected_messages (code, received_at) WHERE resolved_at IS NULL;

-- The console's exchange list: newest first, keyset-paginated, optionally by
-- procedure (country and state are filtered while walking these).
CREATE INDEX exchanges_created ON exchanges (created_at DESC, id DESC);
CREATE INDEX exchanges_procedure_created ON exchanges (procedure, created_at DESC, id DESC);
