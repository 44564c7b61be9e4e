-- Silences and maintenance windows: an alert matching an active silence is
-- stored and shown (marked silenced) but opens no incident. `matchers` is a
-- JSON array of matcher texts (`alertname="X"`); a maintenance window is a
-- silence of kind 'maintenance' with the matcher profile="<p>". Active:
-- ended_at IS NULL AND starts_at <= now < ends_at. Its end is a timer row
-- (kind silence.end), so expiry re-evaluates the groups it covered.
CREATE TABLE silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL CHECK (kind IN ('silence', 'maintenance')),
    matchers   TEXT    NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    comment    TEXT,
    ended_at   INTEGER,
    ended_by   TEXT
);
CREATE INDEX silences_active ON silences (ends_at) WHERE ended_at IS NULL;
