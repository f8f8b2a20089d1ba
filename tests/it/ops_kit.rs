//! The operations kit in `deploy/` holds up against the code: the Grafana
//! dashboard and the Prometheus alert rules name only metrics a running app
//! exports (and the rules cover the README's alert table), the Kubernetes
//! manifests run the roles apart with probes, budgets and a grace period
//! above the app's, and hold no secret; every `AUTHRELAY_*` variable the
//! deploy files, the Dockerfile and the README's table name is one the
//! configuration reads (`authrelay::config::VARIABLES`).
//! (`promtool check rules` runs in `.ci/run`.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use authrelay::config::{VARIABLES, is_known, parse_duration};
use authrelay_testkit::app::spawn_worker;
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::WAIT;

/// A metric the dashboard shows that another change adds (profile health);
/// allowed while the app does not export it yet.
const KNOWN_COMING: &[&str] = &["authrelay_profiles_deauthorized"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Every document of a YAML file, as JSON values.
pub(crate) fn yaml_documents(relative: &str) -> Vec<Value> {
    let text = read(relative);
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Words of the form `prefix[a-z0-9_]*` (or upper case, for variables) in `text`.
fn words_starting(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let word: String = text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        found.insert(word);
    }
    found
}

/// The PromQL expressions of the dashboard (panels and template queries).
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/authrelay.json")).expect("the dashboard is JSON");
    let mut queries: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("every target has an expr").to_owned())
        .collect();
    for variable in dashboard["templating"]["list"].as_array().expect("templating") {
        if let Some(query) = variable["definition"].as_str() {
            queries.push(query.to_owned());
        }
    }
    queries
}

/// Every alert rule: (name, expression).
fn alert_rules() -> Vec<(String, String)> {
    let docs = yaml_documents("deploy/prometheus/alerts.yml");
    let groups = docs[0]["groups"].as_array().expect("groups");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| (r["alert"].as_str().expect("alert name").to_owned(), r["expr"].as_str().expect("expr").to_owned()))
        .collect()
}

/// The names on `/metrics`: families (`# TYPE`) and series (`_bucket`, `_sum`, `_count` included).
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let name = match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        };
        names.extend(name.filter(|n| !n.is_empty()).map(str::to_owned));
    }
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_and_the_alert_rules_name_only_metrics_a_running_app_exports() {
    let app = spawn_worker().await;
    // Every series of a fixed label set exists from the start (at zero); the
    // admin API's own series appear with its first request.
    app.ready_within(200, WAIT).await;
    app.metrics().await;
    let exported = exported_names(&app.metrics().await);

    let mut used = BTreeSet::new();
    for query in dashboard_queries().iter().chain(alert_rules().iter().map(|(_, expr)| expr)) {
        used.extend(words_starting(query, "authrelay_"));
    }
    assert!(used.len() >= 15, "the kit uses few metrics: {used:?}");
    let missing: Vec<&String> = used.iter().filter(|m| !exported.contains(*m)).collect();
    let coming: Vec<&&String> = missing.iter().filter(|m| KNOWN_COMING.contains(&m.as_str())).collect();
    let unknown: Vec<&&String> = missing.iter().filter(|m| !KNOWN_COMING.contains(&m.as_str())).collect();
    assert!(unknown.is_empty(), "the kit names metrics authrelay does not export: {unknown:?}");
    if !coming.is_empty() {
        eprintln!("not exported yet, allowed as known to be coming: {coming:?}");
    }
    app.stop().await;
}

#[test]
fn the_alert_rules_cover_every_alerting_line_of_the_readme_table() {
    let readme = read("README.md");
    let table = readme.split("### Metrics and alerts").nth(1).expect("README has Metrics and alerts");
    let rules: String = alert_rules().into_iter().map(|(_, expr)| expr).collect::<Vec<_>>().join("\n");
    let used = words_starting(&rules, "authrelay_");
    let mut uncovered = Vec::new();
    let table = table.split("\n### ").next().unwrap();
    for row in table.lines().filter(|l| l.starts_with("| `authrelay_")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (metrics, alert_on) = (cells[1], cells[3]);
        if alert_on == "informational" {
            continue;
        }
        let named = words_starting(metrics, "authrelay_");
        // A histogram is queried through its buckets.
        let covered = named.iter().any(|m| used.contains(m) || used.contains(&format!("{m}_bucket")));
        if !covered {
            uncovered.push(metrics.to_owned());
        }
    }
    assert!(uncovered.is_empty(), "README alert lines without a rule in deploy/prometheus/alerts.yml: {uncovered:?}");
}

