//! The token client against local token endpoints: encodings, tolerant replies, refusals, secrets kept out of errors.

use super::*;
use crate::profile::auth_config::OAuth2Config;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "s3cr3t:with/special+chars ü";

fn config(server: &MockServer, client_auth: ClientAuth) -> OAuth2Config {
    OAuth2Config {
        client_id: "client-1".into(),
        client_secret: Some(SecretString::from(SECRET)),
        token_endpoint: format!("{}/token", server.uri()).parse().unwrap(),
        scope: None,
        audience: None,
        client_auth,
        signing: None,
        options: Default::default(),
    }
}

fn client() -> TokenClient {
    TokenClient::new(reqwest::Client::builder().no_proxy().build().unwrap(), TokenClientSettings::default())
}

fn form(request: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(&request.body).into_owned().collect()
}

async fn reply(template: ResponseTemplate) -> (MockServer, OAuth2Config) {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/token")).respond_with(template).expect(1).mount(&server).await;
    let config = config(&server, ClientAuth::Basic);
    (server, config)
}

fn json_reply(status: u16, body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

async fn fetch(config: &OAuth2Config) -> Result<AccessToken, TokenError> {
    client().fetch(TokenGrant::ClientCredentials(config), Duration::from_secs(5)).await
}

#[tokio::test]
async fn client_secret_basic_encodes_special_characters_before_base64() {
    let server = MockServer::start().await;
    let expected = format!("Basic {}", BASE64.encode("a%3Ab+c%2Fd:s3cr3t%3Awith%2Fspecial%2Bchars+%C3%BC"));
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("authorization", expected.as_str()))
        .and(header("accept", "application/json"))
        .and(|r: &Request| form(r) == [("grant_type".to_owned(), "client_credentials".to_owned())])
        .respond_with(json_reply(200, json!({"access_token": "tok", "token_type": "Bearer", "expires_in": 60})))
        .expect(1)
        .mount(&server)
        .await;
    let config = OAuth2Config { client_id: "a:b c/d".into(), ..config(&server, ClientAuth::Basic) };

    let token = fetch(&config).await.unwrap();

    assert_eq!(token.value.expose_secret(), "tok");
    assert_eq!(token.expires_in, Some(Duration::from_secs(60)));
    assert_eq!(token.lifetime, Duration::from_secs(60));
}

#[tokio::test]
async fn client_secret_post_sends_id_and_secret_as_form_fields_and_no_authorization_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(|r: &Request| !r.headers.contains_key("authorization"))
        .and(|r: &Request| {
            let mut fields = form(r);
            fields.sort();
            fields
                == [
                    ("client_id".to_owned(), "client-1".to_owned()),
                    ("client_secret".to_owned(), SECRET.to_owned()),
                    ("grant_type".to_owned(), "client_credentials".to_owned()),
                ]
        })
        .respond_with(json_reply(200, json!({"access_token": "tok", "token_type": "bearer"})))
        .expect(1)
        .mount(&server)
        .await;

    let token = fetch(&config(&server, ClientAuth::Post)).await.unwrap();

    assert_eq!(token.value.expose_secret(), "tok");
}

