//! Reading a response within its byte budget and turning it into the result's
//! `response` object, with credentials redacted.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::credentials::apply::Redactor;
use crate::job::ResponseSummary;

/// The bytes of a body read up to a budget.
pub struct BoundedBody {
    pub bytes: Vec<u8>,
    pub truncated: bool,
}

/// Reads at most `max` bytes; the rest is not read (the connection is dropped).
pub async fn read_bounded(response: &mut reqwest::Response, max: usize) -> Result<BoundedBody, reqwest::Error> {
    let mut bytes = Vec::with_capacity(response.content_length().map_or(8 * 1024, |l| (l as usize).min(max)));
    while let Some(chunk) = response.chunk().await? {
        let room = max - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(BoundedBody { bytes, truncated: true });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(BoundedBody { bytes, truncated: false })
}

/// The result's view of a response: headers that carry no credential, and the
/// body as JSON when it parses (else as text), with every secret redacted.
pub fn summarize(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: BoundedBody,
    redactor: &Redactor,
) -> ResponseSummary {
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        if !redactor.keeps_header(name.as_str()) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        let value = redactor.redact(&value).into_owned();
        shown
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let mut body_value = if body.bytes.is_empty() {
        Value::Null
    } else if body.truncated {
        Value::String(String::from_utf8_lossy(&body.bytes).into_owned())
    } else {
        serde_json::from_slice(&body.bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body.bytes).into_owned()))
    };
    redactor.redact_json(&mut body_value);
    ResponseSummary { status, headers: shown, body: body_value, body_truncated: body.truncated }
}
