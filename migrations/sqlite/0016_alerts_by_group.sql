-- A group's members and counts (its message) are read by group: without this
-- index every render scanned the whole alerts table.
CREATE INDEX alerts_group ON alerts (group_id, status, changed_at);
