//! The OAuth 2.0 error codes (RFC 6749 §5.2) that say the token endpoint
//! refuses the client itself — its credentials or its grant — rather than
//! that it cannot answer now. Read from the error's typed fields, never from
//! its text.

use super::TokenError;

/// How the token endpoint rejected the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRejection {
    /// `invalid_client`: client authentication failed (unknown client, wrong secret).
    InvalidClient,
    /// `unauthorized_client`: the client may not use this grant type.
    UnauthorizedClient,
    /// `invalid_grant`: the grant (an assertion, say) is invalid, expired or revoked.
    InvalidGrant,
}

impl ClientRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidClient => "invalid_client",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::InvalidGrant => "invalid_grant",
        }
    }

    fn of_code(code: &str) -> Option<Self> {
        [Self::InvalidClient, Self::UnauthorizedClient, Self::InvalidGrant].into_iter().find(|r| r.as_str() == code)
    }
}

impl TokenError {
    /// The OAuth 2.0 `error` code the endpoint answered with, if any (already scrubbed and capped).
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Self::Status { error, .. } => error.as_deref(),
            Self::ErrorResponse { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The endpoint rejected the client itself, as opposed to failing to answer.
    pub fn client_rejection(&self) -> Option<ClientRejection> {
        self.oauth_error().and_then(ClientRejection::of_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_codes_that_reject_the_client_count() {
        let status = |code: Option<&str>| TokenError::Status {
            status: 401,
            error: code.map(str::to_owned),
            description: Some("invalid_client is mentioned here, but only in the text".into()),
        };
        assert_eq!(status(Some("invalid_client")).client_rejection(), Some(ClientRejection::InvalidClient));
        assert_eq!(status(None).client_rejection(), None, "a description is never parsed");
        assert_eq!(status(Some("temporarily_unavailable")).client_rejection(), None);
        let response = TokenError::ErrorResponse { error: "invalid_grant".into(), description: None };
        assert_eq!(response.client_rejection(), Some(ClientRejection::InvalidGrant));
        let response = TokenError::ErrorResponse { error: "unauthorized_client".into(), description: None };
        assert_eq!(response.client_rejection(), Some(ClientRejection::UnauthorizedClient));
        assert_eq!(TokenError::Malformed("invalid_client".into()).client_rejection(), None);
        assert_eq!(TokenError::Timeout.oauth_error(), None);
    }
}
