//! Single-flight OAuth 2.0 token cache. Being written.
