-- The audit log becomes one tamper-evident hash chain (docs/audit.md):
-- every entry carries its place (`seq`), the hash of the entry before it
-- and its own hash; the head of the chain is one locked row, so appends are
-- serialized and no two entries share a place. Registry steps are copied
-- into the one log (they stay in `registry_events` for the registry's own
-- history).
ALTER TABLE audit_events
    ADD COLUMN source text NOT NULL DEFAULT 'console',
    ADD COLUMN seq bigint,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN hash bytea,
    -- Entries written before the chain existed: the hub chains them once,
    -- at its first start on this schema, in the order they happened.
    ADD COLUMN before_chain boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX audit_events_seq ON audit_events (seq);

UPDATE audit_events SET before_chain = true;
INSERT INTO audit_events (at, account_id, account_name, action, subject, detail, source, before_chain)
SELECT ev.at, ev.account_id, coalesce(ac.name, 'imi-hub'), ev.action,
       coalesce(ev.authority_id, ev.endpoint_id), ev.detail, 'registry', true
FROM registry_events ev LEFT JOIN accounts ac ON ac.id = ev.account_id;

CREATE TABLE audit_chain_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    seq      bigint NOT NULL,
    hash     bytea NOT NULL
);
INSERT INTO audit_chain_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

-- Signed checkpoints: the chain's head at a moment, signed with the hub's
-- Ed25519 key. A copy can be kept outside the database (`audit.checkpoint_file`).
CREATE TABLE audit_checkpoints (
    seq        bigint PRIMARY KEY,
    hash       bytea NOT NULL,
    signed_at  timestamptz NOT NULL,
    public_key bytea NOT NULL,
    signature  bytea NOT NULL
);
