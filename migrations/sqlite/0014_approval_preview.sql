-- What a destructive command's preview found when its approval was opened
-- (JSON: count, samples, the item ids execution is bound to); NULL without one.
ALTER TABLE approvals ADD COLUMN preview TEXT;
