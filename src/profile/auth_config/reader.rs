//! Reading typed fields out of a config object: each field checked, errors
//! collected with their paths, a patch keeping what it omits. Every type's
//! reader (`read`, `read_oauth2`, `signed`, `tls`) is built on it.

use secrecy::SecretString;
use serde_json::{Map, Value};
use url::Url;

use super::{MASK, MAX_SECRET_LEN, MAX_TEXT_LEN};
use crate::profile::validation::{FieldErrors, has_control_chars};

/// An absolute http(s) URL with a host and no credentials in it.
pub fn parse_http_url(raw: &str) -> Result<Url, &'static str> {
    let url = Url::parse(raw).map_err(|_| "must be an absolute http(s) URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must use http or https");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must have a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials in the URL");
    }
    Ok(url)
}

/// Header names a credential may not set: they belong to the HTTP framing.
pub(super) const RESERVED_HEADERS: &[&str] =
    &["host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "trailer"];

/// What a PEM field of the input held.
pub(super) enum Pem<T> {
    Omitted,
    Null,
    Given(T),
}

impl<T> Pem<T> {
    /// For an optional field: omitted keeps `kept`, `null` removes it.
    pub(super) fn or_kept(self, kept: Option<T>) -> Option<T> {
        match self {
            Pem::Omitted => kept,
            Pem::Null => None,
            Pem::Given(value) => Some(value),
        }
    }
}

/// Reads typed fields from a config object, collecting errors with their paths.
pub(super) struct Reader<'a> {
    pub(super) obj: &'a Map<String, Value>,
    pub(super) prefix: &'a str,
    pub(super) errors: &'a mut FieldErrors,
}

impl Reader<'_> {
    pub(super) fn path(&self, field: &str) -> String {
        format!("{}.{field}", self.prefix)
    }

    pub(super) fn err(&mut self, field: &str, message: impl Into<String>) {
        let path = self.path(field);
        self.errors.add(path, message);
    }

    pub(super) fn allow_only(&mut self, allowed: &[&str]) {
        let unknown: Vec<String> = self.obj.keys().filter(|k| !allowed.contains(&k.as_str())).cloned().collect();
        for key in unknown {
            self.err(&key, format!("is not a field of this type (expected: {})", allowed.join(", ")));
        }
    }

    /// A required non-secret string; `kept` is used when the input omits it.
    pub(super) fn text(&mut self, field: &str, kept: Option<&str>, allow_spaces_only: bool) -> Option<String> {
        match self.obj.get(field) {
            None | Some(Value::Null) => match kept {
                Some(k) => Some(k.to_owned()),
                None => {
                    self.err(field, "is required");
                    None
                }
            },
            Some(Value::String(s)) => {
                let ok_blank = allow_spaces_only && !s.is_empty();
                if s.trim().is_empty() && !ok_blank {
                    self.err(field, "must not be empty");
                    None
                } else if s.chars().count() > MAX_TEXT_LEN {
                    self.err(field, format!("must be at most {MAX_TEXT_LEN} characters"));
                    None
                } else if has_control_chars(s) {
                    self.err(field, "must not contain control characters or line breaks");
                    None
                } else {
                    Some(s.clone())
                }
            }
            Some(_) => {
                self.err(field, "must be a string");
                None
            }
        }
    }

    /// An optional string: omitted keeps `kept`, `null` or "" removes it.
    pub(super) fn optional_text(&mut self, field: &str, kept: Option<&str>) -> Option<String> {
        match self.obj.get(field) {
            None => kept.map(str::to_owned),
            Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(_) => self.text(field, None, false),
        }
    }

    /// A secret string; omitted keeps `kept` (if any). Masked values are refused.
    pub(super) fn secret(
        &mut self,
        field: &str,
        kept: Option<&SecretString>,
        allow_empty: bool,
    ) -> Option<SecretString> {
        match self.obj.get(field) {
            None | Some(Value::Null) => match kept {
                Some(k) => Some(k.clone()),
                None => {
                    self.err(field, "is required");
                    None
                }
            },
            Some(Value::String(s)) => match check_secret(s, allow_empty) {
                Ok(()) => Some(SecretString::from(s.clone())),
                Err(msg) => {
                    self.err(field, msg);
                    None
                }
            },
            Some(_) => {
                self.err(field, "must be a string");
                None
            }
        }
    }

    /// A PEM field read with `parse` (`what` names what belongs there);
    /// `None` when it is invalid, reported under `field`.
    pub(super) fn pem<T>(
        &mut self,
        field: &str,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Pem<T>> {
        match self.obj.get(field) {
            None => Some(Pem::Omitted),
            Some(Value::Null) => Some(Pem::Null),
            Some(Value::String(pem)) => match check_pem(pem).and_then(|()| parse(pem)) {
                Ok(value) => Some(Pem::Given(value)),
                Err(message) => {
                    self.err(field, message);
                    None
                }
            },
            Some(_) => {
                self.err(field, format!("must be a string: {what}"));
                None
            }
        }
    }

    /// A required PEM field; a patch that omits it keeps `kept`.
    pub(super) fn required_pem<T>(
        &mut self,
        field: &str,
        what: &str,
        kept: Option<T>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match self.pem(field, what, parse)? {
            Pem::Given(value) => Some(value),
            Pem::Omitted | Pem::Null => {
                if kept.is_none() {
                    self.err(field, format!("is required: {what}"));
                }
                kept
            }
        }
    }
}

/// The largest PEM accepted (an 8192-bit RSA key is about 6.4 KiB; a chain of
/// three certificates fits too).
pub(super) const MAX_PEM_LEN: usize = 16 * 1024;

/// What every PEM field must be before it is read: not a masked value, not huge.
pub(super) fn check_pem(pem: &str) -> Result<(), String> {
    if pem.contains(MASK) {
        return Err("looks like a masked value; send the PEM, or omit the field to keep the stored one".into());
    }
    if pem.len() > MAX_PEM_LEN {
        return Err(format!("must be at most {} KiB", MAX_PEM_LEN / 1024));
    }
    Ok(())
}

pub(super) fn check_secret(s: &str, allow_empty: bool) -> Result<(), &'static str> {
    if s.is_empty() && !allow_empty {
        return Err("must not be empty");
    }
    if s.contains(MASK) {
        return Err("looks like a masked value; send the real secret, or omit the field to keep the stored one");
    }
    if s.len() > MAX_SECRET_LEN {
        return Err("must be at most 8 KiB");
    }
    if has_control_chars(s) {
        return Err("must not contain control characters or line breaks");
    }
    Ok(())
}
