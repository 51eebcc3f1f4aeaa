-- A request split into a child request for another authority keeps a link to
-- its parent, so both sides follow one case.
ALTER TABLE exchanges ADD COLUMN parent_id uuid REFERENCES exchanges (id);
CREATE INDEX exchanges_parent ON exchanges (parent_id) WHERE parent_id IS NOT NULL;
