//! Credentials on the wire: applying a profile's `AuthConfig` to an outgoing
//! request, signing each attempt, the HTTP clients per client certificate,
//! keeping credentials out of what we echo back, the OAuth 2.0 token client,
//! its cache, the fleet-wide token store, and probing a profile.

pub mod apply;
pub mod http_clients;
pub mod oauth2;
pub mod probe;
pub mod redact;
pub mod signing;
pub mod token_cache;
pub mod token_store;
