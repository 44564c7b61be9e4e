-- A group with an alert at or above its route's threshold opens an incident
-- (once: the link is set conditionally) and resolves it when the group resolves.
ALTER TABLE alert_groups ADD COLUMN incident_id BIGINT;
