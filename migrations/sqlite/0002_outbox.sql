-- The outbox: every chat post or edit is a row first; the sender delivers
-- pending rows oldest-first per channel. Times are milliseconds since the epoch.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    platform   TEXT    NOT NULL,
    channel    TEXT    NOT NULL,
    op         TEXT    NOT NULL CHECK (op IN ('post', 'update', 'ephemeral')),
    msg_key    TEXT,
    thread_ts  TEXT,
    thread_key TEXT,
    user_id    TEXT,
    body       TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'superseded', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at    INTEGER,
    last_error TEXT
);
CREATE INDEX outbox_state ON outbox (state, channel, id);
-- Collapsing edits and resolving keys look rows up by message key.
CREATE INDEX outbox_key ON outbox (platform, msg_key, state);

-- Where a message we posted under a key lives, so later edits and thread
-- replies can find its ts.
CREATE TABLE chat_messages (
    platform TEXT NOT NULL,
    msg_key  TEXT NOT NULL,
    channel  TEXT NOT NULL,
    ts       TEXT NOT NULL,
    PRIMARY KEY (platform, msg_key)
);
