//! What a finished job tells about the credentials themselves, as opposed to
//! the target: the evidence credential health is built from. Decided from
//! typed facts (statuses, the token endpoint's OAuth error code, whether the
//! token was fetched for this job), never from error text.

use super::attempt::AttemptEnd;
use crate::credentials::oauth2::{ClientRejection, TokenError};
use crate::credentials::token_cache::Lookup;

/// The credentials' verdict of a job: the last attempt that told anything wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing about the credentials can be told (a timeout, a 5xx, a 404, no attempt).
    #[default]
    Unknown,
    /// The target accepted the request (2xx).
    Accepted,
    Refused(Refusal),
}

/// How the credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The token endpoint rejected the client (`invalid_client`, `unauthorized_client`, `invalid_grant`).
    TokenEndpoint(ClientRejection),
    /// A target answered 401/403 to a token fetched for this job (or fetched
    /// again after a 401): the identity provider's tokens are not accepted.
    FreshToken,
    /// A target answered 401/403 to static credentials (bearer, API key, basic).
    StaticCredentials,
}

/// What an attempt presented to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Presented {
    Nothing,
    Static,
    /// An OAuth token from the cache, fetched for some earlier job: a 401 to it
    /// may only mean it was revoked early.
    CachedToken,
    /// An OAuth token fetched for this job (or joined while being fetched), or
    /// fetched again after a 401.
    FreshToken,
}

impl Presented {
    pub(super) fn token(lookup: Lookup, refetched_after_401: bool) -> Self {
        if refetched_after_401 || matches!(lookup, Lookup::Miss | Lookup::Joined) {
            Self::FreshToken
        } else {
            Self::CachedToken
        }
    }
}

impl Verdict {
    /// A failed token fetch refuses the credentials only when the endpoint rejected the client.
    pub(super) fn of_token_error(error: &TokenError) -> Option<Self> {
        error.client_rejection().map(|rejection| Self::Refused(Refusal::TokenEndpoint(rejection)))
    }

    /// What an attempt's answer says; `None` when it says nothing new.
    pub(super) fn of_attempt(end: &AttemptEnd, presented: Presented) -> Option<Self> {
        let status = match end {
            AttemptEnd::Response(_) => return Some(Self::Accepted),
            AttemptEnd::Unauthorized { .. } => 401,
            AttemptEnd::Failed { response: Some(response), .. } => response.status,
            AttemptEnd::Failed { response: None, .. } => return None,
        };
        match (status, presented) {
            (401 | 403, Presented::Static) => Some(Self::Refused(Refusal::StaticCredentials)),
            (401 | 403, Presented::FreshToken) => Some(Self::Refused(Refusal::FreshToken)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::job::{ErrorKind, JobError, ResponseSummary};

    fn answer(status: u16) -> AttemptEnd {
        let response =
            ResponseSummary { status, headers: BTreeMap::new(), body: serde_json::Value::Null, body_truncated: false };
        match status {
            200..=299 => AttemptEnd::Response(response),
            401 => AttemptEnd::Unauthorized { response },
            _ => AttemptEnd::Failed {
                error: JobError::new(ErrorKind::HttpStatus, format!("HTTP {status}"), false),
                response: Some(response),
                retry_after: None,
            },
        }
    }

    #[test]
    fn refusals_count_only_for_credentials_that_must_be_valid() {
        let refused = |r| Some(Verdict::Refused(r));
        assert_eq!(Verdict::of_attempt(&answer(401), Presented::Static), refused(Refusal::StaticCredentials));
        assert_eq!(Verdict::of_attempt(&answer(403), Presented::Static), refused(Refusal::StaticCredentials));
        assert_eq!(Verdict::of_attempt(&answer(401), Presented::FreshToken), refused(Refusal::FreshToken));
        assert_eq!(Verdict::of_attempt(&answer(403), Presented::FreshToken), refused(Refusal::FreshToken));
        // A cached token may have been revoked early: a 401 to it is retried, not a verdict.
        assert_eq!(Verdict::of_attempt(&answer(401), Presented::CachedToken), None);
        assert_eq!(Verdict::of_attempt(&answer(403), Presented::Nothing), None);
        assert_eq!(Verdict::of_attempt(&answer(204), Presented::CachedToken), Some(Verdict::Accepted));
        for status in [404, 429, 500, 503] {
            assert_eq!(Verdict::of_attempt(&answer(status), Presented::Static), None, "{status}");
        }
    }

    #[test]
    fn a_token_is_fresh_when_this_job_fetched_or_joined_it_or_after_a_refetch() {
        assert_eq!(Presented::token(Lookup::Miss, false), Presented::FreshToken);
        assert_eq!(Presented::token(Lookup::Joined, false), Presented::FreshToken);
        assert_eq!(Presented::token(Lookup::Hit, false), Presented::CachedToken);
        assert_eq!(Presented::token(Lookup::Hit, true), Presented::FreshToken);
    }

    #[test]
    fn a_token_endpoint_refuses_the_credentials_only_by_its_error_code() {
        let rejected = TokenError::Status { status: 400, error: Some("invalid_grant".into()), description: None };
        assert_eq!(
            Verdict::of_token_error(&rejected),
            Some(Verdict::Refused(Refusal::TokenEndpoint(ClientRejection::InvalidGrant)))
        );
        let down = TokenError::Status { status: 503, error: None, description: None };
        assert_eq!(Verdict::of_token_error(&down), None);
    }
}
