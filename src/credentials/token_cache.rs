//! OAuth 2.0 tokens shared by every job that uses the same profile.
//!
//! - **Single flight.** Many jobs start at once with the same profile; one
//!   token request serves them all. The first caller for a key spawns the fetch
//!   and the others join it and share its token or its error. The fetch runs in
//!   its own task, so a caller that is cancelled (its job timed out) does not
//!   cancel it for the others.
//! - **Never stale, refreshed ahead.** A token is not handed out in its last
//!   second (last 10 s for lifetimes of 100 s or more, see
//!   [`AccessToken::usable_until`]). It is renewed a tenth of its lifetime (at
//!   most `max_refresh_margin`) before that: the first caller after that point
//!   starts a background refresh and still gets the current token, so jobs do
//!   not stall on the token endpoint at a normal expiry.
//! - **One token for the fleet.** With [`SharedTokens`], a miss asks
//!   PostgreSQL before the token endpoint, so N processes cost one token
//!   request (see `token_store`). This memory cache stays in front: a hit never
//!   touches the database.
//! - **Version in the key.** The key is (profile id, profile version, digest of
//!   every token-request parameter). A token fetched for an older version of a
//!   profile can never serve a newer one, even if an invalidation event is late
//!   or lost; events only free the memory sooner.
//! - **Failures remembered.** A failed fetch is kept for `failure_ttl` and
//!   returned to every caller meanwhile, so a down token endpoint sees one
//!   request per key per `failure_ttl` instead of one per job. A failed
//!   refresh does not take away a token that is still valid.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use tokio::time::Instant;
use uuid::Uuid;

use super::oauth2::{AccessToken, TokenClient, TokenError};
use super::token_store::{Obtained, SharedTokens, TokenKey, token_digest};
use crate::profile::AuthConfig;
use crate::profile::auth_config::TokenGrant;

type FetchResult = Result<(Arc<AccessToken>, Obtained), Arc<TokenError>>;

#[derive(Debug, Clone)]
pub struct TokenCacheSettings {
    /// How long a failed fetch is returned as is before the endpoint is tried again.
    pub failure_ttl: Duration,
    /// The most a token is refreshed ahead of its last usable moment (10 % of its lifetime if less).
    pub max_refresh_margin: Duration,
}

impl Default for TokenCacheSettings {
    fn default() -> Self {
        Self { failure_ttl: Duration::from_secs(5), max_refresh_margin: Duration::from_secs(60) }
    }
}

/// How a `get` was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A token cached in this process.
    Hit,
    /// This call started the fetch, and the token endpoint was asked.
    Miss,
    /// This call started or joined a fetch that found a token another process had stored.
    Shared,
    /// This call waited on a fetch another call had started, from the token endpoint.
    Joined,
}

/// An OAuth 2.0 config and whose it is: what tokens are fetched for.
#[derive(Clone)]
pub struct TokenSource {
    config: Arc<AuthConfig>,
    key: TokenKey,
    /// The profile's workspace; `None` for a job's own inline credentials,
    /// whose tokens stay in this process.
    workspace_id: Option<String>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource").field("key", &self.key.profile_id).field("version", &self.key.version).finish()
    }
}

impl TokenSource {
    /// The token source of `config` when it is an OAuth type: of a stored
    /// profile (`profile` = id and version, in `workspace_id`), or inline.
    /// `digest` is the config's [`AuthConfig::token_request_digest`], when
    /// the caller keeps it (it is the same for every job of a profile version).
    pub fn new(
        config: Arc<AuthConfig>,
        profile: Option<(Uuid, i64)>,
        workspace_id: &str,
        digest: Option<[u8; 32]>,
    ) -> Option<Self> {
        config.token_grant()?;
        let (profile_id, version) = profile.unwrap_or((Uuid::nil(), 0));
        let params = digest.unwrap_or_else(|| config.token_request_digest());
        let key = TokenKey { profile_id, version, params };
        let workspace_id = profile.map(|_| workspace_id.to_owned());
        Some(Self { config, key, workspace_id })
    }

    pub fn grant(&self) -> TokenGrant<'_> {
        self.config.token_grant().expect("a token source holds an OAuth config")
    }

    pub fn config(&self) -> &Arc<AuthConfig> {
        &self.config
    }
}

