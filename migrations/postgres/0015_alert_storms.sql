-- Storm digests: while a channel's alert messages would outrun its pace,
-- the groups routed there are summed up in one digest message per storm
-- (key storm:<id>:<platform>:<channel>), edited as the storm goes on.
-- last_at: the last group change taken into the storm (calm detection);
-- shown_at: the last_at the digest last showed; rendered_at: when.
CREATE TABLE alert_storms (
    id          BIGSERIAL PRIMARY KEY,
    platform    TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    started_at  BIGINT  NOT NULL,
    last_at     BIGINT  NOT NULL,
    shown_at    BIGINT  NOT NULL DEFAULT 0,
    rendered_at BIGINT  NOT NULL DEFAULT 0,
    ended_at    BIGINT,
    incidents   BIGINT  NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX alert_storms_active ON alert_storms (platform, channel) WHERE ended_at IS NULL;

CREATE TABLE alert_storm_groups (
    storm_id BIGINT  NOT NULL REFERENCES alert_storms (id),
    group_id BIGINT  NOT NULL REFERENCES alert_groups (id),
    PRIMARY KEY (storm_id, group_id)
);
