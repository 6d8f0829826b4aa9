//! Who is calling. Three kinds of credential, each ending as a Kubernetes identity the façade
//! impersonates, so Kubernetes RBAC (the RoleBindings CFRoles produce) decides every write:
//! - `Authorization: Bearer <token>`: a JWT from the built-in issuer or a configured OIDC/UAA
//!   issuer is verified locally; any other token is resolved by a TokenReview, cached with a
//!   TTL so steady-state requests cost no Kubernetes API call.
//! - `Authorization: ClientCert <base64(PEM cert + PEM key)>` (the cf CLI in `cf_on_k8s` mode
//!   for a kubeconfig user with a client certificate): the chain is verified against the
//!   cluster's client CA and the key must match; CN is the user and each O a group, as
//!   kube-apiserver's x509 authenticator does.

pub mod clientcert;
pub mod oidc;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use axum::http::HeaderMap;
use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::{Api, Client, api::PostParams};

use super::{
    error::{CfError, CfResult},
    issuer::{Issuer, IssuerConfig},
};

/// An authenticated caller, as Kubernetes knows them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The Kubernetes user name.
    pub name: String,
    /// The Kubernetes groups.
    pub groups: Vec<String>,
    /// `user` or `service_account`, for `/whoami`.
    pub kind: &'static str,
}

impl Identity {
    /// A user (not a ServiceAccount) named `name` in `groups`.
    pub fn user(name: String, groups: Vec<String>) -> Self {
        let kind = if name.starts_with("system:serviceaccount:") {
            "service_account"
        } else {
            "user"
        };
        Self { name, groups, kind }
    }
}

/// How clients log in, which decides what `/` advertises to the cf CLI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Kubernetes credentials from the user's kubeconfig (`cf_on_k8s: true`).
    #[default]
    Kubernetes,
    /// The façade issues UAA-style tokens itself from a users Secret (`cf login -u -p`).
    Issuer,
    /// An external OIDC/UAA issuer issues the tokens; the façade verifies them by JWKS.
    Oidc,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kubernetes" => Ok(Self::Kubernetes),
            "issuer" => Ok(Self::Issuer),
            "oidc" => Ok(Self::Oidc),
            other => Err(format!("unknown auth mode {other:?}: kubernetes, issuer or oidc")),
        }
    }
}

/// Authentication settings.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// How clients log in.
    pub mode: Mode,
    /// DER CA certificates client certificates must chain to (kube-apiserver's
    /// `--client-ca-file`); without any, `ClientCert` credentials are refused.
    pub client_ca: Vec<Vec<u8>>,
    /// The built-in issuer, used in [`Mode::Issuer`].
    pub issuer: IssuerConfig,
    /// The external issuer, required in [`Mode::Oidc`].
    pub oidc: Option<oidc::OidcConfig>,
}

/// A credential as sent in `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// `Bearer <token>` (any case, as the cf CLI stores `bearer`).
    Bearer(&'a str),
    /// `ClientCert <base64 PEM>`.
    ClientCert(&'a str),
}

/// The credential of a request: 401 CF-NotAuthenticated without an `Authorization` header,
/// 401 CF-InvalidAuthToken when it is not one of the schemes understood.
pub fn credential(headers: &HeaderMap) -> CfResult<Credential<'_>> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(CfError::NotAuthenticated)?
        .to_str()
        .map_err(|_| CfError::InvalidAuthToken)?;
    let (scheme, value) = header.trim().split_once(' ').ok_or(CfError::InvalidAuthToken)?;
    let value = value.trim();
    if value.is_empty() {
        return Err(CfError::InvalidAuthToken);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Credential::Bearer(value))
    } else if scheme.eq_ignore_ascii_case("clientcert") {
        Ok(Credential::ClientCert(value))
    } else {
        Err(CfError::InvalidAuthToken)
    }
}

