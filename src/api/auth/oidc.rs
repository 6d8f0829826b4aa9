//! An external OIDC/UAA issuer: its JWTs are verified against the keys it publishes (OpenID
//! discovery, then its JWKS, fetched over HTTPS and cached; an unknown `kid` triggers a
//! bounded refetch so key rotation needs no restart). The username and groups claims map to the
//! Kubernetes identity, as kube-apiserver's `--oidc-*` flags do.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client as HttpClient, connect::HttpConnector};
use jsonwebtoken::{
    DecodingKey, Validation,
    jwk::{AlgorithmParameters, Jwk, JwkSet},
};
use rustls::pki_types::CertificateDer;
use serde_json::Value;

use super::Identity;
use crate::api::error::{CfError, CfResult};

/// How long fetched keys are trusted before being fetched again.
const KEYS_TTL: Duration = Duration::from_secs(600);
/// Least time between two fetches forced by an unknown `kid`, so forged `kid`s cannot make the
/// façade hammer the issuer.
const REFETCH_MIN: Duration = Duration::from_secs(10);
/// Largest discovery or JWKS document accepted.
const MAX_DOC: usize = 1024 * 1024;

/// Settings of the external issuer.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The `iss` of its tokens, e.g. `https://uaa.example.com/oauth/token`.
    pub issuer_url: String,
    /// An audience tokens must carry (UAA puts `cloud_controller` in CC tokens); `None` checks none.
    pub audience: Option<String>,
    /// The claim naming the user (`user_name` for UAA, `email` or `sub` elsewhere).
    pub username_claim: String,
    /// The claim listing groups, if any.
    pub groups_claim: Option<String>,
    /// Prefixed to user names to make the Kubernetes user name.
    pub user_prefix: String,
    /// Where the cf CLI logs in; defaults to the issuer URL without `/oauth/token`.
    pub login_url: Option<String>,
    /// The JWKS URL; defaults to the `jwks_uri` of the issuer's discovery document.
    pub jwks_url: Option<String>,
    /// PEM CA bundle for the issuer's TLS; the system roots without it.
    pub ca_pem: Option<String>,
}

impl OidcConfig {
    /// Settings for `issuer_url` with UAA's claim names.
    pub fn new(issuer_url: impl Into<String>) -> Self {
        Self {
            issuer_url: issuer_url.into(),
            audience: Some("cloud_controller".to_owned()),
            username_claim: "user_name".to_owned(),
            groups_claim: None,
            user_prefix: String::new(),
            login_url: None,
            jwks_url: None,
            ca_pem: None,
        }
    }
}

#[derive(Default)]
struct Keys {
    keys: Vec<Jwk>,
    fetched: Option<Instant>,
}

/// Verifies an external issuer's tokens.
pub struct Oidc {
    config: OidcConfig,
    login_url: String,
    http: HttpClient<HttpsConnector<HttpConnector>, Empty<axum::body::Bytes>>,
    keys: tokio::sync::Mutex<Keys>,
}

/// Only HTTPS, except on loopback (a local issuer in tests and dev).
fn check_url(url: &str) -> Result<(), String> {
    let uri: axum::http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => Err(format!("{url}: the issuer must be reached over https")),
    }
}

