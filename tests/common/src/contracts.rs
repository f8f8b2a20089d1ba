//! The machine-readable contracts, checked by an independent validator (the
//! `jsonschema` crate): every result a [`ResultTap`](crate::ResultTap) sees,
//! every job published with [`TestBroker::publish_job`](crate::TestBroker),
//! every profile event an [`EventTap`] sees, and every answer of the admin
//! API a test reads through [`Admin`](crate::app::Admin) are validated
//! against `schemas/*.schema.json` and `docs/openapi.json` as committed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::StreamExt as _;
use jsonschema::Validator;
use serde_json::{Value, json};

use crate::TestBroker;

/// The repository's root (tests/common is two levels down).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_json(relative: &str) -> Value {
    let path = root().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A validator for `schema` that also checks formats (`uuid`, `date-time`).
pub fn validator(schema: &Value) -> Validator {
    jsonschema::options().should_validate_formats(true).build(schema).unwrap_or_else(|e| panic!("schema: {e}"))
}

/// What is wrong with `instance`, one line per error; empty when it is valid.
pub fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator.iter_errors(instance).map(|e| format!("at `{}`: {e}", e.instance_path())).collect()
}

/// The message schemas under `schemas/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    Job,
    Result,
    ProfileEvent,
}

impl Message {
    fn file(self) -> &'static str {
        match self {
            Message::Job => "schemas/job.schema.json",
            Message::Result => "schemas/result.schema.json",
            Message::ProfileEvent => "schemas/profile-event.schema.json",
        }
    }

    /// Its validator, built once per test binary.
    fn validator(self) -> &'static Validator {
        static VALIDATORS: OnceLock<HashMap<Message, Validator>> = OnceLock::new();
        let all = VALIDATORS.get_or_init(|| {
            [Message::Job, Message::Result, Message::ProfileEvent]
                .into_iter()
                .map(|m| (m, validator(&read_json(m.file()))))
                .collect()
        });
        &all[&self]
    }

    /// What is wrong with `message` against this schema; empty when valid.
    pub fn errors(self, message: &Value) -> Vec<String> {
        errors(self.validator(), message)
    }

    /// Panics with the errors unless `message` validates.
    pub fn assert_valid(self, message: &Value) {
        let errors = self.errors(message);
        assert!(errors.is_empty(), "{message} does not validate against {}:\n{}", self.file(), errors.join("\n"));
    }
}

/// `docs/openapi.json` as committed.
pub fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| read_json("docs/openapi.json"))
}

/// A JSON Schema (2020-12) for `schema` inside the OpenAPI document: its
/// components become `$defs` (OpenAPI 3.1 schemas are JSON Schema 2020-12).
pub fn openapi_schema(schema: &Value) -> Value {
    let components = &openapi()["components"]["schemas"];
    let text = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": components,
        "allOf": [schema],
    })
    .to_string()
    .replace("#/components/schemas/", "#/$defs/");
    serde_json::from_str(&text).unwrap()
}

/// A validator for the named component schema (`Profile`, `ValidationError`).
pub fn component(name: &str) -> Validator {
    validator(&openapi_schema(&json!({"$ref": format!("#/components/schemas/{name}")})))
}

/// The JSON schema the document gives for the answer `status` to `method`
/// `path` (a concrete path, `/v1/workspaces/acme/auth-profiles/…`); None when
/// the route, the status or a JSON body is not described.
pub fn response_schema(method: &str, path: &str, status: u16) -> Option<Value> {
    let path = path.split('?').next().unwrap_or(path);
    let paths = openapi()["paths"].as_object()?;
    let (_, item) = paths.iter().find(|(template, _)| template_matches(template, path))?;
    let responses = &item[method.to_ascii_lowercase()]["responses"];
    let schema = responses[status.to_string()]["content"]["application/json"]["schema"].clone();
    (!schema.is_null()).then_some(schema)
}

/// Whether `/a/{x}/b` matches `/a/1/b` (every `{…}` one non-empty segment).
fn template_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

