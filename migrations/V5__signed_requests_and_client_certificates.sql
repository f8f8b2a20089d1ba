-- Signed requests (hmac, aws_sigv4) and client certificates (mtls) are profile
-- types of their own; a client certificate on any other type lives in its
-- config (public part) and sealed secrets like every other field.
ALTER TABLE auth_profiles DROP CONSTRAINT auth_profiles_auth_type_check;
ALTER TABLE auth_profiles ADD CONSTRAINT auth_profiles_auth_type_check
    CHECK (auth_type IN ('bearer', 'api_key', 'basic', 'oauth2_client_credentials', 'oauth2_jwt_bearer',
                         'hmac', 'aws_sigv4', 'mtls'));

-- When the profile's client certificate (type mtls, or the client_certificate
-- of any other type) expires: written with every version, read by the
-- authrelay_certificates_expiring gauge.
ALTER TABLE auth_profiles ADD COLUMN certificate_not_after timestamptz;
CREATE INDEX auth_profiles_certificate_not_after ON auth_profiles (certificate_not_after)
    WHERE certificate_not_after IS NOT NULL;
