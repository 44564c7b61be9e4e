-- Which process holds a claimed request or execution, and which processes are
-- alive (a heartbeat): recovery after a crash touches only the claims of
-- processes whose heartbeat lapsed, never those of a live second instance.
CREATE TABLE instances (
    id          TEXT    PRIMARY KEY,
    started_at  BIGINT NOT NULL,
    alive_until BIGINT NOT NULL
);
ALTER TABLE inbox ADD COLUMN owner TEXT;
ALTER TABLE approvals ADD COLUMN owner TEXT;
