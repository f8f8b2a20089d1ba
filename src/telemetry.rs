//! Logging. Secrets never reach a log line because they only exist as
//! `SecretString`s (whose `Debug` is redacted) and are never formatted.
//!
//! Logs go to stderr so stdout stays for command output. Text logs carry
//! terminal colours only when stderr is a terminal: a log file or a pipe gets
//! plain text. A panic is logged as an ERROR event like any other (so a JSON
//! log stays one object per line), with where it happened.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber and the panic hook. Calling it twice is
/// harmless (the second call changes nothing).
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
    if installed.is_ok() {
        std::panic::set_hook(Box::new(|info| {
            let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic.location = %location, panic.message = %message, "a thread panicked (a bug)");
        }));
    }
}
