//! Every environment variable the configuration reads, in one list.
//!
//! A unit test below loads the whole configuration through an environment
//! that records what it is asked, and fails unless that is exactly this list;
//! `tests/it/deploy_files.rs` checks the README's configuration table, the
//! compose file, the Dockerfile and the Kubernetes manifests against it, so a
//! variable cannot be renamed here and left behind there.

/// The `AUTHRELAY_*` variables, in the order of the README's table
/// (`<PHASE>` spelled out for each phase).
pub const VARIABLES: &[&str] = &[
    "AUTHRELAY_DATABASE_URL",
    "AUTHRELAY_DATABASE_CA_FILE",
    "AUTHRELAY_DATABASE_POOL_SIZE",
    "AUTHRELAY_STARTUP_TIMEOUT_SECS",
    "AUTHRELAY_AMQP_URL",
    "AUTHRELAY_AMQP_PREFIX",
    "AUTHRELAY_MASTER_KEYS",
    "AUTHRELAY_ADMIN_TOKEN",
    "AUTHRELAY_ADMIN_TOKEN_LABEL",
    "AUTHRELAY_STATE_DIR",
    "AUTHRELAY_HTTP_ADDR",
    "AUTHRELAY_ALLOW_PRIVATE_DESTINATIONS",
    "AUTHRELAY_LOG_FORMAT",
    "AUTHRELAY_LOG",
    "AUTHRELAY_PRE_CALL_DEADLINE",
    "AUTHRELAY_DURING_CALL_DEADLINE",
    "AUTHRELAY_POST_CALL_DEADLINE",
    "AUTHRELAY_PRE_CALL_MAX_ATTEMPTS",
    "AUTHRELAY_DURING_CALL_MAX_ATTEMPTS",
    "AUTHRELAY_POST_CALL_MAX_ATTEMPTS",
    "AUTHRELAY_PRE_CALL_RETRY_DELAYS",
    "AUTHRELAY_DURING_CALL_RETRY_DELAYS",
    "AUTHRELAY_POST_CALL_RETRY_DELAYS",
    "AUTHRELAY_PRE_CALL_PREFETCH",
    "AUTHRELAY_DURING_CALL_PREFETCH",
    "AUTHRELAY_POST_CALL_PREFETCH",
    "AUTHRELAY_PRE_CALL_CONCURRENCY",
    "AUTHRELAY_DURING_CALL_CONCURRENCY",
    "AUTHRELAY_POST_CALL_CONCURRENCY",
    "AUTHRELAY_RETRY_JITTER",
    "AUTHRELAY_REQUEST_TIMEOUT",
    "AUTHRELAY_CONNECT_TIMEOUT",
    "AUTHRELAY_MAX_RESPONSE_BYTES",
    "AUTHRELAY_MAX_JOB_BYTES",
    "AUTHRELAY_PUBLISH_MARGIN",
    "AUTHRELAY_MAX_IN_PROCESS_DELAY",
    "AUTHRELAY_SHUTDOWN_GRACE",
    "AUTHRELAY_TOKEN_DEFAULT_LIFETIME",
    "AUTHRELAY_TOKEN_FAILURE_TTL",
    "AUTHRELAY_TOKEN_SHARING",
    "AUTHRELAY_PROFILE_CACHE_TTL",
    "AUTHRELAY_DATABASE_RETRY_DELAY",
    "AUTHRELAY_HEALTH_FLUSH_INTERVAL",
    "AUTHRELAY_CIRCUIT_FAILURES",
    "AUTHRELAY_CIRCUIT_OPEN_FOR",
    "AUTHRELAY_CIRCUIT_MAX_OPEN",
    "AUTHRELAY_LANES",
    "AUTHRELAY_LIVE_FIRST",
    "AUTHRELAY_LIVE_FIRST_FLOOR",
    "AUTHRELAY_LIVE_FIRST_GROW_EVERY",
    "AUTHRELAY_LIVE_FIRST_PREFETCH",
];

/// Variables read that are not authrelay's own: `RUST_LOG` stands in for
/// `AUTHRELAY_LOG` when that is unset.
pub const FOREIGN_VARIABLES: &[&str] = &["RUST_LOG"];

/// Whether `name` is one of authrelay's variables.
pub fn is_known(name: &str) -> bool {
    VARIABLES.contains(&name)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::{FOREIGN_VARIABLES, VARIABLES};
    use crate::config::{Config, EnvSource};

    /// An empty environment that writes down every name it is asked for,
    /// except that the state directory is a fresh temporary one.
    struct Recording {
        asked: RefCell<BTreeSet<String>>,
        state_dir: std::path::PathBuf,
    }

    impl EnvSource for Recording {
        fn var(&self, name: &str) -> Option<String> {
            self.asked.borrow_mut().insert(name.to_owned());
            (name == "AUTHRELAY_STATE_DIR").then(|| self.state_dir.display().to_string())
        }
    }

    #[test]
    fn loading_the_configuration_reads_exactly_the_listed_variables() {
        let state_dir = std::env::temp_dir().join(format!("authrelay-vars-{}", uuid::Uuid::new_v4()));
        let env = Recording { asked: RefCell::default(), state_dir: state_dir.clone() };
        Config::load(&env).expect("the defaults load");
        let _ = std::fs::remove_dir_all(&state_dir);
        let asked = env.asked.into_inner();
        let listed: BTreeSet<String> = VARIABLES.iter().chain(FOREIGN_VARIABLES).map(|v| (*v).to_owned()).collect();
        let unlisted: Vec<_> = asked.difference(&listed).collect();
        let unread: Vec<_> = listed.difference(&asked).collect();
        assert!(unlisted.is_empty(), "read but missing from config::VARIABLES: {unlisted:?}");
        assert!(unread.is_empty(), "listed in config::VARIABLES but never read: {unread:?}");
        assert_eq!(VARIABLES.len(), VARIABLES.iter().collect::<BTreeSet<_>>().len(), "listed twice");
    }
}
