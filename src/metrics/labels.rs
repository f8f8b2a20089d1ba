//! The label values of every labelled metric. Each comes from a fixed set
//! defined here (or is a [`Phase`], [`Outcome`] or [`ErrorKind`]), so no
//! request, job or error text can ever become a label and blow up the number
//! of series.
//!
//! [`Phase`]: crate::job::Phase
//! [`Outcome`]: crate::job::Outcome
//! [`ErrorKind`]: crate::job::ErrorKind

use crate::job::Phase;

/// An enum whose variants are the label values of one label.
macro_rules! label_set {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
    };
}

label_set! {
    /// `authrelay_profile_changes_total{change}`.
    ProfileChange { Created => "created", Updated => "updated", Deleted => "deleted" }
}

label_set! {
    /// `authrelay_retries_total{reason}`.
    RetryReason {
        /// A retryable failure (connect, timeout, retryable status).
        Error => "error",
        /// A 401 with an OAuth 2.0 token: one more try with a fresh token.
        Unauthorized => "unauthorized",
    }
}

label_set! {
    /// `authrelay_token_lookups_total{result}`.
    TokenLookup {
        Hit => "hit",
        /// Fetched by this lookup.
        Miss => "miss",
        /// Waited for a fetch another job started.
        Joined => "joined",
        /// Found a token another process had stored (fleet sharing).
        Shared => "shared",
        Error => "error",
    }
}

label_set! {
    /// `authrelay_profile_lookups_total{result}`.
    ProfileLookup { Hit => "hit", Miss => "miss", Error => "error" }
}

label_set! {
    /// `authrelay_profile_events_total{result}`.
    EventOutcome { Received => "received", Applied => "applied", Ignored => "ignored", Malformed => "malformed" }
}

label_set! {
    /// `authrelay_jobs_deferred_total{reason}`: why a job went to a delay queue.
    DeferReason {
        /// A retry too long to wait in process.
        Retry => "retry",
        /// The database could not be reached to load the profile.
        DatabaseUnavailable => "database_unavailable",
        /// The profile's limits (or a 429's pause) give the job no turn soon.
        RateLimited => "rate_limited",
        /// The destination's circuit is open: the job waits for it instead of failing.
        CircuitOpen => "circuit_open",
    }
}

label_set! {
    /// `authrelay_circuit_transitions_total{to}`: the state a destination's circuit moved to.
    CircuitState {
        /// Failing attempts in a row reached the threshold, or the probe failed.
        Open => "open",
        /// The open period ended: one probe may go.
        HalfOpen => "half_open",
        /// The probe got an answer.
        Closed => "closed",
    }
}

label_set! {
    /// `authrelay_http_requests_total{method}`: any other method a client
    /// invents is counted as `other`.
    HttpMethod {
        Get => "GET", Head => "HEAD", Post => "POST", Put => "PUT", Patch => "PATCH", Delete => "DELETE",
        Options => "OPTIONS", Other => "other",
    }
}

impl HttpMethod {
    pub fn of(method: &axum::http::Method) -> Self {
        Self::ALL.iter().copied().find(|m| m.as_str() == method.as_str()).unwrap_or(Self::Other)
    }
}

/// `authrelay_consumer_starts_total{lane}`: a phase's lane or the profile-event consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    Lane(Phase),
    ProfileEvents,
}

impl Consumer {
    pub fn as_str(self) -> &'static str {
        match self {
            Consumer::Lane(phase) => phase.as_str(),
            Consumer::ProfileEvents => "profile_events",
        }
    }
}

/// `{status}` of the admin API's requests: `2xx`, `4xx`, …
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_set_are_other() {
        assert_eq!(HttpMethod::of(&axum::http::Method::PATCH), HttpMethod::Patch);
        let invented = axum::http::Method::from_bytes(b"FROBNICATE").unwrap();
        assert_eq!(HttpMethod::of(&invented).as_str(), "other");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(999), "5xx");
    }
}
