//! The audit trail read back for the API (newest first, keyset pages over the
//! row id), and the row of a credentials test.

use serde_json::json;

use super::changes::insert_audit;
use super::cursor::{decode_audit_cursor, encode_audit_cursor};
use super::{ProfileStore, StoreError};
use crate::profile::audit::{AuditAction, AuditEntry, AuditPage, AuditQuery};
use crate::profile::{Actor, AuthProfile, FieldErrors};

impl ProfileStore {
    /// A page of `workspace_id`'s audit trail, newest first; another
    /// workspace's rows are never part of it.
    pub async fn audit(&self, workspace_id: &str, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        let limit = i64::from(query.limit.clamp(1, 200));
        let before = match &query.cursor {
            Some(c) => Some(
                decode_audit_cursor(c)
                    .ok_or_else(|| FieldErrors::single("cursor", "is not a cursor this API returned"))?,
            ),
            None => None,
        };
        let actions: Vec<&str> = AuditAction::ALL.iter().map(|a| a.stored()).collect();
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, occurred_at, actor, action, profile_id, details FROM audit_log
                 WHERE workspace_id = $1
                   AND ($2::uuid IS NULL OR profile_id = $2)
                   AND ($3::bigint IS NULL OR id < $3)
                   AND action = ANY($4)
                 ORDER BY id DESC
                 LIMIT $5",
                &[&workspace_id, &query.profile_id, &before, &actions, &(limit + 1)],
            )
            .await?;
        let has_more = rows.len() as i64 > limit;
        let rows = &rows[..rows.len().min(limit as usize)];
        let items = rows
            .iter()
            .filter_map(|row| {
                let action = AuditAction::from_stored(row.get("action"))?;
                Some(AuditEntry::from_row(
                    row.get("occurred_at"),
                    row.get("actor"),
                    action,
                    row.get("profile_id"),
                    &row.get("details"),
                ))
            })
            .collect();
        let next_cursor = if has_more { rows.last().map(|r| encode_audit_cursor(r.get("id"))) } else { None };
        Ok(AuditPage { items, next_cursor })
    }

    /// Records that `actor` tested the profile's credentials, and whether they passed.
    pub async fn record_test(&self, actor: &Actor, profile: &AuthProfile, ok: bool) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        insert_audit(
            &client,
            actor,
            AuditAction::Tested.stored(),
            &profile.workspace_id,
            Some(profile.id),
            Some(profile.version),
            json!({ "ok": ok }),
        )
        .await
    }
}
