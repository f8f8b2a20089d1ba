//! The job builder: `job("id", Phase::DuringCall).to(&url).profile(&id)`.
//! Jobs stay plain JSON, so a test can still set any field by hand.

use std::collections::BTreeSet;
use std::time::Duration;

use authrelay::job::Phase;
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

/// A job of workspace `acme` in `phase` (action `crm-lookup`, call `call-1`),
/// with an empty request: give it one with [`JobExt::to`] or [`JobExt::request`].
pub fn job(id: &str, phase: Phase) -> Value {
    json!({
        "job_id": id, "workspace_id": "acme", "phase": phase.as_str(), "action_id": "crm-lookup",
        "call_id": "call-1", "request": {}
    })
}

/// The rest of the builder, on the job's JSON.
pub trait JobExt {
    /// The request is a GET of `url`.
    fn to(self, url: &str) -> Value;
    /// The whole request.
    fn request(self, request: Value) -> Value;
    /// Uses the stored profile `id`.
    fn profile(self, id: &str) -> Value;
    /// A deadline `after` from now.
    fn deadline_in(self, after: Duration) -> Value;
    fn max_attempts(self, n: u32) -> Value;
    /// More top-level fields (replacing those of the same name).
    fn with(self, extra: Value) -> Value;
}

impl JobExt for Value {
    fn to(self, url: &str) -> Value {
        self.request(json!({"url": url}))
    }

    fn request(mut self, request: Value) -> Value {
        self["request"] = request;
        self
    }

    fn profile(mut self, id: &str) -> Value {
        self["auth_profile_id"] = json!(id);
        self
    }

    fn deadline_in(mut self, after: Duration) -> Value {
        self["deadline"] = json!(deadline_in(after));
        self
    }

    fn max_attempts(mut self, n: u32) -> Value {
        self["max_attempts"] = json!(n);
        self
    }

    fn with(mut self, extra: Value) -> Value {
        for (k, v) in extra.as_object().expect("extra fields are an object") {
            self[k] = v.clone();
        }
        self
    }
}

/// An RFC 3339 time `after` from now, as a job's deadline.
pub fn deadline_in(after: Duration) -> String {
    (Utc::now() + chrono::Duration::from_std(after).unwrap()).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The job ids of `jobs`.
pub fn ids_of(jobs: &[Value]) -> BTreeSet<String> {
    jobs.iter().map(|j| j["job_id"].as_str().unwrap().to_owned()).collect()
}

/// Sets the field at `path` (`["request", "url"]`), or removes it with `None`.
/// Creates nothing: when a parent is missing or not an object, the document
/// stays as it is.
pub fn set_path(root: &mut Value, path: &[&str], value: Option<Value>) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut node = root;
    for key in parents {
        match node.get_mut(*key) {
            Some(child) if child.is_object() => node = child,
            _ => return,
        }
    }
    let Some(obj) = node.as_object_mut() else { return };
    match value {
        Some(v) => {
            obj.insert((*last).to_owned(), v);
        }
        None => {
            obj.remove(*last);
        }
    }
}