/// The token cache. `Send + Sync`; share it as `Arc<TokenCache>`.
pub struct TokenCache {
    inner: Arc<Inner>,
}

struct Inner {
    client: TokenClient,
    settings: TokenCacheSettings,
    /// Tokens shared with the other processes of the fleet, if so configured.
    shared: Option<SharedTokens>,
    entries: Mutex<HashMap<TokenKey, Entry>>,
    /// Digests of the tokens targets refused lately (a 401), newest last: never
    /// adopted from the fleet's store again, even before their rows are gone.
    refused: Mutex<VecDeque<[u8; 32]>>,
    /// Tells a finished fetch whether it is still the one its entry waits for.
    next_fetch_id: AtomicU64,
}

/// How many refused tokens are remembered.
const REFUSED_REMEMBERED: usize = 64;

#[derive(Default)]
struct Entry {
    token: Option<Arc<AccessToken>>,
    fetch: Option<InFlight>,
    failure: Option<Failure>,
}

struct InFlight {
    id: u64,
    result: Shared<BoxFuture<'static, FetchResult>>,
}

struct Failure {
    error: Arc<TokenError>,
    until: Instant,
}

impl Entry {
    fn failed_recently(&self, now: Instant) -> bool {
        self.failure.as_ref().is_some_and(|f| now < f.until)
    }

    /// Holds nothing a caller could still use.
    fn is_idle(&self, now: Instant) -> bool {
        self.fetch.is_none()
            && self.token.as_ref().is_none_or(|t| now >= t.usable_until())
            && !self.failed_recently(now)
    }
}

enum Step {
    Done(Result<(Arc<AccessToken>, Lookup), Arc<TokenError>>),
    Wait(Shared<BoxFuture<'static, FetchResult>>, Option<Lookup>),
}

impl TokenCache {
    pub fn new(client: TokenClient, settings: TokenCacheSettings, shared: Option<SharedTokens>) -> Self {
        let inner = Inner {
            client,
            settings,
            shared,
            entries: Mutex::new(HashMap::new()),
            refused: Mutex::default(),
            next_fetch_id: AtomicU64::new(0),
        };
        Self { inner: Arc::new(inner) }
    }

    /// A token fit to send for `source`, fetched if needed. `timeout` bounds
    /// the fetch this call starts; a call that joins another's fetch waits for it.
    pub async fn get(
        &self,
        source: &TokenSource,
        timeout: Duration,
    ) -> Result<(Arc<AccessToken>, Lookup), Arc<TokenError>> {
        match self.step(source, timeout) {
            Step::Done(result) => result,
            // A token adopted from the fleet's store is no fresher for the callers that
            // waited on its fetch: it may be one a target is about to refuse.
            Step::Wait(fetch, joined) => fetch.await.map(|(token, obtained)| {
                let lookup = match (obtained, joined) {
                    (Obtained::Shared, _) => Lookup::Shared,
                    (Obtained::Fetched, Some(joined)) => joined,
                    (Obtained::Fetched, None) => Lookup::Miss,
                };
                (token, lookup)
            }),
        }
    }

    /// Decides under the lock what `get` does; the waiting happens outside it.
    fn step(&self, source: &TokenSource, timeout: Duration) -> Step {
        let (key, now) = (source.key, Instant::now());
        let mut entries = self.inner.entries();
        let entry = entries.entry(key).or_default();
        if let Some(token) = entry.token.clone() {
            if now < token.usable_until() {
                let due = now >= token.refresh_at(self.inner.settings.max_refresh_margin);
                if due && entry.fetch.is_none() && !entry.failed_recently(now) {
                    tracing::debug!(profile_id = %key.profile_id, version = key.version, "refreshing an OAuth 2.0 token ahead of expiry");
                    entry.fetch = Some(self.spawn_fetch(source, timeout));
                }
                return Step::Done(Ok((token, Lookup::Hit)));
            }
            entry.token = None;
        }
        if let Some(fetch) = &entry.fetch {
            return Step::Wait(fetch.result.clone(), Some(Lookup::Joined));
        }
        if let Some(failure) = entry.failure.as_ref().filter(|f| now < f.until) {
            return Step::Done(Err(Arc::clone(&failure.error)));
        }
        let fetch = self.spawn_fetch(source, timeout);
        let result = fetch.result.clone();
        entry.fetch = Some(fetch);
        // Fetches are rare (one per key per token lifetime), so this is a cheap moment to
        // forget keys nobody refreshed, e.g. of profiles no job uses any more.
        entries.retain(|k, e| *k == key || !e.is_idle(now));
        Step::Wait(result, None)
    }

