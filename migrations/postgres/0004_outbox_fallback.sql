-- Where a result may go when the bot cannot post in the channel (not invited):
-- the slash command's response_url (valid 30 minutes, 5 uses).
ALTER TABLE outbox ADD COLUMN fallback_url TEXT;
