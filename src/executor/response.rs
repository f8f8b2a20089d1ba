//! Reading a response within its byte budget and turning it into the result's
//! `response` object, with credentials redacted.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::credentials::redact::Redactor;
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
    max_bytes: usize,
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
        Value::String(text_within(&body.bytes, max_bytes))
    } else {
        serde_json::from_slice(&body.bytes).unwrap_or_else(|_| Value::String(text_within(&body.bytes, max_bytes)))
    };
    redactor.redact_json(&mut body_value);
    ResponseSummary { status, headers: shown, body: body_value, body_truncated: body.truncated }
}

/// The body as text of at most `max` bytes: a character cut by the byte
/// budget is dropped (not replaced), and replacement characters for invalid
/// bytes never push the text over the budget.
fn text_within(bytes: &[u8], max: usize) -> String {
    let complete = match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
        _ => bytes,
    };
    let mut text = String::from_utf8_lossy(complete).into_owned();
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::text_within;

    #[test]
    fn a_character_cut_by_the_budget_is_dropped_not_replaced() {
        let euro = "€".repeat(3); // 9 bytes
        let text = text_within(&euro.as_bytes()[..8], 8);
        assert_eq!(text, "€€");
    }

    #[test]
    fn invalid_bytes_never_push_the_text_over_the_budget() {
        let text = text_within(&[0xff; 10], 10);
        assert!(text.len() <= 10, "{}", text.len());
    }
}