    fn spawn_fetch(&self, source: &TokenSource, timeout: Duration) -> InFlight {
        let id = self.inner.next_fetch_id.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::clone(&self.inner);
        let source = source.clone();
        let task = tokio::spawn(async move {
            // A panic would otherwise leave the key marked in flight, with no one to clear it.
            let result = match AssertUnwindSafe(inner.obtain(&source, timeout)).catch_unwind().await {
                Ok(obtained) => obtained.map(|(token, how)| (Arc::new(token), how)).map_err(Arc::new),
                Err(_) => Err(Arc::new(TokenError::Request("the token fetch panicked".into()))),
            };
            inner.complete(source.key, id, &result);
            result
        });
        let result = task
            .map(|joined| {
                joined.unwrap_or_else(|_| Err(Arc::new(TokenError::Request("the token fetch was cancelled".into()))))
            })
            .boxed()
            .shared();
        InFlight { id, result }
    }

    /// A 401 from the API: forget the token, but only if it is still the one
    /// that was rejected, so a token another job fetched meanwhile is kept.
    /// With fleet sharing the stored copy goes too (the same way), before the
    /// caller fetches again, so the whole fleet refetches once.
    pub async fn reject(&self, source: &TokenSource, rejected: &Arc<AccessToken>) {
        {
            let mut refused = crate::lock::lock(&self.inner.refused);
            let digest = token_digest(&rejected.value);
            if !refused.contains(&digest) {
                if refused.len() == REFUSED_REMEMBERED {
                    refused.pop_front();
                }
                refused.push_back(digest);
            }
        }
        {
            let mut entries = self.inner.entries();
            if let Some(entry) = entries.get_mut(&source.key)
                && entry.token.as_ref().is_some_and(|t| Arc::ptr_eq(t, rejected))
            {
                entry.token = None;
                if entry.is_idle(Instant::now()) {
                    entries.remove(&source.key);
                }
            }
        }
        if let (Some(shared), Some(_)) = (&self.inner.shared, &source.workspace_id) {
            shared.reject(&source.key, rejected).await;
        }
    }

    /// The profile changed or was deleted: forget all its versions, failures included.
    pub fn invalidate_profile(&self, profile_id: Uuid) {
        self.inner.entries().retain(|key, _| key.profile_id != profile_id);
    }

    /// Forgets everything, e.g. after a broker reconnect, when events may have been missed.
    pub fn clear(&self) {
        self.inner.entries().clear();
    }

    /// The number of cached keys.
    pub fn len(&self) -> usize {
        self.inner.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache").field("len", &self.len()).field("settings", &self.inner.settings).finish()
    }
}

impl Inner {
    fn entries(&self) -> MutexGuard<'_, HashMap<TokenKey, Entry>> {
        crate::lock::lock(&self.entries)
    }

    /// A token from the fleet's store when sharing, else from the token endpoint.
    async fn obtain(&self, source: &TokenSource, timeout: Duration) -> Result<(AccessToken, Obtained), TokenError> {
        let profile = source.workspace_id.as_ref().map(|_| source.key.profile_id);
        let certificate = source.config.tls_identity().map(|c| (c, profile));
        let fetch = || self.client.fetch_presenting(source.grant(), certificate, timeout);
        match (&self.shared, &source.workspace_id) {
            (Some(shared), Some(workspace_id)) => {
                let refused: Vec<[u8; 32]> = crate::lock::lock(&self.refused).iter().copied().collect();
                let margin = self.settings.max_refresh_margin;
                shared.obtain(source.key, workspace_id, margin, &refused, timeout, fetch).await
            }
            _ => Ok((fetch().await?, Obtained::Fetched)),
        }
    }

