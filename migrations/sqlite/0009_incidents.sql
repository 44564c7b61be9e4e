-- Incidents: one row per incident (its escalation plan is `plan_from` +
-- `fired` against the level's policy; the pending step and the update
-- reminder are rows of the timer table), every change a row of
-- incident_events (the timeline), and on-call overrides.
CREATE TABLE incidents (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    profile        TEXT    NOT NULL,
    level          TEXT    NOT NULL,
    title          TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    declared_at    INTEGER NOT NULL,
    declared_by    TEXT    NOT NULL,
    plan_from      INTEGER NOT NULL,
    fired          INTEGER NOT NULL DEFAULT 0,
    acked_at       INTEGER,
    acked_by       TEXT,
    resolved_at    INTEGER,
    resolved_by    TEXT,
    summary        TEXT,
    commander      TEXT,
    comms          TEXT,
    scribe         TEXT,
    last_update_at INTEGER NOT NULL,
    destinations   TEXT    NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX incidents_state ON incidents (state, id);

CREATE TABLE incident_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    incident INTEGER NOT NULL REFERENCES incidents (id),
    at       INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    person   TEXT    NOT NULL,
    text     TEXT    NOT NULL
);
CREATE INDEX incident_events_incident ON incident_events (incident, id);

CREATE TABLE oncall_overrides (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    rotation   TEXT    NOT NULL,
    person     TEXT    NOT NULL,
    from_at    INTEGER NOT NULL,
    until_at   INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX oncall_overrides_rotation ON oncall_overrides (rotation, until_at);

-- Finding the incident whose card a thread hangs under.
CREATE INDEX chat_messages_ts ON chat_messages (platform, ts);
