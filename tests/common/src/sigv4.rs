//! An AWS Signature Version 4 verifier written from AWS's specification
//! (docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html), with
//! nothing shared with authrelay's signer: a target built on it recomputes the
//! signature from the request exactly as it arrived, as API Gateway would.
//!
//! Services other than S3 take the URI path encoded twice (each segment of
//! the path as sent, encoded again); the query is decoded and re-encoded with
//! RFC 3986's unreserved characters, sorted by name then value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

/// What a verifier knows: the secret of the access key it expects, and where it runs.
#[derive(Debug, Clone)]
pub struct AwsKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
    pub service: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 percent-encoding of everything but `A-Z a-z 0-9 - _ . ~` (and `/` when asked).
fn uri_encode(text: &[u8], keep_slash: bool) -> String {
    let mut out = String::new();
    for &b in text {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical request of what arrived, for the headers named in `signed`.
pub fn canonical_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    signed: &[String],
    payload_hash: &str,
    service: &str,
) -> Result<String, String> {
    let path = if uri.path().is_empty() { "/" } else { uri.path() };
    let canonical_uri = if service == "s3" { path.to_owned() } else { uri_encode(path.as_bytes(), true) };
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (uri_encode(k.as_bytes(), false), uri_encode(v.as_bytes(), false)))
        .collect();
    params.sort();
    let canonical_query = params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let mut canonical_headers = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| {
                let text = v.to_str().map_err(|_| format!("header {name} is not text"))?;
                Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .collect::<Result<_, String>>()?;
        if values.is_empty() {
            return Err(format!("signed header `{name}` did not arrive"));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Ok(format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{}\n{payload_hash}",
        signed.join(";")
    ))
}

/// Checks the signature of a request as it arrived; the error says what is wrong.
pub fn verify(key: &AwsKey, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let authorization = header("authorization").ok_or("no Authorization header")?;
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not AWS4-HMAC-SHA256")?;
    let fields: BTreeMap<&str, &str> = rest.split(", ").filter_map(|part| part.split_once('=')).collect();
    let credential = fields.get("Credential").ok_or("no Credential")?;
    let signed: Vec<String> =
        fields.get("SignedHeaders").ok_or("no SignedHeaders")?.split(';').map(str::to_owned).collect();
    let signature = fields.get("Signature").ok_or("no Signature")?;
    let date_time = header("x-amz-date").ok_or("no X-Amz-Date")?;
    let date = date_time.get(..8).ok_or("X-Amz-Date is too short")?;
    let scope = format!("{date}/{}/{}/aws4_request", key.region, key.service);
    if *credential != format!("{}/{scope}", key.access_key_id) {
        return Err(format!("credential {credential} is not {}/{scope}", key.access_key_id));
    }
    let payload_hash = hex(&Sha256::digest(body));
    if header("x-amz-content-sha256").as_deref() != Some(payload_hash.as_str()) {
        return Err("X-Amz-Content-Sha256 is not the SHA-256 of the body that arrived".into());
    }
    let mut required = vec!["host", "x-amz-date", "x-amz-content-sha256"];
    if let Some(token) = &key.session_token {
        if header("x-amz-security-token").as_deref() != Some(token.as_str()) {
            return Err("X-Amz-Security-Token is missing or wrong".into());
        }
        required.push("x-amz-security-token");
    }
    for name in required {
        if !signed.iter().any(|s| s == name) {
            return Err(format!("`{name}` is not among the signed headers"));
        }
    }
    let creq = canonical_request(method, uri, headers, &signed, &payload_hash, &key.service)?;
    let string_to_sign = format!("AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}", hex(&Sha256::digest(creq.as_bytes())));
    let mut signing_key = hmac(format!("AWS4{}", key.secret_access_key).as_bytes(), date.as_bytes());
    for part in [key.region.as_str(), key.service.as_str(), "aws4_request"] {
        signing_key = hmac(&signing_key, part.as_bytes());
    }
    let expected = hex(&hmac(&signing_key, string_to_sign.as_bytes()));
    if expected != *signature {
        return Err(format!("signature mismatch; canonical request here:\n{creq}"));
    }
    Ok(())
}

/// One request as the target judged it.
#[derive(Debug, Clone)]
pub struct Checked {
    pub verdict: Result<(), String>,
    pub headers: HeaderMap,
}

/// A target that verifies every request's signature: 200 when it holds, 403 with the reason when not.
pub struct SigV4Target {
    pub addr: SocketAddr,
    checked: Arc<Mutex<Vec<Checked>>>,
}

impl SigV4Target {
    pub async fn start(key: AwsKey) -> Self {
        let checked = Arc::new(Mutex::new(Vec::new()));
        let record = checked.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (key, record) = (key.clone(), record.clone());
            async move {
                let verdict = verify(&key, &method, &uri, &headers, &body);
                record.lock().unwrap().push(Checked { verdict: verdict.clone(), headers });
                match verdict {
                    Ok(()) => (StatusCode::OK, "signature verified".to_owned()),
                    Err(reason) => (StatusCode::FORBIDDEN, reason),
                }
            }
        });
        let addr = crate::targets::serve(app).await;
        Self { addr, checked }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    pub fn checked(&self) -> Vec<Checked> {
        self.checked.lock().unwrap().clone()
    }
}
