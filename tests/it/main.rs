//! authrelay's integration tests: one binary, one module per concern, all on
//! the harness in `tests/common` (the `authrelay-testkit` crate).
//!
//! They need PostgreSQL and RabbitMQ on 127.0.0.1 (see the README); every
//! target they send a request to is a server of their own on 127.0.0.1.
//! Run one concern with `cargo test --test it <module>::`, e.g.
//! `cargo test --test it process_faults:: -- --nocapture` to see its figures.

use std::time::Duration;

use authrelay_testkit::{Binary, TestEnv};

// The admin API
mod admin_page;
mod api_connections;
mod hostile_api_requests;
mod profile_limits;
mod profiles_api;

// The worker: jobs in, requests out, results back
mod client_certificates;
mod credentials_applied;
mod execution_rules;
mod graceful_shutdown;
mod lanes;
mod malformed_messages;
mod nested_amqp_headers;
mod no_secret_in_results;
mod oauth_flows;
mod oauth_tokens;
mod rate_limits;
mod result_routing;
mod retry_safety;
mod signed_requests;
mod worker;

// Faults: the process, the servers it depends on, the targets it calls
mod broker_and_database_outages;
mod circuit_breaking;
mod misbehaving_targets;
mod process_faults;
mod token_endpoint_trouble;

// The code itself
mod architecture;

// Getting started and operating it: the quick start, the producer examples, deploy/
mod examples;
mod ops_kit;
mod quick_start;

// Around the worker
mod audit;
mod cli;
mod contracts;
mod database_tls;
mod health;
mod logs;
mod profile_events;
mod properties;
mod replay;
mod send;

/// How long a test waits for what should come at once (a result, a parked message).
const WAIT: Duration = Duration::from_secs(20);

/// The `authrelay` binary of this build, to run against `env`.
fn authrelay(env: &TestEnv) -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_authrelay"), env)
}