    /// Records a finished fetch, unless its entry was dropped or replaced
    /// meanwhile: then the result only goes to the callers that waited for it.
    fn complete(&self, key: TokenKey, id: u64, result: &FetchResult) {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(&key) else { return };
        if entry.fetch.as_ref().is_none_or(|f| f.id != id) {
            return;
        }
        entry.fetch = None;
        match result {
            Ok((token, _)) => {
                entry.token = Some(Arc::clone(token));
                entry.failure = None;
            }
            Err(error) => {
                tracing::debug!(profile_id = %key.profile_id, version = key.version, %error, "remembering a failed OAuth 2.0 token fetch");
                let until = Instant::now() + self.settings.failure_ttl;
                entry.failure = Some(Failure { error: Arc::clone(error), until });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::oauth2::TokenClientSettings;
    use crate::profile::auth_config::{ClientAuth, Credential, OAuth2Config};
    use secrecy::ExposeSecret as _;
    use secrecy::SecretString;
    use serde_json::json;
    use std::sync::atomic::AtomicUsize;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// Answers `token-1`, `token-2`, … so tests can tell fetches apart.
    struct Tokens {
        issued: AtomicUsize,
        expires_in: u64,
        delay: Duration,
    }

    impl Tokens {
        fn new(expires_in: u64, delay: Duration) -> Self {
            Self { issued: AtomicUsize::new(0), expires_in, delay }
        }
    }

    impl Respond for Tokens {
        fn respond(&self, _: &Request) -> ResponseTemplate {
            let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"access_token": format!("token-{n}"), "token_type": "Bearer", "expires_in": self.expires_in}),
                )
                .set_delay(self.delay)
        }
    }

    async fn endpoint(responder: impl Respond + 'static, expected: u64) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST")).and(path("/token")).respond_with(responder).expect(expected).mount(&server).await;
        server
    }

    fn config(server: &MockServer) -> OAuth2Config {
        OAuth2Config {
            client_id: "client-1".into(),
            client_secret: Some(SecretString::from("secret-1")),
            token_endpoint: format!("{}/token", server.uri()).parse().unwrap(),
            scope: Some("read".into()),
            audience: None,
            client_auth: ClientAuth::Basic,
            signing: None,
            options: Default::default(),
        }
    }

    /// The token source of `config` for version `version` of profile `id`.
    fn source(id: Uuid, version: i64, config: &OAuth2Config) -> TokenSource {
        let config = Arc::new(AuthConfig::from(Credential::OAuth2ClientCredentials(config.clone())));
        TokenSource::new(config, Some((id, version)), "acme", None).unwrap()
    }

    fn cache(settings: TokenCacheSettings) -> TokenCache {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        TokenCache::new(TokenClient::new(http, TokenClientSettings::default()), settings, None)
    }

    fn value(token: &AccessToken) -> &str {
        token.value.expose_secret()
    }

    /// Polls `get` until it returns `expected`, for at most `within`.
    async fn eventually_get(
        cache: &TokenCache,
        id: Uuid,
        config: &OAuth2Config,
        expected: &str,
        within: Duration,
    ) -> (Arc<AccessToken>, Lookup) {
        let deadline = Instant::now() + within;
        loop {
            let (token, lookup) = cache.get(&source(id, 1, config), TIMEOUT).await.unwrap();
            if value(&token) == expected {
                return (token, lookup);
            }
            assert!(Instant::now() < deadline, "still got {} instead of {expected}", value(&token));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_concurrent_gets_on_a_cold_key_make_one_request_and_share_its_token() {
        let server = endpoint(Tokens::new(3600, Duration::from_millis(200)), 1).await;
        let cache = Arc::new(cache(TokenCacheSettings::default()));
        let config = config(&server);
        let id = Uuid::new_v4();

        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (cache, config) = (Arc::clone(&cache), config.clone());
                tokio::spawn(async move { cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap() })
            })
            .collect();
        let results = futures_util::future::join_all(tasks).await;

        let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        assert!(results.iter().all(|(t, _)| Arc::ptr_eq(t, &results[0].0)));
        assert_eq!(value(&results[0].0), "token-1");
        assert_eq!(results.iter().filter(|(_, l)| *l == Lookup::Miss).count(), 1);
        assert_eq!(results.iter().filter(|(_, l)| *l == Lookup::Joined).count(), 49);
    }