#[test]
fn the_dashboard_shows_jobs_latency_retries_parked_tokens_outbox_deauthorized_profiles_and_expiring_certificates() {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/authrelay.json")).unwrap();
    assert_eq!(dashboard["uid"], "authrelay");
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(panel["title"].as_str().is_some_and(|t| !t.is_empty()), "a panel without a title: {panel}");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
    }
    let queries = dashboard_queries().join("\n");
    for shown in [
        "authrelay_jobs_total",
        "authrelay_job_duration_seconds_bucket{phase=\"during_call\"",
        "histogram_quantile(0.99",
        "authrelay_retries_total",
        "authrelay_jobs_parked_total",
        "authrelay_token_lookups_total",
        "authrelay_outbox_backlog",
        "authrelay_profiles_deauthorized",
        "authrelay_certificates_expiring",
    ] {
        assert!(queries.contains(shown), "the dashboard does not query {shown}");
    }
}

// ---------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------

/// Every object of the manifests listed in `deploy/k8s/kustomization.yaml`.
fn manifests() -> Vec<Value> {
    let kustomization = &yaml_documents("deploy/k8s/kustomization.yaml")[0];
    let files = kustomization["resources"].as_array().expect("resources");
    let mut objects = Vec::new();
    for file in files {
        objects.extend(yaml_documents(&format!("deploy/k8s/{}", file.as_str().unwrap())));
    }
    // Nothing in the folder is left out of the kustomization.
    let listed: BTreeSet<String> = files.iter().map(|f| f.as_str().unwrap().to_owned()).collect();
    for entry in std::fs::read_dir(repo().join("deploy/k8s")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name == "kustomization.yaml" || listed.contains(&name),
            "deploy/k8s/{name} is not in the kustomization"
        );
    }
    objects
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    of_kind(objects, kind)
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Whether `selector` (matchLabels) picks pods labelled `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let wanted = selector.as_object().expect("a label map");
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn the_manifests_run_workers_and_the_api_apart_with_probes_budgets_and_a_long_enough_grace() {
    let objects = manifests();
    let config = &named(&objects, "ConfigMap", "authrelay-config")["data"];
    let grace =
        config["AUTHRELAY_SHUTDOWN_GRACE"].as_str().map_or(Duration::from_secs(30), |g| parse_duration(g).unwrap());
    let http_port: u64 = config["AUTHRELAY_HTTP_ADDR"]
        .as_str()
        .expect("the API listens beyond loopback")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(config["AUTHRELAY_HTTP_ADDR"].as_str().unwrap().starts_with("0.0.0.0:"), "probes reach 0.0.0.0 only");
    let budgets = of_kind(&objects, "PodDisruptionBudget");

    for (name, role) in [("authrelay-worker", "worker"), ("authrelay-api", "api")] {
        let deployment = named(&objects, "Deployment", name);
        let pod = &deployment["spec"]["template"];
        let labels = &pod["metadata"]["labels"];
        assert!(selects(&deployment["spec"]["selector"]["matchLabels"], labels), "{name}: selector");
        let container = &pod["spec"]["containers"][0];
        assert_eq!(container["args"], json!(["run", "--roles", role]), "{name}");
        let port = container["ports"].as_array().unwrap().iter().find(|p| p["containerPort"] == http_port);
        let port_name = port.unwrap_or_else(|| panic!("{name}: no container port {http_port}"))["name"].clone();
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"], path, "{name}: {probe}");
            assert!(get["port"] == port_name || get["port"] == http_port, "{name}: {probe} port {}", get["port"]);
        }
        let termination = pod["spec"]["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
        let needed = grace + authrelay::worker::supervisor::WIND_DOWN;
        assert!(
            Duration::from_secs(termination) > needed,
            "{name}: terminationGracePeriodSeconds {termination} is not above the shutdown grace plus wind-down ({needed:?})"
        );
        let budget = budgets.iter().find(|b| selects(&b["spec"]["selector"]["matchLabels"], labels));
        let budget = budget.unwrap_or_else(|| panic!("{name}: no PodDisruptionBudget selects its pods"));
        assert!(budget["spec"]["minAvailable"].as_u64().is_some_and(|n| n >= 1), "{name}: the budget keeps a pod");
    }
    let service = named(&objects, "Service", "authrelay-api");
    let api_labels = &named(&objects, "Deployment", "authrelay-api")["spec"]["template"]["metadata"]["labels"];
    let worker_labels = &named(&objects, "Deployment", "authrelay-worker")["spec"]["template"]["metadata"]["labels"];
    assert!(selects(&service["spec"]["selector"], api_labels), "the Service selects the API pods");
    assert!(!selects(&service["spec"]["selector"], worker_labels), "the Service does not select workers");
}

#[test]
fn the_manifests_hold_no_secret_and_take_the_secret_settings_from_a_secret() {
    const SECRET: &[&str] =
        &["AUTHRELAY_MASTER_KEYS", "AUTHRELAY_ADMIN_TOKEN", "AUTHRELAY_DATABASE_URL", "AUTHRELAY_AMQP_URL"];
    let objects = manifests();
    assert!(of_kind(&objects, "Secret").is_empty(), "a Secret does not belong in the manifests");
    for config in of_kind(&objects, "ConfigMap") {
        for name in SECRET {
            assert!(config["data"].get(*name).is_none(), "{name} is in a ConfigMap");
        }
    }
    for deployment in of_kind(&objects, "Deployment") {
        let name = &deployment["metadata"]["name"];
        for container in deployment["spec"]["template"]["spec"]["containers"].as_array().unwrap() {
            for var in container["env"].as_array().into_iter().flatten() {
                let secret_name = SECRET.contains(&var["name"].as_str().unwrap_or_default());
                assert!(!secret_name || var.get("value").is_none(), "{name}: {} has a literal value", var["name"]);
            }
            let from_secret =
                container["envFrom"].as_array().into_iter().flatten().any(|f| f["secretRef"]["name"].is_string());
            let each_from_secret = SECRET.iter().all(|s| {
                container["env"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|v| v["name"] == *s && v["valueFrom"]["secretKeyRef"].is_object())
            });
            assert!(from_secret || each_from_secret, "{name}: the secret settings do not come from a Secret");
        }
    }
}

// ---------------------------------------------------------------------------
// Configuration variables
// ---------------------------------------------------------------------------

#[test]
fn every_authrelay_variable_the_deploy_files_name_is_one_the_configuration_reads() {
    let mut files = vec!["docker-compose.yml".to_owned(), "Dockerfile".to_owned(), "deploy/demo/demo.sh".to_owned()];
    for entry in std::fs::read_dir(repo().join("deploy/k8s")).unwrap() {
        files.push(format!("deploy/k8s/{}", entry.unwrap().file_name().into_string().unwrap()));
    }
    let mut unknown = Vec::new();
    let mut seen = 0;
    for file in &files {
        for name in words_starting(&read(file), "AUTHRELAY_") {
            seen += 1;
            if !is_known(&name) {
                unknown.push(format!("{file}: {name}"));
            }
        }
    }
    assert!(seen >= 10, "the deploy files name few variables ({seen}): is the scan reading them?");
    assert!(unknown.is_empty(), "not configuration variables (see config::VARIABLES): {unknown:?}");
}

#[test]
fn the_readme_configuration_table_lists_exactly_the_variables_the_configuration_reads() {
    let readme = read("README.md");
    let section = readme.split("\n## Configuration\n").nth(1).expect("README has ## Configuration");
    let section = section.split("\n## ").next().unwrap();
    let mut documented = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `AUTHRELAY_")) {
        let first_cell = row.split('|').nth(1).unwrap();
        for name in words_starting(first_cell, "AUTHRELAY_") {
            match name.strip_prefix("AUTHRELAY_").filter(|_| first_cell.contains("<PHASE>")) {
                // `AUTHRELAY_<PHASE>_DEADLINE` is read as AUTHRELAY_ + `<`: take the suffix after `>`.
                Some("") => {
                    let suffix: String =
                        first_cell.split('>').nth(1).unwrap().chars().take_while(|c| *c != '`').collect();
                    for phase in ["PRE_CALL", "DURING_CALL", "POST_CALL"] {
                        documented.insert(format!("AUTHRELAY_{phase}{suffix}"));
                    }
                }
                _ => {
                    documented.insert(name);
                }
            }
        }
    }
    let read_by_config: BTreeSet<String> = VARIABLES.iter().map(|v| (*v).to_owned()).collect();
    let undocumented: Vec<_> = read_by_config.difference(&documented).collect();
    let not_read: Vec<_> = documented.difference(&read_by_config).collect();
    assert!(undocumented.is_empty(), "read but not in the README's configuration table: {undocumented:?}");
    assert!(not_read.is_empty(), "in the README's configuration table but not read: {not_read:?}");
}

#[test]
fn the_word_scan_finds_whole_names_only() {
    let found = words_starting("rate(authrelay_jobs_total[5m]) / xauthrelay_no AUTHRELAY_X", "authrelay_");
    assert_eq!(found, BTreeSet::from(["authrelay_jobs_total".to_owned()]));
    assert!(Path::new(&repo()).join("deploy").is_dir());
}
