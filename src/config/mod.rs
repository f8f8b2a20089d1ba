//! Typed configuration, read once at start from `AUTHRELAY_*` variables
//! (process environment over an optional `.env` file).
//!
//! Nothing else in the crate reads the environment: tests build a [`Config`]
//! from a map through [`EnvSource`], never by mutating the process environment.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ipnet::IpNet;
use secrecy::{ExposeSecret as _, SecretString};

use crate::crypto::{CryptoError, KeyRing};

mod circuit;
mod lanes;
mod variables;
mod worker;
pub use circuit::CircuitConfig;
pub use lanes::{LaneSelection, LiveFirstConfig};
pub use variables::{FOREIGN_VARIABLES, VARIABLES, is_known};
pub use worker::{PhaseConfig, RetryDelays, TokenSharing, WorkerConfig};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/authrelay";
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
const MASTER_KEY_FILE: &str = "master.key";
const ADMIN_TOKEN_FILE: &str = "admin.token";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is invalid: {reason}")]
    Invalid { var: String, reason: String },
    #[error("AUTHRELAY_MASTER_KEYS is invalid")]
    Keys(#[source] CryptoError),
    #[error("{path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where configuration values come from.
pub trait EnvSource {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment, over the variables of a `.env` file if one exists.
pub struct ProcessEnv {
    dotenv: HashMap<String, String>,
}

impl ProcessEnv {
    /// Reads `./.env` (when present) without modifying the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let mut dotenv = HashMap::new();
        match dotenvy::from_path_iter(".env") {
            Ok(iter) => {
                for item in iter {
                    let (k, v) =
                        item.map_err(|e| ConfigError::Invalid { var: ".env".into(), reason: e.to_string() })?;
                    dotenv.insert(k, v);
                }
            }
            Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ConfigError::Invalid { var: ".env".into(), reason: e.to_string() }),
        }
        Ok(Self { dotenv })
    }
}

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().or_else(|| self.dotenv.get(name).cloned())
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Log output settings; read before the rest so that start-up warnings are formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub filter: String,
}

impl LogConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let format = match non_empty(env, "AUTHRELAY_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "AUTHRELAY_LOG_FORMAT".into(),
                    reason: format!("`{other}` is neither `text` nor `json`"),
                });
            }
        };
        let filter = non_empty(env, "AUTHRELAY_LOG")
            .or_else(|| non_empty(env, "RUST_LOG"))
            .unwrap_or_else(|| "info,refinery_core=warn,tokio_postgres=warn".to_owned());
        Ok(Self { format, filter })
    }
}

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// May carry a password, hence secret.
    pub url: SecretString,
    /// Extra CA certificate (PEM) trusted for `sslmode=require`, for managed
    /// databases whose certificates chain to a private CA.
    pub ca_file: Option<PathBuf>,
    pub pool_size: usize,
    /// How long start-up waits for the database before giving up.
    pub connect_timeout: Duration,
}

impl DatabaseConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            url: SecretString::from(
                non_empty(env, "AUTHRELAY_DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            ),
            ca_file: non_empty(env, "AUTHRELAY_DATABASE_CA_FILE").map(PathBuf::from),
            pool_size: parse_var(env, "AUTHRELAY_DATABASE_POOL_SIZE", 16usize)?,
            connect_timeout: Duration::from_secs(parse_var(env, "AUTHRELAY_STARTUP_TIMEOUT_SECS", 30u64)?),
        })
    }
}

/// How to reach RabbitMQ, and the names to use there: all that a client such
/// as `authrelay send` needs (it reads no key, token or database setting).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// May carry a password, hence secret.
    pub url: SecretString,
    /// Prefix of every exchange and queue name (`authrelay` → `authrelay.actions`).
    pub prefix: String,
}

impl BrokerConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let prefix = non_empty(env, "AUTHRELAY_AMQP_PREFIX").unwrap_or_else(|| "authrelay".to_owned());
        if !prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(ConfigError::Invalid {
                var: "AUTHRELAY_AMQP_PREFIX".into(),
                reason: "use letters, digits, `-`, `_` and `.` only".into(),
            });
        }
        let url = non_empty(env, "AUTHRELAY_AMQP_URL").unwrap_or_else(|| DEFAULT_AMQP_URL.to_owned());
        Ok(Self { url: SecretString::from(url), prefix })
    }
}

