-- An answer that goes through a reply handle the request carried (e.g. a chat
-- interaction's own response, valid for minutes) before falling back to the
-- channel. Platform-defined text; NULL for ordinary posts and edits.
ALTER TABLE outbox ADD COLUMN reply_handle TEXT;
