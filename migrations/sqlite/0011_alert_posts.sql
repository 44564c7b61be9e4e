-- Alert groups in chat: a group whose members changed since its message
-- was last rendered (updated_at > posted_at) is rendered again; the message
-- lives under the key alerts:<group>:<platform>:<channel>.
ALTER TABLE alert_groups ADD COLUMN posted_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX alert_groups_unposted ON alert_groups (updated_at) WHERE updated_at > posted_at;
