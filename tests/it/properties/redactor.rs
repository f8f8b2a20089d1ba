//! The redactor removes every form of a secret it knows.

use authrelay::credentials::redact::{REDACTED, Redactor};
use authrelay::profile::auth_config::Credential as Kind;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use super::credential_placement::{Credential, any_credential, forms};
use super::job_parser::any_json;
use super::{CASES, config};

/// Whether `needle` occurs in `text` other than where it overlaps a `[REDACTED]`
/// marker (a secret sharing characters with the marker can re-form around it,
/// which reveals nothing).
fn leaks(text: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let markers: Vec<(usize, usize)> = text.match_indices(REDACTED).map(|(i, m)| (i, i + m.len())).collect();
    (0..text.len()).filter(|i| text.is_char_boundary(*i)).any(|start| {
        text[start..].starts_with(needle) && {
            let end = start + needle.len();
            !markers.iter().any(|(a, b)| start < *b && *a < end)
        }
    })
}

/// The secrets a redactor for `credential` must remove, each with the forms it may come back in.
fn needles(credential: &Credential) -> Vec<String> {
    let mut raw: Vec<String> = credential.config.secrets().iter().map(|(_, s)| s.expose_secret().to_owned()).collect();
    if let Kind::Basic { username, password } = &credential.config.credential {
        raw.push(BASE64.encode(format!("{username}:{}", password.expose_secret())));
    }
    if let Some(token) = &credential.access_token {
        raw.push(token.expose_secret().to_owned());
    }
    raw.iter().flat_map(|s| forms(s)).filter(|f| f.len() >= 3).collect()
}

/// Text made of filler and, between the filler, the secrets in their forms.
fn text_with(pieces: &[(String, usize)], needles: &[String]) -> String {
    pieces.iter().map(|(filler, pick)| format!("{filler}{}", needles[pick % needles.len()])).collect()
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn the_redactor_removes_every_form_of_every_secret_from_any_text(
        credential in any_credential(),
        pieces in prop::collection::vec((".{0,12}", any::<usize>()), 1..6),
        tail in ".{0,12}",
    ) {
        let redactor = Redactor::for_config(&credential.config, credential.access_token.as_ref());
        let needles = needles(&credential);
        let text = format!("{}{tail}", text_with(&pieces, &needles));
        let clean = redactor.redact(&text);
        for needle in &needles {
            prop_assert!(!leaks(&clean, needle), "{needle:?} survives in {clean:?}");
        }
    }

    #[test]
    fn the_redactor_removes_secrets_from_every_string_and_key_of_a_json_document(
        credential in any_credential(),
        document in any_json(),
        pieces in prop::collection::vec((".{0,8}", any::<usize>()), 1..4),
    ) {
        let redactor = Redactor::for_config(&credential.config, credential.access_token.as_ref());
        let needles = needles(&credential);
        let echoed = text_with(&pieces, &needles);
        let mut value = json!({"echo": echoed, "list": [document, echoed.clone()], echoed.clone(): {"nested": echoed}});
        redactor.redact_json(&mut value);
        let mut strings = Vec::new();
        collect_strings(&value, &mut strings);
        for needle in &needles {
            for s in &strings {
                prop_assert!(!leaks(s, needle), "{needle:?} survives in {s:?}");
            }
        }
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(obj) => {
            for (k, v) in obj {
                out.push(k.clone());
                collect_strings(v, out);
            }
        }
        _ => {}
    }
}