    #[tokio::test]
    async fn a_cached_token_is_a_hit_without_a_request() {
        let server = endpoint(Tokens::new(3600, Duration::ZERO), 1).await;
        let cache = cache(TokenCacheSettings::default());
        let (config, id) = (config(&server), Uuid::new_v4());

        let (first, lookup) = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap();
        assert_eq!(lookup, Lookup::Miss);
        let (second, lookup) = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap();

        assert_eq!(lookup, Lookup::Hit);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn a_token_due_for_refresh_is_still_served_while_one_refresh_runs_in_the_background() {
        let server = endpoint(Tokens::new(4, Duration::ZERO), 2).await;
        let cache = cache(TokenCacheSettings::default());
        let (config, id) = (config(&server), Uuid::new_v4());
        let (first, _) = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap();

        // Deliberate precondition: past the refresh point (2.6 s: the token is
        // sent until 3 s, and renewed a tenth of its lifetime before that).
        tokio::time::sleep_until(first.fetched_at + Duration::from_millis(2800)).await;
        let source = source(id, 1, &config);
        let gets = futures_util::future::join_all((0..5).map(|_| cache.get(&source, TIMEOUT))).await;

        for (token, lookup) in gets.into_iter().map(Result::unwrap) {
            assert!(Arc::ptr_eq(&token, &first));
            assert_eq!(lookup, Lookup::Hit);
        }
        // Served from the cache: the background refresh stored it, no caller waited for it.
        let (_, lookup) = eventually_get(&cache, id, &config, "token-2", Duration::from_secs(1)).await;
        assert_eq!(lookup, Lookup::Hit);
    }

    #[tokio::test]
    async fn a_token_in_its_last_second_is_never_returned_and_callers_wait_for_a_new_one() {
        let server = endpoint(Tokens::new(3, Duration::ZERO), 2).await;
        let cache = cache(TokenCacheSettings::default());
        let (config, id) = (config(&server), Uuid::new_v4());
        let (first, _) = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap();

        // Deliberate precondition: the first token is in its last second (not yet expired).
        tokio::time::sleep_until(first.expires_at() - Duration::from_millis(500)).await;
        let (second, lookup) = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap();

        assert_eq!(value(&second), "token-2");
        assert_eq!(lookup, Lookup::Miss);
    }

    #[test]
    fn a_long_lived_token_keeps_ten_seconds_and_a_short_one_a_second() {
        let token = |secs: u64| AccessToken {
            value: SecretString::from("t"),
            token_type: "Bearer".into(),
            scope: None,
            expires_in: Some(Duration::from_secs(secs)),
            fetched_at: Instant::now(),
            lifetime: Duration::from_secs(secs),
        };
        let kept = |t: &AccessToken| t.expires_at() - t.usable_until();
        assert_eq!(kept(&token(3600)), Duration::from_secs(10));
        assert_eq!(kept(&token(100)), Duration::from_secs(10));
        assert_eq!(kept(&token(99)), Duration::from_secs(1));
        assert_eq!(kept(&token(1)), Duration::from_millis(500));
        let hour = token(3600);
        assert_eq!(hour.usable_until() - hour.refresh_at(Duration::from_secs(60)), Duration::from_secs(60));
    }

    #[tokio::test]
    async fn a_failure_is_remembered_for_failure_ttl_and_retried_after_it() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST")).respond_with(Tokens::new(3600, Duration::ZERO)).expect(1).mount(&server).await;
        let failure_ttl = Duration::from_millis(300);
        let cache = cache(TokenCacheSettings { failure_ttl, ..Default::default() });
        let (config, id) = (config(&server), Uuid::new_v4());

        let first = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap_err();
        let second = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap_err();
        assert!(Arc::ptr_eq(&first, &second), "the remembered error is returned as is");
        assert!(matches!(*first, TokenError::Status { status: 503, .. }));

        // Deliberate precondition: the failure has been forgotten.
        tokio::time::sleep(failure_ttl + Duration::from_millis(50)).await;
        let (token, lookup) = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap();

        assert_eq!(value(&token), "token-1");
        assert_eq!(lookup, Lookup::Miss);
    }

