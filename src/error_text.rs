//! Errors as one line of text, for results, logs and the command line.
//!
//! The convention: an error's own message says what failed, never its cause;
//! the cause is its `source()`. [`chain`] (or [`Chain`] in a log field) then
//! prints the whole story once: "cannot reach RabbitMQ at h:5672/: connection
//! refused". The causes are often the useful part: the certificate problem
//! behind a failed handshake, the refusal behind a failed connect.

use std::error::Error;
use std::fmt;

/// An error and its causes, joined with ": ".
pub fn chain(error: &(dyn Error + 'static)) -> String {
    Chain(error).to_string()
}

/// Displays an error and its causes, joined with ": " (for `error = %Chain(&e)`).
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once_in_order() {
        let e = Outer(Inner(std::io::Error::other("refused")));
        assert_eq!(super::chain(&e), "outer: inner: refused");
        assert_eq!(format!("{}", super::Chain(&e)), "outer: inner: refused");
    }
}
