-- Every audit entry says where it came from (console, slack, discord, alert,
-- timer, system), and which hash encoding its row uses: rows from before this
-- migration keep encoding 1 (serde_json of the entry), new rows use 2 (fixed,
-- length-prefixed fields; see src/audit.rs).
ALTER TABLE audit_log ADD COLUMN source TEXT;
ALTER TABLE audit_log ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1;
