-- Alert ingest. An alert group is one route's group (its group_by labels):
-- the unit the chat message of a later slice shows and edits (msg_key,
-- empty until then). An alert is one record per (group, scope, fingerprint)
-- while it is open; once resolved, the same key firing again opens a new
-- record. Times are milliseconds since the epoch.
CREATE TABLE alert_groups (
    id           BIGSERIAL PRIMARY KEY,
    route        TEXT    NOT NULL,
    group_key    TEXT    NOT NULL,
    profile      TEXT,
    destinations TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('firing', 'resolved')),
    msg_key      TEXT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    UNIQUE (route, group_key)
);
CREATE INDEX alert_groups_state ON alert_groups (state, updated_at);

CREATE TABLE alerts (
    id             BIGSERIAL PRIMARY KEY,
    group_id       BIGINT  NOT NULL REFERENCES alert_groups (id),
    format         TEXT    NOT NULL,
    scope          TEXT    NOT NULL,
    fingerprint    TEXT    NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('firing', 'acknowledged', 'resolved')),
    title          TEXT,
    labels         TEXT    NOT NULL,
    annotations    TEXT    NOT NULL,
    level          TEXT,
    level_rank     BIGINT,
    opens_incident BIGINT  NOT NULL,
    starts_at      BIGINT,
    ends_at        BIGINT,
    generator_url  TEXT,
    silence_url    TEXT,
    dashboard_url  TEXT,
    panel_url      TEXT,
    image_url      TEXT,
    created_at     BIGINT  NOT NULL,
    changed_at     BIGINT  NOT NULL,
    last_seen_at   BIGINT  NOT NULL
);
-- At most one open record per key and group: repeats update it.
CREATE UNIQUE INDEX alerts_open ON alerts (group_id, scope, fingerprint) WHERE status <> 'resolved';
-- Acknowledge and resolve find a key's records whatever group they are in.
-- (A group's open members are found through alerts_open.)
CREATE INDEX alerts_key ON alerts (scope, fingerprint, status);
