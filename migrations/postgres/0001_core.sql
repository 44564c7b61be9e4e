-- Approvals, their votes, and the append-only audit chain.
CREATE TABLE approvals (
    id                 BIGSERIAL PRIMARY KEY,
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
    needed             BIGINT  NOT NULL,
    state              TEXT    NOT NULL,
    created_at         BIGINT  NOT NULL,
    expires_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    decided_by         TEXT,
    result             TEXT
);
CREATE INDEX approvals_state ON approvals (state, expires_at);

CREATE TABLE approval_votes (
    approval_id BIGINT NOT NULL REFERENCES approvals (id),
    person      TEXT   NOT NULL,
    identity    TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (approval_id, person)
);

CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    kind      TEXT   NOT NULL,
    person    TEXT   NOT NULL,
    identity  TEXT   NOT NULL,
    channel   TEXT,
    command   TEXT,
    args      TEXT,
    outcome   TEXT   NOT NULL,
    detail    TEXT,
    prev_hash TEXT   NOT NULL,
    hash      TEXT   NOT NULL
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'audit_log is append-only'; END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- The chain's head: one row, locked by every append so entries never fork.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT   NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
