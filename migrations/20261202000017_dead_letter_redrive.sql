-- How often the hub itself re-drove a dead letter from the ingress queue
-- (dead-lettered after its crashes, not for what it says). It stops after a
-- few tries, so a message that makes the hub fail cannot crash it forever.
ALTER TABLE rejected_messages ADD COLUMN auto_redrives integer NOT NULL DEFAULT 0;
