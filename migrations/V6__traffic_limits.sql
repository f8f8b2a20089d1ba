-- Traffic limits of a profile (contract §9): {"rate_per_s"?, "burst"?,
-- "max_concurrency"?}, or NULL for none. Not secret: kept in the clear.
ALTER TABLE auth_profiles ADD COLUMN limits jsonb
    CHECK (limits IS NULL OR jsonb_typeof(limits) = 'object');

-- The worker processes that share every profile's limits: each one beats
-- every few seconds; the live ones (seen lately) split each limit between them.
CREATE TABLE fleet_members (
    id         uuid        PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);

-- A 429 with Retry-After pauses every job of the profile, in every process,
-- until then: the process that got it writes the pause, the others read it
-- with their next beat.
CREATE TABLE profile_pauses (
    profile_id   uuid        PRIMARY KEY REFERENCES auth_profiles (id) ON DELETE CASCADE,
    paused_until timestamptz NOT NULL
);
