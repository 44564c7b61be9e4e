-- The inbox without the UNIQUE index on dedupe_key. Its keys (Slack trigger
-- ids, event ids, Discord interaction ids) are random, so every stored request
-- wrote into a random leaf of that index: about three times the WAL pages per
-- commit, and the ack path's throughput halved. On SQLite one process owns
-- the file (a second `serve` refuses to start), so replays are refused in that
-- process's memory (store/replay.rs), reloaded from the recent rows' keys at
-- the first write. PostgreSQL keeps its UNIQUE index: there several instances
-- share the table.
CREATE TABLE inbox_next (
    id          INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    channel     TEXT,
    thread      TEXT,
    text        TEXT    NOT NULL,
    origin      TEXT    NOT NULL,
    dedupe_key  TEXT,
    state       TEXT    NOT NULL DEFAULT 'new',
    owner       TEXT
);
INSERT INTO inbox_next (id, received_at, source, actor, channel, thread, text, origin, dedupe_key, state, owner)
    SELECT id, received_at, source, actor, channel, thread, text, origin, dedupe_key, state, owner FROM inbox;
DROP TABLE inbox;
ALTER TABLE inbox_next RENAME TO inbox;
CREATE INDEX inbox_state ON inbox (state, id);