/// The admin API's bearer token, with the label recorded in the audit log.
#[derive(Clone)]
pub struct AdminToken {
    pub label: String,
    pub token: SecretString,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken").field("label", &self.label).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub amqp_url: SecretString,
    /// Prefix of every exchange and queue name (`authrelay` → `authrelay.actions`).
    pub amqp_prefix: String,
    pub key_ring: Arc<KeyRing>,
    pub admin_token: AdminToken,
    pub http_addr: SocketAddr,
    pub allow_private_destinations: Vec<IpNet>,
    pub state_dir: PathBuf,
    pub log: LogConfig,
    pub worker: WorkerConfig,
}

impl Config {
    /// Loads and validates everything; on first start creates the master key and
    /// admin token files in the state directory (mode 0600) with a warning.
    pub fn load(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let state_dir = PathBuf::from(non_empty(env, "AUTHRELAY_STATE_DIR").unwrap_or_else(|| ".authrelay".to_owned()));
        let key_ring = match non_empty(env, "AUTHRELAY_MASTER_KEYS") {
            Some(spec) => KeyRing::parse(&spec).map_err(ConfigError::Keys)?,
            None => {
                let path = state_dir.join(MASTER_KEY_FILE);
                let spec = read_or_create_secret_file(&path, || {
                    let id = format!("k{}", chrono::Utc::now().format("%Y%m%d"));
                    KeyRing::generate_key_spec(&id).expect("generated key ids are valid")
                })?;
                KeyRing::parse(spec.expose_secret()).map_err(|e| ConfigError::Invalid {
                    var: "AUTHRELAY_MASTER_KEYS".into(),
                    reason: format!("{} holds no valid key ring: {e}", path.display()),
                })?
            }
        };
        let token = match non_empty(env, "AUTHRELAY_ADMIN_TOKEN") {
            Some(token) => SecretString::from(token),
            None => read_or_create_secret_file(&state_dir.join(ADMIN_TOKEN_FILE), generate_admin_token)?,
        };
        if token.expose_secret().len() < 16 {
            return Err(ConfigError::Invalid {
                var: "AUTHRELAY_ADMIN_TOKEN".into(),
                reason: "use at least 16 characters".into(),
            });
        }
        let admin_token = AdminToken {
            label: non_empty(env, "AUTHRELAY_ADMIN_TOKEN_LABEL").unwrap_or_else(|| "admin".to_owned()),
            token,
        };
        let http_addr =
            parse_var(env, "AUTHRELAY_HTTP_ADDR", DEFAULT_HTTP_ADDR.parse::<SocketAddr>().expect("valid default"))?;
        let allow_private_destinations = match non_empty(env, "AUTHRELAY_ALLOW_PRIVATE_DESTINATIONS") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<IpNet>().or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| {
                        ConfigError::Invalid {
                            var: "AUTHRELAY_ALLOW_PRIVATE_DESTINATIONS".into(),
                            reason: format!("`{s}` is not a CIDR such as 127.0.0.1/32"),
                        }
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let broker = BrokerConfig::from_env(env)?;
        Ok(Self {
            database: DatabaseConfig::from_env(env)?,
            amqp_url: broker.url,
            amqp_prefix: broker.prefix,
            key_ring: Arc::new(key_ring),
            admin_token,
            http_addr,
            allow_private_destinations,
            state_dir,
            log: LogConfig::from_env(env)?,
            worker: WorkerConfig::from_env(env)?,
        })
    }
}

fn non_empty(env: &dyn EnvSource, name: &str) -> Option<String> {
    env.var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn parse_var<T: std::str::FromStr>(env: &dyn EnvSource, var: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match non_empty(env, var) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid { var: var.to_owned(), reason: format!("`{raw}`: {e}") }),
    }
}

