-- Inbound chat work, stored before the platform is acknowledged.
CREATE TABLE inbox (
    id          BIGINT PRIMARY KEY,
    received_at BIGINT NOT NULL,
    source      TEXT   NOT NULL,
    actor       TEXT   NOT NULL,
    channel     TEXT,
    thread      TEXT,
    text        TEXT   NOT NULL,
    origin      TEXT   NOT NULL,
    dedupe_key  TEXT UNIQUE,
    state       TEXT   NOT NULL DEFAULT 'new'
);
CREATE INDEX inbox_state ON inbox (state, id);
