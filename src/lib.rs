//! authrelay runs the HTTP actions of a voice-AI call platform with stored,
//! encrypted credentials (Auth Profiles).
//!
//! # Layout
//! From the bottom up; a module imports only modules listed above it (a test,
//! `tests/architecture.rs`, keeps it so).
//!
//! | module | owns |
//! |---|---|
//! | [`phase`] | the three phases of a call: pre-call, during-call, post-call |
//! | [`crypto`] | the master key ring; AES-256-GCM sealing bound to its slot |
//! | [`error_text`] | errors and their causes as one line of text |
//! | [`lock`] | the one policy for a poisoned lock |
//! | [`reconnect`] | the one way to wait between attempts to reach a dependency (`backon`) |
//! | [`egress`] | which destinations outbound requests may reach (SSRF guard), and the HTTP clients behind it |
//! | [`config`] | typed configuration from `AUTHRELAY_*` variables, read once |
//! | [`telemetry`] | the tracing subscriber (text or JSON) |
//! | [`db`] | PostgreSQL pool, create-database-if-missing, migrations |
//! | [`readiness`] | what `/readyz` reports: the database and one latch per part |
//! | [`profile`] | Auth Profiles: types, validation, masking, the decrypted cache, credential health and its rules, the audit trail, and their store |
//! | [`job`] | wire types of jobs and results, and job validation |
//! | [`metrics`] | Prometheus metrics with bounded, typed labels |
//! | [`traffic`] | protecting targets and callers: per-profile limits for the fleet, circuit breakers per origin, live calls first |
//! | [`credentials`] | applying credentials to requests; the redactor; OAuth 2.0 tokens and their cache; probes |
//! | [`executor`] | one job to a result: deadline budget, attempts, retry classification, the credentials' verdict |
//! | [`queue`] | RabbitMQ as transport: connect, topology, publisher, settle, headers, replay, publish and await (RPC) |
//! | [`outbox`] | the relay that publishes committed profile events |
//! | [`worker`] | the runtime: the single-job step, lanes, the profile-event consumer, the supervisor, the health tally and its flush |
//! | [`api`] | the admin HTTP API (axum), health and metrics endpoints, the admin page |
//! | [`app`] | `authrelay run`: wires the parts together |
//! | [`cli`] | the `authrelay` commands, each a thin call into the library |
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
pub mod lock;
pub mod metrics;
pub mod outbox;
pub mod phase;
pub mod profile;
pub mod queue;
pub mod readiness;
pub mod reconnect;
pub mod telemetry;
pub mod traffic;
pub mod worker;
