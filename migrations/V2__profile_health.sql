-- Credential health (contract section 10). Workers aggregate the outcomes of
-- their jobs in memory and write them here in batches: one row per profile a
-- job has used (no row: `unused`), and one row per profile and hour with that
-- hour's counts, summed over the last 24 hours on read. Both go with their profile.
CREATE TABLE profile_health (
    profile_id           uuid        PRIMARY KEY REFERENCES auth_profiles (id) ON DELETE CASCADE,
    state                text        NOT NULL CHECK (state IN ('ok', 'failing', 'deauthorized')),
    -- when the profile entered `state` (as well as the flushing worker can tell)
    state_since          timestamptz NOT NULL,
    last_used_at         timestamptz NOT NULL,
    last_success_at      timestamptz,
    last_failure_at      timestamptz,
    last_failure_kind    text,
    last_failure_status  integer,
    -- built from the error kind, the status and the target's host: never a response body
    last_failure_message text CHECK (char_length(last_failure_message) <= 300),
    -- 401/403 answers to static credentials in a row, over every worker (3 deauthorize)
    consecutive_refusals integer     NOT NULL DEFAULT 0,
    -- a profile update starts health afresh: failures before it no longer make it `failing`
    cleared_at           timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX profile_health_state ON profile_health (state) WHERE state <> 'ok';

CREATE TABLE profile_health_hourly (
    profile_id uuid        NOT NULL REFERENCES auth_profiles (id) ON DELETE CASCADE,
    hour       timestamptz NOT NULL,   -- the start of the hour (UTC)
    succeeded  bigint      NOT NULL DEFAULT 0,
    failed     bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (profile_id, hour)
);
CREATE INDEX profile_health_hourly_hour ON profile_health_hourly (hour);

-- The audit API pages a workspace's rows newest first.
CREATE INDEX audit_log_workspace ON audit_log (workspace_id, id);
