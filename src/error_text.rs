//! Errors as one line of text, for results, logs and the command line.

/// An error and its causes, joined with ": ", each said once (many errors
/// already repeat their cause in their own message). The causes are often the
/// useful part: the certificate problem behind a failed handshake, the
/// refusal behind a failed connect.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let e = Outer(Inner(std::io::Error::other("refused")));
        assert_eq!(super::chain(&e), "outer: inner: refused");
    }
}