/// Parses `250ms`, `5s`, `2m`, `1h`, `1d` (a bare number is milliseconds).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("`{raw}` is not a duration such as 250ms, 5s, 2m, 1h"))?;
    let seconds = match unit.trim() {
        "" | "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        other => return Err(format!("unknown unit `{other}` in `{raw}` (use ms, s, m, h, d)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{raw}` is out of range"))
}

fn duration_var(env: &dyn EnvSource, var: &str, default: Duration) -> Result<Duration, ConfigError> {
    match non_empty(env, var) {
        None => Ok(default),
        Some(raw) => parse_duration(&raw).map_err(|reason| ConfigError::Invalid { var: var.to_owned(), reason }),
    }
}

fn generate_admin_token() -> String {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut bytes[..]).expect("the operating system's random source works");
    URL_SAFE_NO_PAD.encode(&bytes[..])
}

/// Reads a secret from `path`, creating it (mode 0600, atomically, so two
/// processes starting together agree on one value) when it does not exist.
fn read_or_create_secret_file(path: &Path, generate: impl FnOnce() -> String) -> Result<SecretString, ConfigError> {
    let file_err = |source| ConfigError::File { path: path.to_owned(), source };
    match fs::read_to_string(path) {
        Ok(content) => return Ok(SecretString::from(content.trim().to_owned())),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_err(e)),
        Err(_) => {}
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(file_err)?;
    }
    let value = zeroize::Zeroizing::new(generate());
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(file_err)?;
    file.write_all(value.as_bytes())
        .and_then(|_| file.write_all(b"\n"))
        .and_then(|_| file.sync_all())
        .map_err(file_err)?;
    drop(file);
    // hard_link fails if the target exists: whoever links first wins, the other reads it.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::warn!(
                path = %path.display(),
                "generated a new secret on first start; keep this file safe and back it up (set the AUTHRELAY_* variable to manage it yourself)"
            );
            Ok(SecretString::from(value.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            fs::read_to_string(path).map(|c| SecretString::from(c.trim().to_owned())).map_err(file_err)
        }
        Err(e) => Err(file_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// An environment of these variables (for every config module's tests).
    pub(super) fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("authrelay-config-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn first_start_creates_private_key_and_token_files_and_reuses_them() {
        let dir = temp_dir();
        let state = dir.join("state");
        let vars = env(&[("AUTHRELAY_STATE_DIR", state.to_str().unwrap())]);
        let first = Config::load(&vars).unwrap();
        for file in [MASTER_KEY_FILE, ADMIN_TOKEN_FILE] {
            let mode = fs::metadata(state.join(file)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let second = Config::load(&vars).unwrap();
        assert_eq!(first.key_ring.current_key_id(), second.key_ring.current_key_id());
        assert_eq!(first.admin_token.token.expose_secret(), second.admin_token.token.expose_secret());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn defaults_follow_the_contract() {
        let dir = temp_dir();
        let config = Config::load(&env(&[("AUTHRELAY_STATE_DIR", dir.to_str().unwrap())])).unwrap();
        assert_eq!(config.database.url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(config.amqp_url.expose_secret(), DEFAULT_AMQP_URL);
        assert_eq!(config.http_addr.to_string(), DEFAULT_HTTP_ADDR);
        assert!(config.allow_private_destinations.is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_values_name_the_variable_to_fix() {
        let cases = [
            ("AUTHRELAY_MASTER_KEYS", "k1:short"),
            ("AUTHRELAY_HTTP_ADDR", "not an address"),
            ("AUTHRELAY_ALLOW_PRIVATE_DESTINATIONS", "127.0.0.1/99"),
            ("AUTHRELAY_ADMIN_TOKEN", "short"),
            ("AUTHRELAY_LOG_FORMAT", "xml"),
        ];
        let key = KeyRing::generate_key_spec("k1").unwrap();
        for (var, value) in cases {
            let mut vars = env(&[("AUTHRELAY_MASTER_KEYS", &key), ("AUTHRELAY_ADMIN_TOKEN", "0123456789abcdef0123")]);
            vars.insert(var.to_owned(), value.to_owned());
            let err = Config::load(&vars).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn allow_list_accepts_cidrs_and_bare_addresses() {
        let key = KeyRing::generate_key_spec("k1").unwrap();
        let vars = env(&[
            ("AUTHRELAY_MASTER_KEYS", &key),
            ("AUTHRELAY_ADMIN_TOKEN", "0123456789abcdef0123"),
            ("AUTHRELAY_ALLOW_PRIVATE_DESTINATIONS", "127.0.0.1/32, ::1"),
        ]);
        let config = Config::load(&vars).unwrap();
        assert_eq!(config.allow_private_destinations.len(), 2);
    }
}
