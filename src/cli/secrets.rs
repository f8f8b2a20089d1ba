//! Secrets for `authrelay profiles`: from a file or standard input, or a
//! no-echo prompt; never from the command line, where other users could read
//! them in the process list.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::profile::AuthType;

#[derive(Debug, Args)]
pub struct ConfigInput {
    /// Non-secret config fields as JSON, e.g. '{"method":"header","pairs":[{"key":"X-Api-Key"}]}'.
    /// Secret fields are refused here (the command line is visible to other users); you will be
    /// prompted for them, or give them with --config-file.
    #[arg(long, value_name = "JSON")]
    pub config: Option<String>,
    /// The config as a JSON file, secrets included; `-` reads standard input.
    #[arg(long, value_name = "PATH", conflicts_with = "config")]
    pub config_file: Option<PathBuf>,
}

/// Secrets typed at a prompt (one line); keys are PEM and come from a file.
const SECRET_FIELDS: &[&str] = &["token", "password", "client_secret", "secret", "secret_access_key", "session_token"];

/// `--config` (argv) may not carry secrets; `--config-file` (a file or stdin) may.
pub fn read_config(input: &ConfigInput) -> anyhow::Result<Option<Value>> {
    if let Some(inline) = &input.config {
        let value: Value = serde_json::from_str(inline).context("--config is not valid JSON")?;
        let has_secret = SECRET_FIELDS.iter().any(|f| value.get(f).is_some())
            || value.get("private_key").is_some()
            || value.get("client_certificate").and_then(|c| c.get("private_key")).is_some()
            || value.get("pairs").and_then(Value::as_array).is_some_and(|p| p.iter().any(|p| p.get("value").is_some()))
            || ["token_params", "token_headers"].iter().any(|list| {
                value.get(list).and_then(Value::as_array).is_some_and(|entries| {
                    entries.iter().any(|e| e.get("secret") == Some(&Value::Bool(true)) && e.get("value").is_some())
                })
            });
        if has_secret {
            bail!(
                "--config must not carry secrets (they would show in the process list); use --config-file or the prompt"
            );
        }
        return Ok(Some(value));
    }
    let Some(path) = &input.config_file else { return Ok(None) };
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).context("cannot read the config from standard input")?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    }
    let text = zeroize::Zeroizing::new(text);
    Ok(Some(serde_json::from_str(&text).context("the config file is not valid JSON")?))
}

fn prompt(label: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("{label} is required; give it with --config-file (standard input is not a terminal to prompt on)");
    }
    rpassword::prompt_password(format!("{label}: ")).context("cannot read from the terminal")
}

/// Prompts (without echo) for each secret the config does not give yet.
pub fn prompt_missing_secrets(auth_type: AuthType, config: &mut Value) -> anyhow::Result<()> {
    let Some(obj) = config.as_object_mut() else { return Ok(()) };
    let client_auth = obj.get("client_auth").and_then(Value::as_str).unwrap_or("basic").to_owned();
    let needs_key = auth_type == AuthType::OAuth2JwtBearer
        || (auth_type == AuthType::OAuth2ClientCredentials && client_auth == "private_key_jwt");
    let needs_key = needs_key || auth_type == AuthType::Mtls;
    if needs_key && !obj.contains_key("private_key") {
        bail!("private_key is required; give the PEM key in --config-file (a key cannot be typed at a prompt)");
    }
    let field = match auth_type {
        AuthType::Bearer => Some("token"),
        AuthType::Basic => Some("password"),
        AuthType::OAuth2ClientCredentials if matches!(client_auth.as_str(), "basic" | "post") => Some("client_secret"),
        AuthType::OAuth2ClientCredentials | AuthType::OAuth2JwtBearer => return Ok(()),
        AuthType::Hmac => Some("secret"),
        AuthType::AwsSigv4 => Some("secret_access_key"),
        AuthType::Mtls => return Ok(()),
        AuthType::ApiKey => None,
    };
    if let Some(field) = field {
        if !obj.contains_key(field) {
            obj.insert(field.into(), Value::String(prompt(field)?));
        }
        return Ok(());
    }
    for pair in obj.get_mut("pairs").and_then(Value::as_array_mut).into_iter().flatten() {
        if pair.get("value").is_none()
            && let Some(key) = pair.get("key").and_then(Value::as_str).map(str::to_owned)
        {
            pair["value"] = Value::String(prompt(&format!("value for `{key}`"))?);
        }
    }
    Ok(())
}

pub fn prompt_replacement(
    auth_type: AuthType,
    current: &crate::profile::AuthConfig,
    config: &mut Value,
    field: &str,
) -> anyhow::Result<()> {
    if auth_type != AuthType::ApiKey {
        if field == "private_key" || field.ends_with(".private_key") {
            bail!(
                "--replace-secret private_key: give the new PEM key in --config-file (a key cannot be typed at a prompt)"
            );
        }
        if !SECRET_FIELDS.contains(&field) {
            bail!(
                "--replace-secret {field}: not a secret field of {auth_type} (secret token_params and token_headers are replaced with --config-file)"
            );
        }
        config[field] = Value::String(prompt(field)?);
        return Ok(());
    }
    // For API keys, name the pair by its key; keep the others as they are stored.
    if config.get("pairs").is_none() {
        let crate::profile::auth_config::Credential::ApiKey { pairs, .. } = &current.credential else {
            bail!("--replace-secret {field}: give the new pairs with --config");
        };
        config["pairs"] = pairs.iter().map(|p| json!({"key": p.key})).collect();
    }
    let pairs = config["pairs"].as_array_mut().context("pairs must be an array")?;
    let pair = pairs
        .iter_mut()
        .find(|p| p.get("key").and_then(Value::as_str) == Some(field))
        .with_context(|| format!("--replace-secret {field}: no API key pair has that key"))?;
    pair["value"] = Value::String(prompt(&format!("new value for `{field}`"))?);
    Ok(())
}
