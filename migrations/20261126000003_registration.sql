-- Registration workflow: applications, coordinators' scope, and the record
-- of every registry step (who did what, when).

-- A delegated coordinator acts for one legislative area of its country; a
-- national coordinator (area NULL) for the whole country.
ALTER TABLE accounts ADD COLUMN area text;

-- New endpoints and authorities start pending; nothing is usable before approval.
ALTER TABLE endpoints ALTER COLUMN status SET DEFAULT 'pending';
ALTER TABLE authorities ALTER COLUMN status SET DEFAULT 'pending';

-- The procedures an authority applied for (granted ones are in authority_procedures).
ALTER TABLE authorities ADD COLUMN requested_procedures text[] NOT NULL DEFAULT '{}';

CREATE TABLE registry_events (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    account_id   uuid REFERENCES accounts (id),
    action       text NOT NULL,
    authority_id text,
    endpoint_id  text,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX registry_events_authority ON registry_events (authority_id, at);

ALTER TABLE authorities DROP CONSTRAINT authorities_status_check;
ALTER TABLE authorities ADD CONSTRAINT authorities_status_check
    CHECK (status IN ('pending', 'active', 'suspended', 'refused'));

-- Regional delegation: a coordinator delegated for a region of its country
-- decides on the authorities of that region.
ALTER TABLE accounts ADD COLUMN region text;
ALTER TABLE authorities ADD COLUMN region text;

-- One national coordinator (no area, no region) per country.
CREATE UNIQUE INDEX accounts_one_national_coordinator ON accounts (country)
    WHERE role = 'coordinator' AND area IS NULL AND region IS NULL AND revoked_at IS NULL;