    #[tokio::test]
    async fn a_cancelled_caller_does_not_cancel_the_fetch_for_the_others() {
        let server = endpoint(Tokens::new(3600, Duration::from_millis(300)), 1).await;
        let cache = cache(TokenCacheSettings::default());
        let (config, id) = (config(&server), Uuid::new_v4());

        let cancelled =
            tokio::time::timeout(Duration::from_millis(50), cache.get(&source(id, 1, &config), TIMEOUT)).await;
        assert!(cancelled.is_err());
        let (token, lookup) = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap();

        assert_eq!(value(&token), "token-1");
        assert_eq!(lookup, Lookup::Joined);
    }

    #[tokio::test]
    async fn rejecting_the_current_token_makes_the_next_get_fetch_a_new_one() {
        let server = endpoint(Tokens::new(3600, Duration::ZERO), 2).await;
        let cache = cache(TokenCacheSettings::default());
        let (config, id) = (config(&server), Uuid::new_v4());
        let (first, _) = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap();

        cache.reject(&source(id, 1, &config), &first).await;
        let (second, lookup) = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap();

        assert_eq!(value(&second), "token-2");
        assert_eq!(lookup, Lookup::Miss);
    }

    #[tokio::test]
    async fn rejecting_an_older_token_keeps_the_newer_one() {
        let server = endpoint(Tokens::new(3600, Duration::ZERO), 2).await;
        let cache = cache(TokenCacheSettings::default());
        let (config, id) = (config(&server), Uuid::new_v4());
        let (old, _) = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap();
        cache.reject(&source(id, 1, &config), &old).await;
        let (new, _) = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap();

        // A second job's 401 for the old token arrives late.
        cache.reject(&source(id, 1, &config), &old).await;
        let (current, lookup) = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap();

        assert!(Arc::ptr_eq(&current, &new));
        assert_eq!(lookup, Lookup::Hit);
    }

    #[tokio::test]
    async fn invalidate_profile_drops_all_its_versions_and_clear_drops_everything() {
        let server = endpoint(Tokens::new(3600, Duration::ZERO), 4).await;
        let cache = cache(TokenCacheSettings::default());
        let config = config(&server);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for (id, version) in [(a, 1), (a, 2), (b, 1)] {
            cache.get(&source(id, version, &config), TIMEOUT).await.unwrap();
        }
        assert_eq!(cache.len(), 3);

        cache.invalidate_profile(a);
        assert_eq!(cache.len(), 1);
        let (_, lookup) = cache.get(&source(a, 1, &config), TIMEOUT).await.unwrap();
        assert_eq!(lookup, Lookup::Miss);

        cache.clear();
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn invalidate_profile_also_forgets_a_remembered_failure() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).expect(2).mount(&server).await;
        let cache = cache(TokenCacheSettings { failure_ttl: Duration::from_secs(60), ..Default::default() });
        let (config, id) = (config(&server), Uuid::new_v4());
        cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap_err();

        cache.invalidate_profile(id);
        cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap_err();
    }

    #[tokio::test]
    async fn a_new_profile_version_or_changed_parameters_are_a_different_key() {
        let server = endpoint(Tokens::new(3600, Duration::ZERO), 3).await;
        let cache = cache(TokenCacheSettings::default());
        let (config, id) = (config(&server), Uuid::new_v4());
        let rescoped = OAuth2Config { scope: Some("write".into()), ..config.clone() };

        let (v1, _) = cache.get(&source(id, 1, &config), TIMEOUT).await.unwrap();
        let (v2, lookup) = cache.get(&source(id, 2, &config), TIMEOUT).await.unwrap();
        let (other_scope, _) = cache.get(&source(id, 2, &rescoped), TIMEOUT).await.unwrap();

        assert_eq!(lookup, Lookup::Miss);
        assert_eq!((value(&v1), value(&v2), value(&other_scope)), ("token-1", "token-2", "token-3"));
        assert_eq!(cache.len(), 3);
    }
}