/// What is wrong with an answer of the admin API against the document;
/// empty when it validates or the document does not describe it as JSON.
pub fn response_errors(method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
    let Some(schema) = response_schema(method, path, status) else { return Vec::new() };
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    let key = schema.to_string();
    let validator = {
        let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
        cache.entry(key).or_insert_with(|| Arc::new(validator(&openapi_schema(&schema)))).clone()
    };
    errors(&validator, body)
}

/// Jobs published through [`TestBroker::publish_job`] that the job schema
/// refuses, by job id: the worker must refuse them too (`rejected`,
/// `invalid_job`), or the schema is stricter than the worker.
#[derive(Clone, Default)]
pub struct RefusedJobs(Arc<Mutex<HashMap<String, Vec<String>>>>);

impl RefusedJobs {
    /// Validates a job about to be published; remembers it when the schema refuses it.
    pub fn check(&self, job: &Value) {
        let errors = Message::Job.errors(job);
        if let (false, Some(id)) = (errors.is_empty(), job["job_id"].as_str()) {
            self.0.lock().unwrap().insert(id.to_owned(), errors);
        }
    }

    /// What is wrong with `result` as the answer to a job this broker published.
    pub fn disagreement(&self, result: &Value) -> Option<String> {
        let id = result["job_id"].as_str()?;
        let errors = self.0.lock().unwrap().get(id).cloned()?;
        let refused = result["outcome"] == "rejected" && result["error"]["kind"] == "invalid_job";
        (!refused).then(|| {
            format!("the job schema refuses job {id} ({}), but the worker accepted it: {result}", errors.join("; "))
        })
    }
}

/// Every profile event published on the events exchange of `broker`'s prefix;
/// those authrelay published (its outbox's `message_id`, `outbox-<n>`) are
/// validated against `schemas/profile-event.schema.json` as they arrive.
/// Others come from another publisher (a test playing the platform, which may
/// send broken ones on purpose) and are only collected.
pub struct EventTap {
    seen: Arc<Mutex<Vec<Value>>>,
    /// Events that did not validate (or were not JSON), with why.
    invalid: Arc<Mutex<Vec<String>>>,
}

impl EventTap {
    pub async fn open(broker: &TestBroker) -> Self {
        let channel = broker.conn.create_channel().await.unwrap();
        let exchange = broker.names.events_exchange();
        let queue = TestBroker::private_queue(&channel, Some((&exchange, ""))).await;
        let mut consumer = TestBroker::consume(&channel, queue.as_str()).await;
        let (seen, invalid) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let (sink, bad) = (seen.clone(), invalid.clone());
        tokio::spawn(async move {
            let _channel = channel; // The consumer lives as long as its channel.
            while let Some(Ok(delivery)) = consumer.next().await {
                let ours =
                    delivery.properties.message_id().as_ref().is_some_and(|id| id.as_str().starts_with("outbox-"));
                match serde_json::from_slice::<Value>(&delivery.data) {
                    Ok(event) if !ours => sink.lock().unwrap().push(event),
                    Err(_) if !ours => {}
                    Ok(event) => {
                        let errors = Message::ProfileEvent.errors(&event);
                        if !errors.is_empty() {
                            bad.lock().unwrap().push(format!("{event}: {}", errors.join("; ")));
                        }
                        sink.lock().unwrap().push(event);
                    }
                    Err(e) => bad.lock().unwrap().push(format!("an event is not JSON: {e}")),
                }
            }
        });
        Self { seen, invalid }
    }

    /// Every event so far, in arrival order; panics if one did not validate.
    pub fn events(&self) -> Vec<Value> {
        self.assert_all_valid();
        self.seen.lock().unwrap().clone()
    }

    /// Takes the events that did not validate so far (for a test that sends one on purpose).
    pub fn take_invalid(&self) -> Vec<String> {
        std::mem::take(&mut *self.invalid.lock().unwrap())
    }

    /// Panics with every event that did not validate.
    pub fn assert_all_valid(&self) {
        let invalid = self.invalid.lock().unwrap();
        assert!(invalid.is_empty(), "profile events do not validate against the schema:\n{}", invalid.join("\n"));
    }
}