/// The unverified `iss` claim of a JWT, to route it to the verifier that knows its issuer.
/// Nothing is trusted from it: the chosen verifier checks the signature and the claim again.
pub fn unverified_issuer(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Most cached identities kept; past it expired entries are dropped on insert.
const CACHE_LIMIT: usize = 10_000;

/// Resolves and caches identities.
pub struct Authenticator {
    client: Client,
    ttl: Duration,
    mode: Mode,
    cache: Mutex<HashMap<String, (Identity, Instant)>>,
    client_ca: Option<clientcert::Verifier>,
    issuer: Option<Arc<Issuer>>,
    oidc: Option<oidc::Oidc>,
}

impl Authenticator {
    /// An authenticator for `config`'s auth settings; TokenReviews go through `client`. A bad
    /// client CA or OIDC setting is logged and leaves that kind of credential refused, so the
    /// façade still serves the others.
    pub fn new(client: Client, config: &super::Config) -> Self {
        let auth = &config.auth;
        let client_ca = if auth.client_ca.is_empty() {
            None
        } else {
            clientcert::Verifier::new(&auth.client_ca)
                .map_err(
                    |e| tracing::error!(error = %e, "client CA unusable; ClientCert credentials refused"),
                )
                .ok()
        };
        let issuer = (auth.mode == Mode::Issuer).then(|| {
            Arc::new(Issuer::new(
                client.clone(),
                &config.base_url,
                &config.root_namespace,
                auth.issuer.clone(),
            ))
        });
        let oidc = match (&auth.mode, &auth.oidc) {
            (Mode::Oidc, Some(c)) => oidc::Oidc::new(c.clone())
                .map_err(|e| tracing::error!(error = %e, "OIDC issuer unusable; its tokens are refused"))
                .ok(),
            (Mode::Oidc, None) => {
                tracing::error!("auth mode oidc without an issuer URL; OIDC tokens are refused");
                None
            }
            _ => None,
        };
        Self {
            client,
            ttl: config.identity_ttl,
            mode: auth.mode,
            cache: Mutex::new(HashMap::new()),
            client_ca,
            issuer,
            oidc,
        }
    }

    /// How clients log in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The built-in issuer, in [`Mode::Issuer`].
    pub fn issuer(&self) -> Option<&Arc<Issuer>> {
        self.issuer.as_ref()
    }

    /// Where the cf CLI logs in (`links.login` and `links.uaa` of `/`), outside Kubernetes mode.
    pub fn login_url(&self, base_url: &str) -> Option<String> {
        match self.mode {
            Mode::Kubernetes => None,
            Mode::Issuer => Some(base_url.to_owned()),
            Mode::Oidc => self.oidc.as_ref().map(|o| o.login_url().to_owned()),
        }
    }

    /// The caller of a request: 401 CF-NotAuthenticated without credentials, 401
    /// CF-InvalidAuthToken with bad ones.
    pub async fn identify(&self, headers: &HeaderMap) -> CfResult<Identity> {
        match credential(headers)? {
            Credential::Bearer(token) => self.bearer(token).await,
            Credential::ClientCert(data) => self.client_cert(data),
        }
    }

    async fn bearer(&self, token: &str) -> CfResult<Identity> {
        if let Some(iss) = unverified_issuer(token) {
            if let Some(issuer) = self.issuer.as_ref().filter(|i| i.iss() == iss) {
                return issuer.verify_access(token).await;
            }
            if let Some(oidc) = self.oidc.as_ref().filter(|o| o.issuer() == iss) {
                return oidc.verify(token).await;
            }
        }
        if let Some(identity) = self.cached(token) {
            return Ok(identity);
        }
        let identity = self.review(token).await?;
        self.remember(token, identity.clone(), Instant::now() + self.ttl);
        Ok(identity)
    }

    fn client_cert(&self, data: &str) -> CfResult<Identity> {
        let key = format!("clientcert:{data}");
        if let Some(identity) = self.cached(&key) {
            return Ok(identity);
        }
        let verifier = self.client_ca.as_ref().ok_or_else(|| {
            tracing::info!("ClientCert credential refused: no client CA configured");
            CfError::InvalidAuthToken
        })?;
        let verified = verifier.verify(data, SystemTime::now()).map_err(|e| {
            tracing::info!(error = %e, "ClientCert credential refused");
            CfError::InvalidAuthToken
        })?;
        // Never trust a cached certificate past its own expiry.
        let left = verified
            .not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        self.remember(
            &key,
            verified.identity.clone(),
            Instant::now() + left.min(self.ttl),
        );
        Ok(verified.identity)
    }

    fn cached(&self, key: &str) -> Option<Identity> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(identity, _)| identity.clone())
    }

    fn remember(&self, key: &str, identity: Identity, until: Instant) {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_LIMIT {
            let now = Instant::now();
            cache.retain(|_, (_, until)| now < *until);
        }
        cache.insert(key.to_owned(), (identity, until));
    }

    async fn review(&self, token: &str) -> CfResult<Identity> {
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let result = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(CfError::internal)?;
        let status = result.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(CfError::InvalidAuthToken);
        }
        let user = status.user.unwrap_or_default();
        Ok(Identity::user(
            user.username.unwrap_or_default(),
            user.groups.unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn credentials_parse_by_scheme_in_any_case() {
        assert_eq!(
            credential(&headers("bearer abc")).unwrap(),
            Credential::Bearer("abc")
        );
        assert_eq!(
            credential(&headers("Bearer  abc ")).unwrap(),
            Credential::Bearer("abc")
        );
        assert_eq!(
            credential(&headers("ClientCert Zm9v")).unwrap(),
            Credential::ClientCert("Zm9v")
        );
        assert_eq!(
            credential(&headers("clientcert Zm9v")).unwrap(),
            Credential::ClientCert("Zm9v")
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_told_apart() {
        assert!(matches!(
            credential(&HeaderMap::new()),
            Err(CfError::NotAuthenticated)
        ));
        for bad in ["Basic Zm9vOmJhcg==", "bearer", "Bearer ", "token"] {
            assert!(
                matches!(credential(&headers(bad)), Err(CfError::InvalidAuthToken)),
                "{bad}"
            );
        }
    }

    #[test]
    fn issuer_is_read_from_the_payload_only_for_jwt_shapes() {
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"HS256"}"#),
            b64(r#"{"iss":"https://x/oauth/token"}"#)
        );
        assert_eq!(
            unverified_issuer(&token).as_deref(),
            Some("https://x/oauth/token")
        );
        assert_eq!(unverified_issuer("opaque-token"), None);
        assert_eq!(unverified_issuer(&format!("{token}.extra")), None);
        assert_eq!(unverified_issuer("a.!!!.c"), None);
    }

    #[test]
    fn modes_parse() {
        assert_eq!("issuer".parse::<Mode>().unwrap(), Mode::Issuer);
        assert_eq!("kubernetes".parse::<Mode>().unwrap(), Mode::Kubernetes);
        assert_eq!("oidc".parse::<Mode>().unwrap(), Mode::Oidc);
        assert!("uaa".parse::<Mode>().is_err());
    }
}
