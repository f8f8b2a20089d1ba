//! Outbound destination policy (SSRF guard). Being written.
