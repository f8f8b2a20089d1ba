-- Auth profiles: the non-secret part of each profile's config lives in `config`;
-- every secret field is a row of auth_profile_secrets, sealed with AES-256-GCM.
CREATE TABLE auth_profiles (
    id           uuid        PRIMARY KEY,
    workspace_id text        NOT NULL,
    name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    auth_type    text        NOT NULL CHECK (auth_type IN ('bearer', 'api_key', 'basic', 'oauth2_client_credentials')),
    config       jsonb       NOT NULL,
    version      bigint      NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- lets references carry (workspace_id, profile_id) so a reference can never
    -- point at another workspace's profile
    UNIQUE (workspace_id, id)
);

-- names are unique in a workspace, ignoring case; the same index serves the
-- keyset pagination of the list, ordered by (lower(name), id)
CREATE UNIQUE INDEX auth_profiles_workspace_name ON auth_profiles (workspace_id, lower(name));
CREATE INDEX auth_profiles_workspace_order ON auth_profiles (workspace_id, lower(name), id);

CREATE TABLE auth_profile_secrets (
    profile_id uuid  NOT NULL REFERENCES auth_profiles (id) ON DELETE CASCADE,
    field      text  NOT NULL,   -- "token", "password", "client_secret", "pairs/0/value"
    key_id     text  NOT NULL,   -- the master key that sealed it
    nonce      bytea NOT NULL CHECK (octet_length(nonce) = 12),
    ciphertext bytea NOT NULL,   -- ciphertext || 16-byte tag
    PRIMARY KEY (profile_id, field)
);
CREATE INDEX auth_profile_secrets_key_id ON auth_profile_secrets (key_id);

-- Actions and flow nodes that use a profile. ON DELETE RESTRICT makes PostgreSQL
-- itself refuse to delete a profile that is still referenced, whatever the race.
CREATE TABLE auth_profile_references (
    workspace_id text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('pre_call_action', 'during_call_action', 'post_call_action', 'flow_node')),
    ref_id       text        NOT NULL CHECK (char_length(ref_id) BETWEEN 1 AND 200),
    name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    profile_id   uuid        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, kind, ref_id),
    FOREIGN KEY (workspace_id, profile_id) REFERENCES auth_profiles (workspace_id, id) ON DELETE RESTRICT
);
CREATE INDEX auth_profile_references_profile ON auth_profile_references (profile_id);

-- Transactional outbox of profile events (contract section 7), written in the
-- same transaction as the change; a relay publishes rows and sets published_at.
CREATE TABLE profile_events_outbox (
    id           bigserial   PRIMARY KEY,
    event_type   text        NOT NULL,
    workspace_id text        NOT NULL,
    profile_id   uuid        NOT NULL,
    version      bigint      NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX profile_events_outbox_pending ON profile_events_outbox (id) WHERE published_at IS NULL;

CREATE FUNCTION notify_profile_events_outbox() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('authrelay_outbox', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER profile_events_outbox_notify
    AFTER INSERT ON profile_events_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_profile_events_outbox();

-- Who changed what and when. Never holds a secret value: `details` lists the
-- names of changed fields, not their contents.
CREATE TABLE audit_log (
    id           bigserial   PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    actor        text        NOT NULL,
    action       text        NOT NULL,
    workspace_id text        NOT NULL,
    profile_id   uuid,
    version      bigint,
    details      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_profile ON audit_log (workspace_id, profile_id, id);
