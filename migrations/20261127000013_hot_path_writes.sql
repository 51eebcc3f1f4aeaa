-- Cheaper writes on the hot path (measured in BENCHMARKS.md).
--
-- outbox_batch_seq (batch_id, seq) serves every lookup by batch_id, so the
-- single-column index only cost one more index insert per outbox row.
DROP INDEX outbox_batch;
-- A receipts row carries every receipt of one sender in one batch and passes
-- the 2 kB TOAST threshold: lz4 compresses it for a fraction of pglz's CPU.
ALTER TABLE outbox ALTER COLUMN body SET COMPRESSION lz4;

-- The four foreign keys a batch's inserts meet (messages -> exchanges and
-- batches, transitions -> exchanges, outbox -> batches) are checked once per
-- statement instead of once per row. A foreign key runs one lookup-and-lock
-- query per inserted row: four per message, about 540 for a batch of 135,
-- which was a third of PostgreSQL's CPU at full load. A statement-level
-- trigger checks all of a statement's rows in one anti-join and raises the
-- same error (SQLSTATE 23503). The delete side is kept by triggers on the
-- referenced tables. Ids are never updated (they are primary keys minted by
-- the hub), so updates of the referenced ids are not checked.
--
-- `OFFSET 0` keeps each NOT EXISTS a per-row primary-key probe: without it
-- the planner may turn the check into a hash anti-join that reads the whole
-- referenced table, which grows without bound (measured: hub p50 at 1,000
-- msg/s went from 6 to 30-60 ms after 40,000 messages).
ALTER TABLE messages DROP CONSTRAINT messages_exchange_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_batch_id_fkey;
ALTER TABLE transitions DROP CONSTRAINT transitions_exchange_id_fkey;
ALTER TABLE outbox DROP CONSTRAINT outbox_batch_id_fkey;

-- Two functions with static SQL rather than one with dynamic SQL: static SQL
-- keeps its plan from call to call, and these run for every batch.
CREATE FUNCTION imi_exchange_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing uuid;
BEGIN
    SELECT n.exchange_id INTO missing FROM new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM exchanges e WHERE e.id = n.exchange_id OFFSET 0) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "%" violates a reference: exchange % does not exist',
            TG_TABLE_NAME, missing USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION imi_batch_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing uuid;
BEGIN
    SELECT n.batch_id INTO missing FROM new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = n.batch_id OFFSET 0) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "%" violates a reference: batch % does not exist',
            TG_TABLE_NAME, missing USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

-- Transition tables allow one event per trigger: inserts and updates apart.
CREATE TRIGGER messages_exchange_inserted AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION imi_exchange_exists();
CREATE TRIGGER messages_exchange_updated AFTER UPDATE ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION imi_exchange_exists();
CREATE TRIGGER messages_batch_inserted AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION imi_batch_exists();
CREATE TRIGGER messages_batch_updated AFTER UPDATE ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION imi_batch_exists();
CREATE TRIGGER transitions_exchange_inserted AFTER INSERT ON transitions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION imi_exchange_exists();
CREATE TRIGGER transitions_exchange_updated AFTER UPDATE ON transitions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION imi_exchange_exists();
CREATE TRIGGER outbox_batch_inserted AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION imi_batch_exists();
CREATE TRIGGER outbox_batch_updated AFTER UPDATE ON outbox
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION imi_batch_exists();

-- The delete side: an exchange or batch that rows still name stays. Nothing
-- in the hub deletes either, so one function serves both, with dynamic SQL;
-- its trigger arguments are pairs of (table, column) that name the row.
CREATE FUNCTION imi_refuse_delete_if_named() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    held uuid;
BEGIN
    FOR i IN 0 .. TG_NARGS / 2 - 1 LOOP
        EXECUTE format('SELECT o.id FROM old_rows o WHERE EXISTS (SELECT 1 FROM %I x WHERE x.%I = o.id) LIMIT 1',
                       TG_ARGV[2 * i], TG_ARGV[2 * i + 1]) INTO held;
        IF held IS NOT NULL THEN
            RAISE EXCEPTION 'delete on table "%" violates a reference: % is still named by %.%',
                TG_TABLE_NAME, held, TG_ARGV[2 * i], TG_ARGV[2 * i + 1] USING ERRCODE = 'foreign_key_violation';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER exchanges_deleted AFTER DELETE ON exchanges
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION imi_refuse_delete_if_named('messages', 'exchange_id', 'transitions', 'exchange_id');
CREATE TRIGGER batches_deleted AFTER DELETE ON batches
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION imi_refuse_delete_if_named('messages', 'batch_id', 'outbox', 'batch_id');
