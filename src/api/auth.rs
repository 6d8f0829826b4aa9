//! Who is calling: `Authorization: Bearer <Kubernetes token>` resolved by a TokenReview and
//! cached with a TTL, so steady-state requests cost no Kubernetes API call. Writes then go to
//! Kubernetes impersonating that identity, so RBAC (the RoleBindings CFRoles produce) decides.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::{Api, Client, api::PostParams};

use super::error::{CfError, CfResult};

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

/// Resolves and caches identities.
pub struct Authenticator {
    client: Client,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Identity, Instant)>>,
}

impl Authenticator {
    /// An authenticator that asks the cluster (TokenReview) with `client`.
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The caller of a request: 401 CF-NotAuthenticated without credentials, 401
    /// CF-InvalidAuthToken with bad ones.
    pub async fn identify(&self, headers: &HeaderMap) -> CfResult<Identity> {
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(CfError::NotAuthenticated)?;
        let (scheme, token) = header.split_once(' ').ok_or(CfError::InvalidAuthToken)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(CfError::InvalidAuthToken);
        }
        let token = token.trim();
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned();
        if let Some((identity, _)) = cached.filter(|(_, at)| at.elapsed() < self.ttl) {
            return Ok(identity);
        }
        let identity = self.review(token).await?;
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(token.to_owned(), (identity.clone(), Instant::now()));
        Ok(identity)
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
        let name = user.username.unwrap_or_default();
        let kind = if name.starts_with("system:serviceaccount:") {
            "service_account"
        } else {
            "user"
        };
        Ok(Identity {
            name,
            groups: user.groups.unwrap_or_default(),
            kind,
        })
    }
}
