-- The clock of each deadline that runs while an exchange is in some states
-- (docs/catalogue-format.md, "Deadlines"): computed by the deadline checker
-- from the exchange's history whenever the exchange changed
-- (`computed_for` is the exchange's `updated_at` it was computed for).
-- `due_at` is NULL when the clock is off or stopped; a stopped clock keeps
-- the seconds it had left (NULL: it restarts with the whole period).
CREATE TABLE deadline_clocks (
    exchange_id       uuid NOT NULL,
    deadline          text NOT NULL,
    computed_for      timestamptz NOT NULL,
    started_at        timestamptz,
    due_at            timestamptz,
    stopped_left_secs double precision,
    PRIMARY KEY (exchange_id, deadline)
);
CREATE INDEX deadline_clocks_due ON deadline_clocks (deadline, due_at) WHERE due_at IS NOT NULL;

-- A notice names what missing the deadline means in law, where it means
-- something (e.g. tacit recognition of a professional card).
ALTER TABLE deadline_events ADD COLUMN consequence text;