impl Oidc {
    /// A verifier for `config`; fails on a bad URL or CA bundle.
    pub fn new(config: OidcConfig) -> Result<Self, String> {
        check_url(&config.issuer_url)?;
        if let Some(jwks) = &config.jwks_url {
            check_url(jwks)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = match &config.ca_pem {
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for der in super::clientcert::ders_from_pem(pem).map_err(|e| format!("issuer CA: {e}"))? {
                    roots
                        .add(CertificateDer::from(der))
                        .map_err(|e| format!("issuer CA: {e}"))?;
                }
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls)
            }
            None => hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider)
                .map_err(|e| format!("system CA roots: {e}"))?,
        };
        let connector = builder.https_or_http().enable_http1().build();
        let http = HttpClient::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        let login_url = config.login_url.clone().unwrap_or_else(|| {
            let trimmed = config.issuer_url.trim_end_matches('/');
            trimmed.strip_suffix("/oauth/token").unwrap_or(trimmed).to_owned()
        });
        Ok(Self {
            config,
            login_url,
            http,
            keys: tokio::sync::Mutex::new(Keys::default()),
        })
    }

    /// The `iss` its tokens carry.
    pub fn issuer(&self) -> &str {
        &self.config.issuer_url
    }

    /// Where the cf CLI logs in.
    pub fn login_url(&self) -> &str {
        &self.login_url
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let uri: axum::http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let response = tokio::time::timeout(Duration::from_secs(10), self.http.get(uri))
            .await
            .map_err(|_| format!("{url}: timed out"))?
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_DOC)
            .collect()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }

    async fn fetch_keys(&self) -> Result<Vec<Jwk>, String> {
        let jwks_url = match &self.config.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer_url.trim_end_matches('/')
                );
                let doc = self.get_json(&discovery).await?;
                let url = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{discovery}: no jwks_uri"))?
                    .to_owned();
                check_url(&url)?;
                url
            }
        };
        let set: JwkSet = serde_json::from_value(self.get_json(&jwks_url).await?)
            .map_err(|e| format!("{jwks_url}: {e}"))?;
        // Symmetric keys have no place in a published key set: accepting one would let anyone
        // who read it mint tokens.
        Ok(set
            .keys
            .into_iter()
            .filter(|k| !matches!(k.algorithm, AlgorithmParameters::OctetKey(_)))
            .collect())
    }

    /// The key for `kid`, fetching the key set when stale or when `kid` is unknown.
    async fn key(&self, kid: Option<&str>) -> CfResult<Jwk> {
        let pick = |keys: &[Jwk]| match kid {
            Some(kid) => keys
                .iter()
                .find(|k| k.common.key_id.as_deref() == Some(kid))
                .cloned(),
            None if keys.len() == 1 => keys.first().cloned(),
            None => None,
        };
        let mut keys = self.keys.lock().await;
        let age = keys.fetched.map(|at| at.elapsed());
        let stale = age.is_none_or(|a| a > KEYS_TTL);
        if !stale && let Some(key) = pick(&keys.keys) {
            return Ok(key);
        }
        if stale || age.is_some_and(|a| a > REFETCH_MIN) {
            match self.fetch_keys().await {
                Ok(fetched) => {
                    keys.keys = fetched;
                    keys.fetched = Some(Instant::now());
                }
                Err(e) if keys.keys.is_empty() => {
                    tracing::warn!(error = %e, "OIDC keys unavailable");
                    return Err(CfError::Unavailable(
                        "The token issuer's keys are unavailable".to_owned(),
                    ));
                }
                Err(e) => tracing::warn!(error = %e, "OIDC key refresh failed; keeping the known keys"),
            }
        }
        pick(&keys.keys).ok_or(CfError::InvalidAuthToken)
    }

    /// The caller of `token`: 401 CF-InvalidAuthToken unless it is a valid token of the issuer.
    pub async fn verify(&self, token: &str) -> CfResult<Identity> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| CfError::InvalidAuthToken)?;
        let jwk = self.key(header.kid.as_deref()).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| CfError::InvalidAuthToken)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 30;
        validation.set_issuer(&[&self.config.issuer_url]);
        match &self.config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation).map_err(
            |e| {
                tracing::debug!(error = %e, "OIDC token refused");
                CfError::InvalidAuthToken
            },
        )?;
        identity_of(&self.config, &data.claims).ok_or(CfError::InvalidAuthToken)
    }
}

/// The Kubernetes identity named by verified `claims`.
pub fn identity_of(config: &OidcConfig, claims: &serde_json::Map<String, Value>) -> Option<Identity> {
    let name = claims
        .get(&config.username_claim)?
        .as_str()
        .filter(|n| !n.is_empty())?;
    let groups = match config.groups_claim.as_ref().and_then(|c| claims.get(c)) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    Some(Identity::user(format!("{}{name}", config.user_prefix), groups))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn claims_map_to_identities() {
        let mut config = OidcConfig::new("https://uaa.example.com/oauth/token");
        config.user_prefix = "oidc:".to_owned();
        config.groups_claim = Some("groups".to_owned());
        let claims = json!({"user_name": "alice", "groups": ["dev", 3, "ops"]});
        let me = identity_of(&config, claims.as_object().unwrap()).unwrap();
        assert_eq!(
            me,
            Identity::user("oidc:alice".to_owned(), vec!["dev".to_owned(), "ops".to_owned()])
        );
        let one = json!({"user_name": "bob", "groups": "dev"});
        assert_eq!(
            identity_of(&config, one.as_object().unwrap()).unwrap().groups,
            vec!["dev".to_owned()]
        );
        assert!(identity_of(&config, json!({"sub": "x"}).as_object().unwrap()).is_none());
        assert!(identity_of(&config, json!({"user_name": ""}).as_object().unwrap()).is_none());
    }

    #[test]
    fn issuers_must_use_https_off_loopback() {
        assert!(Oidc::new(OidcConfig::new("http://uaa.example.com/oauth/token")).is_err());
        let local = Oidc::new(OidcConfig::new("http://127.0.0.1:8080/oauth/token")).unwrap();
        assert_eq!(local.login_url(), "http://127.0.0.1:8080");
        assert_eq!(local.issuer(), "http://127.0.0.1:8080/oauth/token");
        let mut custom = OidcConfig::new("https://login.example.com");
        custom.ca_pem = Some("garbage".to_owned());
        assert!(Oidc::new(custom).is_err());
    }
}