#[tokio::test]
async fn scope_and_audience_are_sent_only_when_set() {
    let server = MockServer::start().await;
    let has = |name: &'static str| move |r: &Request| form(r).iter().any(|(k, _)| k == name);
    Mock::given(method("POST"))
        .and(|r: &Request| {
            let fields = form(r);
            fields.contains(&("scope".into(), "read write".into()))
                && fields.contains(&("audience".into(), "https://api.example".into()))
        })
        .respond_with(json_reply(200, json!({"access_token": "with"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(move |r: &Request| !has("scope")(r) && !has("audience")(r))
        .respond_with(json_reply(200, json!({"access_token": "without"})))
        .expect(1)
        .mount(&server)
        .await;
    let plain = config(&server, ClientAuth::Basic);
    let scoped = OAuth2Config {
        scope: Some("read write".into()),
        audience: Some("https://api.example".into()),
        ..plain.clone()
    };

    assert_eq!(fetch(&scoped).await.unwrap().value.expose_secret(), "with");
    assert_eq!(fetch(&plain).await.unwrap().value.expose_secret(), "without");
}

#[tokio::test]
async fn a_string_expires_in_is_read_as_seconds() {
    let (_server, config) =
        reply(json_reply(200, json!({"access_token": "tok", "token_type": "Bearer", "expires_in": "1800"}))).await;

    let token = fetch(&config).await.unwrap();

    assert_eq!(token.expires_in, Some(Duration::from_secs(1800)));
    assert_eq!(token.expires_at(), token.fetched_at + Duration::from_secs(1800));
}

#[tokio::test]
async fn a_form_encoded_reply_is_accepted_and_gets_the_default_lifetime() {
    let (_server, config) =
        reply(ResponseTemplate::new(200).set_body_raw(
            "access_token=gho_abc&scope=repo%2Cgist&token_type=bearer",
            "application/x-www-form-urlencoded",
        ))
        .await;

    let token = fetch(&config).await.unwrap();

    assert_eq!(token.value.expose_secret(), "gho_abc");
    assert_eq!(token.scope.as_deref(), Some("repo,gist"));
    assert_eq!(token.expires_in, None);
    assert_eq!(token.lifetime, TokenClientSettings::default().default_lifetime);
}

#[tokio::test]
async fn a_mislabelled_json_reply_is_still_read() {
    let (_server, config) =
        reply(ResponseTemplate::new(200).set_body_raw(r#"{"access_token":"tok","expires_in":30}"#, "text/plain")).await;

    assert_eq!(fetch(&config).await.unwrap().lifetime, Duration::from_secs(30));
}

#[tokio::test]
async fn a_2xx_reply_carrying_error_is_an_error_response() {
    let (_server, config) =
        reply(json_reply(200, json!({"error": "invalid_scope", "error_description": "scope x is unknown"}))).await;

    let error = fetch(&config).await.unwrap_err();

    assert!(
        matches!(&error, TokenError::ErrorResponse { error, description }
            if error == "invalid_scope" && description.as_deref() == Some("scope x is unknown")),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_empty_access_token_is_refused() {
    let (_server, config) = reply(json_reply(200, json!({"access_token": "", "token_type": "Bearer"}))).await;

    assert!(matches!(fetch(&config).await, Err(TokenError::EmptyToken)));
}

#[tokio::test]
async fn a_token_type_other_than_bearer_is_refused() {
    let (_server, config) = reply(json_reply(200, json!({"access_token": "tok", "token_type": "mac"}))).await;

    assert!(matches!(fetch(&config).await, Err(TokenError::UnsupportedTokenType(t)) if t == "mac"));
}

#[tokio::test]
async fn an_html_page_with_status_200_is_malformed_and_not_quoted_in_full() {
    let page = "<html><head><title>Sign in</title></head><body>portal internals: db01.corp</body></html>";
    let (_server, config) = reply(ResponseTemplate::new(200).set_body_raw(page, "text/html")).await;

    let error = fetch(&config).await.unwrap_err();

    let TokenError::Malformed(message) = &error else { panic!("{error:?}") };
    assert!(message.contains("text/html"), "{message}");
    assert!(!message.contains("db01.corp"), "{message}");
}

#[tokio::test]
async fn a_400_with_an_rfc_error_body_is_a_status_error_with_its_code() {
    let (_server, config) =
        reply(json_reply(400, json!({"error": "invalid_client", "error_description": "unknown client"}))).await;

    let error = fetch(&config).await.unwrap_err();

    assert!(
        matches!(&error, TokenError::Status { status: 400, error: Some(code), description: Some(d) }
            if code == "invalid_client" && d == "unknown client"),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("invalid_client"), "{error}");
}

#[tokio::test]
async fn a_503_is_retryable() {
    let (_server, config) = reply(ResponseTemplate::new(503).set_body_string("maintenance")).await;

    let error = fetch(&config).await.unwrap_err();

    assert!(matches!(error, TokenError::Status { status: 503, error: None, .. }), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_description_echoing_the_client_secret_is_redacted() {
    let encoded = form_encode(SECRET);
    let echo = format!("bad secret {SECRET} (sent as {encoded})");
    let (_server, config) =
        reply(json_reply(401, json!({"error": format!("invalid_client {SECRET}"), "error_description": echo}))).await;

    let error = fetch(&config).await.unwrap_err();

    for text in [format!("{error}"), format!("{error:?}")] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains(&encoded), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains(REDACTED), "{text}");
    }
}

#[tokio::test]
async fn a_long_description_is_capped() {
    let (_server, config) =
        reply(json_reply(400, json!({"error": "invalid_request", "error_description": "x".repeat(5000)}))).await;

    let error = fetch(&config).await.unwrap_err();

    assert!(error.to_string().len() < 400, "{error}");
}

#[tokio::test]
async fn a_body_larger_than_the_budget_is_refused() {
    let (_server, config) = reply(
        ResponseTemplate::new(200)
            .set_body_raw(format!(r#"{{"access_token":"{}"}}"#, "a".repeat(4096)), "application/json"),
    )
    .await;
    let client = TokenClient::new(
        reqwest::Client::builder().no_proxy().build().unwrap(),
        TokenClientSettings { max_body_bytes: 1024, ..Default::default() },
    );

    let result = client.fetch(TokenGrant::ClientCredentials(&config), Duration::from_secs(5)).await;

    assert!(matches!(result, Err(TokenError::BodyTooLarge)), "{result:?}");
}

#[tokio::test]
async fn a_chunked_body_without_length_is_cut_at_the_budget() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..64 {
            let chunk = "a".repeat(512);
            if socket.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let config = OAuth2Config {
        client_id: "client-1".into(),
        client_secret: Some(SecretString::from(SECRET)),
        token_endpoint: format!("http://{address}/token").parse().unwrap(),
        scope: None,
        audience: None,
        client_auth: ClientAuth::Basic,
        signing: None,
        options: Default::default(),
    };
    let client = TokenClient::new(
        reqwest::Client::builder().no_proxy().build().unwrap(),
        TokenClientSettings { max_body_bytes: 1024, ..Default::default() },
    );

    let result = client.fetch(TokenGrant::ClientCredentials(&config), Duration::from_secs(5)).await;

    assert!(matches!(result, Err(TokenError::BodyTooLarge)), "{result:?}");
    server.abort();
}

#[tokio::test]
async fn a_slow_endpoint_times_out_within_the_budget() {
    let (_server, config) =
        reply(json_reply(200, json!({"access_token": "late"})).set_delay(Duration::from_secs(3))).await;
    let started = std::time::Instant::now();

    let result = client().fetch(TokenGrant::ClientCredentials(&config), Duration::from_millis(200)).await;

    assert!(matches!(result, Err(TokenError::Timeout)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(TokenError::Timeout.is_retryable());
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let config = OAuth2Config {
        client_id: "client-1".into(),
        client_secret: Some(SecretString::from(SECRET)),
        token_endpoint: format!("http://{address}/token").parse().unwrap(),
        scope: None,
        audience: None,
        client_auth: ClientAuth::Basic,
        signing: None,
        options: Default::default(),
    };

    let error = fetch(&config).await.unwrap_err();

    assert!(matches!(error, TokenError::Connect(_)), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn debug_of_an_access_token_hides_its_value() {
    let (_server, config) = reply(json_reply(200, json!({"access_token": "very-secret-token-value"}))).await;

    let token = fetch(&config).await.unwrap();

    let debug = format!("{token:?}");
    assert!(!debug.contains("very-secret-token-value"), "{debug}");
    assert!(debug.contains(REDACTED), "{debug}");
}

#[test]
fn expires_in_accepts_integers_strings_and_fractions_but_not_negatives() {
    assert_eq!(parse_seconds("3600"), Some(3600));
    assert_eq!(parse_seconds(" 60 "), Some(60));
    assert_eq!(parse_seconds("59.9"), Some(59));
    assert_eq!(parse_seconds("-1"), None);
    assert_eq!(parse_seconds("soon"), None);
}
