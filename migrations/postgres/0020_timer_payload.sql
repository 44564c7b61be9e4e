-- A scheduled action (a watch's next run, a command's follow-up) keeps what
-- to run, where to answer and which message to edit with its timer row, as
-- JSON the engine reads; other kinds leave it empty.
ALTER TABLE timers ADD COLUMN payload TEXT;
