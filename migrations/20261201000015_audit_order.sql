-- The audit log reads registry steps and console events merged by time,
-- newest or oldest first: each side needs its time index.
CREATE INDEX registry_events_at ON registry_events (at);
