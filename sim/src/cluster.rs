//! The simulated cluster's shared state: the store, the served types, who may call, and the
//! faults tests inject. Requests, background controllers and the test harness all hold it.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::http::HeaderMap;
use serde_json::Value;
use tokio::sync::watch;

use crate::{
    api::{ApiError, ApiResult, ClientCertUser},
    rbac::{self, Attributes, RbacSnapshot, RequestInfo, TokenFile, UserInfo},
    registry::Registry,
    store::Store,
};

/// How the simulated cluster behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// The version `/version` reports.
    pub git_version: String,
    /// Watch events kept for replay before history is compacted.
    pub history_limit: usize,
    /// How long a simulated Pod takes to become Running and Ready.
    pub pod_start_delay: Duration,
    /// How long a simulated Job's Pod runs before it completes.
    pub job_run_time: Duration,
    /// How often background controllers resync.
    pub resync: Duration,
    /// Interval between watch bookmarks when clients ask for them.
    pub bookmark_interval: Duration,
    /// Requests without credentials act as the admin, like kube-apiserver's old insecure
    /// port. Set for plain-HTTP serving, because client-go never sends tokens over HTTP.
    pub anonymous_is_admin: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            git_version: "v1.33.0-kubefoundry-sim".to_owned(),
            history_limit: 100_000,
            pod_start_delay: Duration::from_millis(200),
            job_run_time: Duration::from_millis(500),
            resync: Duration::from_secs(30),
            bookmark_interval: Duration::from_secs(60),
            anonymous_is_admin: false,
        }
    }
}

/// One injected failure: the next `remaining` requests matching verb and resource fail.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Kube verb to match (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`), or `*`.
    pub verb: String,
    /// Resource (plural) to match, or `*`.
    pub resource: String,
    /// How many more requests fail.
    pub remaining: u32,
    /// The HTTP status they fail with.
    pub code: u16,
}

/// Injected faults, consumed by matching requests.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<Fault>>,
}

impl Faults {
    /// Adds a rule.
    pub fn inject(&self, fault: Fault) {
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(fault);
    }

    /// The failure for this request, if a rule matches; consumes one use of the rule.
    pub fn take(&self, info: &RequestInfo) -> Option<ApiError> {
        let mut rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let index = rules.iter().position(|f| {
            f.remaining > 0
                && (f.verb == "*" || f.verb == info.verb)
                && (f.resource == "*" || f.resource == info.resource)
                && info.is_resource_request
        })?;
        let rule = &mut rules[index];
        rule.remaining -= 1;
        let code = rule.code;
        rules.retain(|f| f.remaining > 0);
        Some(match code {
            429 => ApiError::new(429, "TooManyRequests", "injected fault: too many requests"),
            503 => ApiError::new(503, "ServiceUnavailable", "injected fault: service unavailable"),
            504 => ApiError::new(504, "Timeout", "injected fault: timeout"),
            c => ApiError::new(c, "InternalError", "injected fault"),
        })
    }
}

