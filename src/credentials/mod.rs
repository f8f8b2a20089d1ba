//! Credentials on the wire: applying a profile's `AuthConfig` to an outgoing
//! request, the OAuth 2.0 client-credentials token client, and the token cache.

pub mod apply;
pub mod oauth2;
pub mod probe;
pub mod token_cache;
