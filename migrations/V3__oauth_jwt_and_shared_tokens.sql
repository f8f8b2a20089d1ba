-- OAuth 2.0 tokens shared by every worker process (AUTHRELAY_TOKEN_SHARING=fleet):
-- one row per (profile, version, token-request parameters), the token sealed with
-- the key ring like every other secret and bound to its row by associated data.
-- A cache: rows may be deleted at any time (a 401, a profile change, key rotation).
CREATE TABLE shared_tokens (
    profile_id    uuid        NOT NULL REFERENCES auth_profiles (id) ON DELETE CASCADE,
    version       bigint      NOT NULL,
    params_digest bytea       NOT NULL CHECK (octet_length(params_digest) = 32),
    -- SHA-256 of the token: which token a row holds, so a 401 drops only the one it rejected
    token_digest  bytea       NOT NULL CHECK (octet_length(token_digest) = 32),
    key_id        text        NOT NULL,
    nonce         bytea       NOT NULL CHECK (octet_length(nonce) = 12),
    ciphertext    bytea       NOT NULL,
    token_type    text        NOT NULL,
    scope         text,
    expires_in_ms bigint,                 -- as the token endpoint stated it, if it did
    lifetime_ms   bigint      NOT NULL,   -- expires_in or the configured default
    expires_at    timestamptz NOT NULL,   -- on the database's clock, so every process agrees
    fetched_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (profile_id, version, params_digest)
);
CREATE INDEX shared_tokens_key_id ON shared_tokens (key_id);

-- The JWT-bearer grant is a profile type of its own.
ALTER TABLE auth_profiles DROP CONSTRAINT auth_profiles_auth_type_check;
ALTER TABLE auth_profiles ADD CONSTRAINT auth_profiles_auth_type_check
    CHECK (auth_type IN ('bearer', 'api_key', 'basic', 'oauth2_client_credentials', 'oauth2_jwt_bearer'));
