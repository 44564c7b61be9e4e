-- An alert's name (its alertname label, else its title, else its key) and
-- severity (its route's level, else its severity label), as its group's
-- message and a storm's digest show them: stored with the record so a
-- digest counts a storm's alerts by name and severity in SQL instead of
-- reading every row's labels.
ALTER TABLE alerts ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN severity TEXT;
UPDATE alerts SET
    name = COALESCE(CASE WHEN jsonb_typeof(labels::jsonb -> 'alertname') = 'string' THEN labels::jsonb ->> 'alertname' END, title, fingerprint),
    severity = COALESCE(level, CASE WHEN jsonb_typeof(labels::jsonb -> 'severity') = 'string' THEN labels::jsonb ->> 'severity' END);
-- How long a storm's digest last took to count (ms): its next render waits
-- at least ten times that, so a huge storm's digest never takes more than a
-- tenth of the poster's time from the store.
ALTER TABLE alert_storms ADD COLUMN render_ms BIGINT NOT NULL DEFAULT 0;
