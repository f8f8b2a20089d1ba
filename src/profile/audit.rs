//! The audit trail of profiles as the API shows it (contract section 10):
//! who did what to which profile, and which fields — never a value.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// What happened, in the contract's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Created,
    Updated,
    Deleted,
    Referenced,
    Unreferenced,
    Tested,
    Rotated,
}

impl AuditAction {
    pub const ALL: [AuditAction; 7] = [
        AuditAction::Created,
        AuditAction::Updated,
        AuditAction::Deleted,
        AuditAction::Referenced,
        AuditAction::Unreferenced,
        AuditAction::Tested,
        AuditAction::Rotated,
    ];

    /// The `action` column of `audit_log`.
    pub fn stored(self) -> &'static str {
        match self {
            Self::Created => "profile.created",
            Self::Updated => "profile.updated",
            Self::Deleted => "profile.deleted",
            Self::Referenced => "reference.put",
            Self::Unreferenced => "reference.deleted",
            Self::Tested => "profile.tested",
            Self::Rotated => "profile.reencrypted",
        }
    }

    pub fn from_stored(action: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.stored() == action)
    }
}

/// The action or flow node a reference row names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReference {
    pub kind: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One item of `GET …/audit`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: AuditAction,
    pub profile_id: Option<Uuid>,
    /// Names of the fields set or changed (`config.token`), never their values.
    pub fields: Vec<String>,
    /// `referenced` / `unreferenced`: which action or flow node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<AuditReference>,
    /// `tested`: whether the test passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
}

impl AuditEntry {
    /// Reads a stored row's `details`, taking only names and flags out of it.
    pub fn from_row(
        at: DateTime<Utc>,
        actor: String,
        action: AuditAction,
        profile_id: Option<Uuid>,
        details: &Value,
    ) -> Self {
        let names = |key: &str| -> Vec<String> {
            details
                .get(key)
                .and_then(Value::as_array)
                .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let text = |key: &str| details.get(key).and_then(Value::as_str).map(str::to_owned);
        let fields = match action {
            // Rows written before `fields` was recorded named the profile and its type.
            AuditAction::Created if details.get("fields").is_none() => vec!["name".into(), "type".into()],
            AuditAction::Created | AuditAction::Rotated => names("fields"),
            AuditAction::Updated => names("changed"),
            _ => Vec::new(),
        };
        let reference = match (action, text("kind"), text("ref_id")) {
            (AuditAction::Referenced | AuditAction::Unreferenced, Some(kind), Some(id)) => {
                Some(AuditReference { kind, id, name: text("name") })
            }
            _ => None,
        };
        let ok = (action == AuditAction::Tested).then(|| details.get("ok").and_then(Value::as_bool)).flatten();
        Self { at, actor, action, profile_id, fields, reference, ok }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub profile_id: Option<Uuid>,
    pub limit: u32,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}
