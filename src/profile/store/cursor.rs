//! Keyset pagination of the profile list: an opaque cursor over (lower(name),
//! id), and the ILIKE pattern of a search.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = Uuid::now_v7();
        let c = encode_cursor("crm".into(), id);
        assert_eq!(decode_cursor(&c), Some(("crm".to_owned(), id)));
        assert_eq!(decode_cursor("not-a-cursor"), None);
    }

    #[test]
    fn like_wildcards_in_the_query_match_literally() {
        assert_eq!(like_pattern("50%_off"), "%50\\%\\_off%");
    }
}
