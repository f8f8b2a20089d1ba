//! Keyset pagination of the profile list: an opaque cursor over (lower(name),
//! id), and the ILIKE pattern of a search; the audit trail's cursor (a row id).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use uuid::Uuid;

/// `%q%` for ILIKE, with the wildcard characters of `q` escaped.
pub(super) fn like_pattern(q: &str) -> String {
    let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

pub(super) fn encode_cursor(sort_key: String, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&(sort_key, id)).expect("cursor serializes"))
}

pub(super) fn decode_cursor(cursor: &str) -> Option<(String, Uuid)> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The audit trail pages newest first: the cursor is the id of the last row shown.
pub(super) fn encode_audit_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!({ "before": id })).expect("cursor serializes"))
}

pub(super) fn decode_audit_cursor(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?.get("before")?.as_i64().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = Uuid::now_v7();
        let c = encode_cursor("crm".into(), id);
        assert_eq!(decode_cursor(&c), Some(("crm".to_owned(), id)));
        assert_eq!(decode_cursor("not-a-cursor"), None);
        assert_eq!(decode_audit_cursor(&encode_audit_cursor(42)), Some(42));
        assert_eq!(decode_audit_cursor(&c), None, "a list cursor is not an audit cursor");
    }

    #[test]
    fn like_wildcards_in_the_query_match_literally() {
        assert_eq!(like_pattern("50%_off"), "%50\\%\\_off%");
    }
}
