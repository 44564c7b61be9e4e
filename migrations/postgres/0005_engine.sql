-- The chat-neutral engine: where an approval was requested is stored data
-- (its platform shows the card), and every deadline is a row of one timer
-- table (approval expiry now; escalation steps and reminders next).
ALTER TABLE approvals ADD COLUMN origin_platform TEXT;
ALTER TABLE approvals ADD COLUMN origin TEXT;
-- Approvals from before this migration: a Slack requester means a Slack card.
UPDATE approvals SET origin_platform = 'slack', origin = '{}'
WHERE requester_identity LIKE 'slack:%';

-- Due items: one row per (kind, key); the loop sleeps until MIN(due_at).
-- claimed_until is a lease: an instance firing an item holds it until then.
CREATE TABLE timers (
    kind          TEXT    NOT NULL,
    item          TEXT    NOT NULL,
    due_at        BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, item)
);
CREATE INDEX timers_due ON timers (due_at);
INSERT INTO timers (kind, item, due_at)
SELECT 'approval.expire', CAST(id AS TEXT), expires_at FROM approvals WHERE state = 'pending';

-- Outbox rows are claimed by one sender at a time (two instances never send
-- a row twice; a dead instance's claims lapse after the lease).
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;