/// Requests served so far, keyed `"<verb> <resource>"` (`"patch deployments"`,
/// `"list cfapps"`; `"other"` for non-resource requests).
#[derive(Default)]
pub struct RequestCounts {
    counts: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl RequestCounts {
    /// Counts one request.
    pub fn record(&self, key: String) {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default() += 1;
    }

    /// The counts so far.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Requests that may write (create, update, patch, delete, deletecollection), leaving out
    /// resources for which `skip` is true (say, leader-election Leases).
    pub fn writes_except(&self, skip: impl Fn(&str) -> bool) -> u64 {
        self.snapshot()
            .iter()
            .filter(|(key, _)| {
                let (verb, resource) = key.split_once(' ').unwrap_or((key.as_str(), ""));
                matches!(
                    verb,
                    "create" | "update" | "patch" | "delete" | "deletecollection"
                ) && !skip(resource)
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Every request.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

/// The whole simulated cluster.
pub struct Cluster {
    /// Every object.
    pub store: Arc<Store>,
    /// Every served type.
    pub registry: Registry,
    /// Behaviour settings.
    pub config: Config,
    /// Injected failures.
    pub faults: Faults,
    /// Requests served, by kube verb, so tests and benchmarks can count API calls.
    pub requests: RequestCounts,
    /// Bearer tokens from the token file (and the generated admin token).
    pub tokens: TokenFile,
    /// Signs and verifies ServiceAccount tokens.
    pub service_account_key: Vec<u8>,
    /// The CA certificate (PEM) when serving TLS; put into token Secrets as `ca.crt`.
    pub ca_pem: String,
    /// Stored objects' JSON, encoded once per version for every list and watcher.
    pub json_cache: crate::api::encode::JsonCache,
    drop_watches: watch::Sender<u64>,
}

impl Cluster {
    /// A cluster over `store`, authenticating bearer tokens from `tokens`.
    pub fn new(store: Arc<Store>, config: Config, tokens: TokenFile, service_account_key: Vec<u8>) -> Self {
        Self {
            store,
            registry: Registry::default(),
            config,
            faults: Faults::default(),
            requests: RequestCounts::default(),
            tokens,
            service_account_key,
            ca_pem: String::new(),
            json_cache: crate::api::encode::JsonCache::default(),
            drop_watches: watch::channel(0).0,
        }
    }

    /// Ends every open watch (clients must re-watch from their last resourceVersion).
    pub fn drop_watches(&self) {
        self.drop_watches.send_modify(|n| *n += 1);
    }

    /// A signal that fires when [`Cluster::drop_watches`] is called.
    pub fn watch_drops(&self) -> watch::Receiver<u64> {
        self.drop_watches.subscribe()
    }

    /// Who is calling: a bearer token, a verified client certificate, or anonymous.
    pub fn authenticate(&self, headers: &HeaderMap, cert: Option<&ClientCertUser>) -> ApiResult<UserInfo> {
        let auth = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Some(auth) = auth {
            let token = auth
                .strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
                .map(str::trim)
                .ok_or_else(unauthorized)?;
            if let Some(user) = self.tokens.lookup(token) {
                return Ok(rbac::add_authenticated_group(user));
            }
            if let Some(user) = crate::tokens::verify(&self.service_account_key, token, &self.store) {
                return Ok(rbac::add_authenticated_group(user));
            }
            return Err(unauthorized());
        }
        if let Some(ClientCertUser(user)) = cert {
            return Ok(rbac::add_authenticated_group(user.clone()));
        }
        if self.config.anonymous_is_admin {
            return Ok(rbac::add_authenticated_group(
                UserInfo::new("admin").with_groups(["system:masters"]),
            ));
        }
        Ok(rbac::anonymous_user())
    }

    /// Applies `Impersonate-*` headers, if any, after checking the caller may impersonate.
    pub fn impersonate(&self, user: UserInfo, headers: &HeaderMap) -> ApiResult<UserInfo> {
        let pairs: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("impersonate-"))
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        if pairs.is_empty() {
            return Ok(user);
        }
        let request = rbac::impersonation_checks(&pairs).map_err(ApiError::bad_request)?;
        let Some(request) = request else { return Ok(user) };
        let snapshot = self.rbac_snapshot();
        for attrs in request.attributes_for(&user) {
            let decision = self.decide(&attrs, &snapshot);
            if !decision.allowed {
                let message = rbac::forbidden_message(&attrs, &decision.reason);
                return Err(ApiError::new(403, "Forbidden", message));
            }
        }
        Ok(request.user)
    }

    /// Checks the caller may make this request; 403 with kube-apiserver's message if not.
    pub fn authorize(&self, attrs: &Attributes) -> ApiResult<()> {
        if attrs.user.in_group("system:masters") {
            return Ok(());
        }
        let decision = self.decide(attrs, &self.rbac_snapshot());
        if decision.allowed {
            Ok(())
        } else {
            let status = rbac::forbidden_status(attrs, &decision.reason);
            let message = status["message"].as_str().unwrap_or("forbidden").to_owned();
            Err(ApiError {
                details: status.get("details").cloned(),
                ..ApiError::new(403, "Forbidden", message)
            })
        }
    }

    /// The RBAC decision for `attrs`, honouring `system:masters`.
    pub fn decide(&self, attrs: &Attributes, snapshot: &RbacSnapshot) -> rbac::Decision {
        if attrs.user.in_group("system:masters") {
            return rbac::Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        rbac::authorize(attrs, snapshot)
    }

    /// The stored Roles, ClusterRoles and bindings.
    pub fn rbac_snapshot(&self) -> RbacSnapshot {
        let group = "rbac.authorization.k8s.io";
        let load = |plural: &str, kind: &str| -> Vec<Value> {
            self.store
                .list(&format!("{group}/{plural}"), None)
                .0
                .into_iter()
                .map(|(_, v)| {
                    let mut v = (*v).clone();
                    v["kind"] = Value::String(kind.to_owned());
                    v
                })
                .collect()
        };
        RbacSnapshot::new(
            load("roles", "Role"),
            load("rolebindings", "RoleBinding"),
            load("clusterroles", "ClusterRole"),
            load("clusterrolebindings", "ClusterRoleBinding"),
        )
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

impl Cluster {
    /// The CA certificate PEM, or empty when serving plain HTTP.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }
}
