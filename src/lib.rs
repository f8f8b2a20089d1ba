//! authrelay runs the HTTP actions of a voice-AI call platform with stored,
//! encrypted credentials (Auth Profiles).
//!
//! # Layout
//! - [`config`]: typed configuration from `AUTHRELAY_*` variables, read once.
//! - [`telemetry`]: the tracing subscriber (text or JSON).
//! - [`db`]: PostgreSQL pool, create-database-if-missing, migrations.
//! - [`crypto`]: the master key ring; AES-256-GCM sealing bound to its slot.
//! - [`error_text`]: errors and their causes as one line of text.
//! - [`egress`]: which destinations outbound requests may reach (SSRF guard).
//! - [`credentials`]: applying credentials to requests; OAuth 2.0 tokens and their cache.
//! - [`job`]: wire types of jobs and results, and job validation.
//! - [`profile`]: Auth Profiles: types, validation, masking, and their store.
//! - [`api`]: the admin HTTP API (axum), health and metrics endpoints.
//! - [`metrics`]: Prometheus metrics with bounded labels.
//! - [`app`]: wires the parts of `authrelay run` together.
//! - [`cli`]: the `authrelay` commands, each a thin call into the library.
//! - [`ui`]: the admin web page at `/ui/`, compiled into the binary.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod crypto;
pub mod db;
pub mod egress;
pub mod error_text;
pub mod executor;
pub mod job;
pub mod metrics;
pub mod outbox;
pub mod profile;
pub mod queue;
pub mod replay;
pub mod telemetry;
pub mod ui;
pub mod worker;
