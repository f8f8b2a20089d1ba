//! OAuth 2.0 client credentials token client. Being written.
