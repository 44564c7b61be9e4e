-- Approvals, their votes, and the append-only audit chain.
CREATE TABLE approvals (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    profile            TEXT    NOT NULL,
    command            TEXT    NOT NULL,
    args               TEXT    NOT NULL,
    display            TEXT    NOT NULL,
    request_hash       TEXT    NOT NULL,
    risk               TEXT    NOT NULL,
    requester          TEXT    NOT NULL,
    requester_identity TEXT    NOT NULL,
    channel            TEXT,
    thread             TEXT,
    roles              TEXT    NOT NULL,
    needed             INTEGER NOT NULL,
    state              TEXT    NOT NULL,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    decided_by         TEXT,
    result             TEXT
);
CREATE INDEX approvals_state ON approvals (state, expires_at);

CREATE TABLE approval_votes (
    approval_id INTEGER NOT NULL REFERENCES approvals (id),
    person      TEXT    NOT NULL,
    identity    TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (approval_id, person)
);

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    person    TEXT    NOT NULL,
    identity  TEXT    NOT NULL,
    channel   TEXT,
    command   TEXT,
    args      TEXT,
    outcome   TEXT    NOT NULL,
    detail    TEXT,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- The chain's head: one row, locked by every append so entries never fork.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
