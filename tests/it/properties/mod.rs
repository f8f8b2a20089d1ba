//! Properties of the code that reads hostile input: the job parser never
//! panics and only lets through what it promises; credentials land only where
//! their type says; the redactor removes every form of a secret it knows; the
//! token-response reader neither panics nor quotes a secret.
//!
//! The token-response reader is private to `credentials::oauth2`, so it is
//! driven through `TokenClient::fetch` against a server on 127.0.0.1 whose
//! reply each case sets.

mod credential_placement;
mod job_parser;
mod redactor;
mod token_reply;

use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

const CASES: u32 = 256;
/// Each token case is a real HTTP exchange on 127.0.0.1, so fewer of them.
const TOKEN_CASES: u32 = 96;

fn config(cases: u32) -> ProptestConfig {
    // No regression files: this crate's tests write nothing into the source tree.
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    }
}
