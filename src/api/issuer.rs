//! The built-in token issuer: just enough of UAA for `cf login -u -p` (`GET /login`,
//! `POST /oauth/token` password and refresh_token grants) with users kept in a Kubernetes
//! Secret as bcrypt hashes. Tokens are HS256 JWTs: the façade is their only verifier, so a
//! symmetric key (random, kept in a Secret of the root namespace so it survives restarts and is
//! shared by replicas) is as strong as a key pair, needs no key generation beyond random bytes,
//! and verifies without a TokenReview. A token's user maps to the Kubernetes user
//! `<prefix><user_name>`, admins to a configured group, so impersonation and RBAC apply as for
//! any other caller.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    Json, Router,
    extract::{Form, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    ApiState,
    auth::Identity,
    error::{CfError, CfResult},
};

/// The data key of the users Secret.
pub const USERS_KEY: &str = "users.yaml";
/// The data key of the signing-key Secret.
pub const SIGNING_KEY: &str = "hs256.key";
/// The bcrypt cost of new password hashes: UAA's default.
pub const BCRYPT_COST: u32 = 10;
/// The only client: the cf CLI's `cf` with an empty secret.
pub const CLIENT_ID: &str = "cf";

/// Settings of the built-in issuer.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The Secret (root namespace) holding the users, data key `users.yaml`.
    pub users_secret: String,
    /// The Secret (root namespace) holding the signing key; created when missing.
    pub key_secret: String,
    /// Prefixed to user names to make the Kubernetes user name.
    pub user_prefix: String,
    /// The Kubernetes group admins get.
    pub admin_group: String,
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        Self {
            users_secret: "kubefoundry-users".to_owned(),
            key_secret: "kubefoundry-issuer-key".to_owned(),
            user_prefix: String::new(),
            admin_group: "system:masters".to_owned(),
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// One user of the users Secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct User {
    /// bcrypt hash of the password.
    pub password_hash: String,
    /// Whether the user is a CF admin (scope `cloud_controller.admin`, the admin group).
    #[serde(default)]
    pub admin: bool,
}

/// `users.yaml`: user name → user.
pub type Users = BTreeMap<String, User>;

/// The claims of the tokens issued, as UAA spells them (the cf CLI reads `user_name`,
/// `user_id`, `origin` and `exp`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Token id.
    pub jti: String,
    /// The user id.
    pub sub: String,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// The issuer, `<base URL>/oauth/token`.
    pub iss: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// The CF user name.
    pub user_name: String,
    /// The user GUID: the Kubernetes user name, as everywhere in the façade.
    pub user_id: String,
    /// Always `uaa`.
    pub origin: String,
    /// Scopes.
    pub scope: Vec<String>,
    /// Always `cf`.
    pub client_id: String,
    /// Always `cf`.
    pub cid: String,
    /// `password` or `refresh_token`.
    pub grant_type: String,
    /// `access` or `refresh`, so neither can stand in for the other.
    pub token_use: String,
}

/// The issuer: keys, users and token minting.
pub struct Issuer {
    client: Client,
    iss: String,
    namespace: String,
    config: IssuerConfig,
    keys: tokio::sync::OnceCell<(EncodingKey, DecodingKey)>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

fn now_secs(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0; n];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut buf)
        .map_err(|e| format!("{e:?}"))?;
    Ok(buf)
}

/// A random password: 18 bytes, 24 URL-safe characters.
pub fn random_password() -> Result<String, String> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(18)?))
}

/// A bcrypt hash of `password` at `cost` (UAA uses bcrypt too; 10 is its default).
pub fn hash_password(password: &str, cost: u32) -> Result<String, String> {
    bcrypt::hash(password, cost).map_err(|e| e.to_string())
}

/// Whether `password` matches `user`'s hash; a malformed hash matches nothing.
pub fn check_password(user: &User, password: &str) -> bool {
    bcrypt::verify(password, &user.password_hash).unwrap_or(false)
}

/// The users of a users Secret.
pub fn users_of(secret: &Secret) -> Result<Users, String> {
    let Some(raw) = secret.data.as_ref().and_then(|d| d.get(USERS_KEY)) else {
        return Ok(Users::new());
    };
    serde_yaml::from_slice(&raw.0).map_err(|e| format!("{USERS_KEY}: {e}"))
}

/// Adds `name` with `password` to the users Secret (creating it) unless the user exists;
/// returns whether it was added. For `kubefoundry dev`'s admin and for tests.
pub async fn ensure_user(
    client: &Client,
    namespace: &str,
    secret_name: &str,
    name: &str,
    password: &str,
    admin: bool,
) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let hash = hash_password(password, BCRYPT_COST)?;
    // Optimistic concurrency: a concurrent writer makes the replace fail with 409; read again.
    for _ in 0..5 {
        let existing = api.get_opt(secret_name).await?;
        let mut users = match &existing {
            Some(s) => users_of(s)?,
            None => Users::new(),
        };
        if users.contains_key(name) {
            return Ok(false);
        }
        users.insert(
            name.to_owned(),
            User {
                password_hash: hash.clone(),
                admin,
            },
        );
        let data = BTreeMap::from([(
            USERS_KEY.to_owned(),
            ByteString(serde_yaml::to_string(&users)?.into_bytes()),
        )]);
        let result = match existing {
            Some(mut secret) => {
                secret.data = Some(data);
                api.replace(secret_name, &PostParams::default(), &secret).await
            }
            None => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(secret_name.to_owned()),
                        namespace: Some(namespace.to_owned()),
                        ..ObjectMeta::default()
                    },
                    data: Some(data),
                    ..Secret::default()
                };
                api.create(&PostParams::default(), &secret).await
            }
        };
        match result {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err("users Secret kept changing".into())
}

impl Issuer {
    /// An issuer for the façade at `base_url`, its Secrets in `namespace`.
    pub fn new(client: Client, base_url: &str, namespace: &str, config: IssuerConfig) -> Self {
        Self {
            client,
            iss: format!("{}/oauth/token", base_url.trim_end_matches('/')),
            namespace: namespace.to_owned(),
            config,
            keys: tokio::sync::OnceCell::new(),
        }
    }

    /// The `iss` of its tokens.
    pub fn iss(&self) -> &str {
        &self.iss
    }

    /// The signing key, read from its Secret, which is created with a fresh random key when
    /// missing (the first of several replicas to create it wins; the others read it).
    async fn keys(&self) -> CfResult<&(EncodingKey, DecodingKey)> {
        self.keys
            .get_or_try_init(|| async {
                let key = load_or_create_key(&self.client, &self.namespace, &self.config.key_secret).await?;
                Ok::<_, CfError>((EncodingKey::from_secret(&key), DecodingKey::from_secret(&key)))
            })
            .await
    }

    async fn users(&self) -> CfResult<Users> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        match api.get_opt(&self.config.users_secret).await {
            Ok(Some(secret)) => users_of(&secret).map_err(|e| {
                tracing::error!(secret = %self.config.users_secret, error = %e, "users Secret unreadable");
                CfError::Internal(e.into())
            }),
            Ok(None) => Ok(Users::new()),
            Err(e) => Err(CfError::internal(e)),
        }
    }

    /// The claims of a token for `user_name` of kind `token_use`, issued at `now`.
    pub fn claims(
        &self,
        user_name: &str,
        admin: bool,
        grant_type: &str,
        token_use: &str,
        now: SystemTime,
    ) -> Claims {
        let iat = now_secs(now);
        let ttl = if token_use == "refresh" {
            self.config.refresh_ttl
        } else {
            self.config.access_ttl
        };
        let mut scope = vec![
            "openid".to_owned(),
            "cloud_controller.read".to_owned(),
            "cloud_controller.write".to_owned(),
        ];
        if admin {
            scope.push("cloud_controller.admin".to_owned());
        }
        let user_id = format!("{}{user_name}", self.config.user_prefix);
        Claims {
            jti: uuid::Uuid::new_v4().simple().to_string(),
            sub: user_id.clone(),
            iat,
            exp: iat + ttl.as_secs(),
            iss: self.iss.clone(),
            aud: vec![
                "cloud_controller".to_owned(),
                "openid".to_owned(),
                CLIENT_ID.to_owned(),
            ],
            user_name: user_name.to_owned(),
            user_id,
            origin: "uaa".to_owned(),
            scope,
            client_id: CLIENT_ID.to_owned(),
            cid: CLIENT_ID.to_owned(),
            grant_type: grant_type.to_owned(),
            token_use: token_use.to_owned(),
        }
    }

    /// Signs `claims`.
    pub async fn sign(&self, claims: &Claims) -> CfResult<String> {
        let (encoding, _) = self.keys().await?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, encoding).map_err(CfError::internal)
    }

    /// The claims of a valid token of kind `token_use`; `None` when it is forged, expired,
    /// another issuer's, or of the other kind.
    pub async fn decode(&self, token: &str, token_use: &str) -> CfResult<Option<Claims>> {
        let (_, decoding) = self.keys().await?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[&self.iss]);
        validation.set_audience(&[CLIENT_ID]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        Ok(jsonwebtoken::decode::<Claims>(token, decoding, &validation)
            .ok()
            .map(|data| data.claims)
            .filter(|c| c.token_use == token_use))
    }

    /// The Kubernetes identity of an access token's claims.
    pub fn identity(&self, claims: &Claims) -> Identity {
        let groups = if claims.scope.iter().any(|s| s == "cloud_controller.admin") {
            vec![self.config.admin_group.clone()]
        } else {
            Vec::new()
        };
        Identity::user(claims.user_id.clone(), groups)
    }

    /// The caller of an access token: 401 CF-InvalidAuthToken unless valid.
    pub async fn verify_access(&self, token: &str) -> CfResult<Identity> {
        let claims = self
            .decode(token, "access")
            .await?
            .ok_or(CfError::InvalidAuthToken)?;
        Ok(self.identity(&claims))
    }

    /// A token response for `user_name` (an access and a refresh token).
    async fn grant(&self, user_name: &str, user: &User, grant_type: &str) -> CfResult<serde_json::Value> {
        let now = SystemTime::now();
        let access = self.claims(user_name, user.admin, grant_type, "access", now);
        let refresh = self.claims(user_name, user.admin, grant_type, "refresh", now);
        Ok(json!({
            "access_token": self.sign(&access).await?,
            "token_type": "bearer",
            "refresh_token": self.sign(&refresh).await?,
            "expires_in": self.config.access_ttl.as_secs().saturating_sub(1),
            "scope": access.scope.join(" "),
            "jti": access.jti,
        }))
    }
}

async fn load_or_create_key(client: &Client, namespace: &str, name: &str) -> CfResult<Vec<u8>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read = |secret: Secret| {
        secret
            .data
            .and_then(|mut d| d.remove(SIGNING_KEY))
            .map(|k| k.0)
            .filter(|k| k.len() >= 32)
            .ok_or_else(|| {
                CfError::Internal(format!("Secret {namespace}/{name} has no usable {SIGNING_KEY}").into())
            })
    };
    if let Some(secret) = api.get_opt(name).await.map_err(CfError::internal)? {
        return read(secret);
    }
    let key = random_bytes(32).map_err(|e| CfError::Internal(e.into()))?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            SIGNING_KEY.to_owned(),
            ByteString(key.clone()),
        )])),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(key),
        Err(kube::Error::Api(s)) if s.code == 409 => read(api.get(name).await.map_err(CfError::internal)?),
        Err(e) => Err(CfError::internal(e)),
    }
}

/// `/login` and `/oauth/token`, served in issuer mode (404 "Unknown request" otherwise).
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/login", get(login))
        .route("/oauth/token", post(token))
}

fn issuer_of(state: &ApiState) -> CfResult<&Arc<Issuer>> {
    state.auth.issuer().ok_or(CfError::UnknownRequest)
}

/// `GET /login`: UAA's login info; the cf CLI reads `prompts` (each at least two elements).
async fn login(State(state): State<Arc<ApiState>>) -> CfResult<Json<serde_json::Value>> {
    issuer_of(&state)?;
    let base = &state.config.base_url;
    Ok(Json(json!({
        "app": {"version": env!("CARGO_PKG_VERSION")},
        "links": {"uaa": base, "login": base, "passwd": "/forgot_password", "register": "/create_account"},
        "zone_name": "uaa",
        "entityID": "kubefoundry",
        "commit_id": "kubefoundry",
        "idpDefinitions": {},
        "prompts": {
            "username": ["text", "Email"],
            "password": ["password", "Password"],
        },
        "timestamp": now_timestamp(),
    })))
}

/// The current time as UAA prints it in `/login` (informational only).
fn now_timestamp() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// The form of `POST /oauth/token`.
#[derive(Debug, Deserialize)]
struct TokenForm {
    grant_type: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
}

/// An OAuth error body, as UAA answers.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn bad_credentials() -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "unauthorized", "Bad credentials")
}

/// The client of a token request: Basic `cf:` (the cf CLI), or `client_id=cf` in the form.
fn client_of(headers: &HeaderMap, form: &TokenForm) -> Option<String> {
    let basic = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    match basic {
        Some(pair) => pair.split_once(':').map(|(id, _)| id.to_owned()),
        None => form.client_id.clone(),
    }
}

/// `POST /oauth/token`: the password and refresh_token grants.
async fn token(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    match grant(&state, &headers, form).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn grant(state: &ApiState, headers: &HeaderMap, form: TokenForm) -> CfResult<Response> {
    let issuer = issuer_of(state)?;
    if client_of(headers, &form).as_deref() != Some(CLIENT_ID) {
        return Ok(oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Bad credentials",
        ));
    }
    let (user_name, password) = match form.grant_type.as_str() {
        "password" => match (form.username, form.password) {
            (Some(u), Some(p)) => (u, Some(p)),
            _ => return Ok(bad_credentials()),
        },
        "refresh_token" => {
            let Some(token) = form.refresh_token else {
                return Ok(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Missing refresh_token",
                ));
            };
            match issuer.decode(&token, "refresh").await? {
                Some(claims) => (claims.user_name, None),
                None => {
                    return Ok(oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_token",
                        "Invalid refresh token (expired or not issued here)",
                    ));
                }
            }
        }
        other => {
            return Ok(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Unsupported grant type: {other}"),
            ));
        }
    };
    // A refresh re-reads the user, so a deleted user or a revoked admin flag takes effect at
    // the next refresh.
    let Some(user) = issuer.users().await?.remove(&user_name) else {
        return Ok(bad_credentials());
    };
    if let Some(password) = password {
        let checked = user.clone();
        let ok = tokio::task::spawn_blocking(move || check_password(&checked, &password))
            .await
            .unwrap_or(false);
        if !ok {
            return Ok(bad_credentials());
        }
    }
    Ok(Json(issuer.grant(&user_name, &user, &form.grant_type).await?).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn issuer_with_key(key: &[u8]) -> Issuer {
        let issuer = Issuer::new(
            kube::Client::new(
                tower::service_fn(|_req: axum::http::Request<kube::client::Body>| async {
                    Err::<axum::http::Response<kube::client::Body>, std::io::Error>(std::io::Error::other(
                        "offline",
                    ))
                }),
                "default",
            ),
            "http://api.example.com/",
            "cf",
            IssuerConfig {
                user_prefix: "uaa:".to_owned(),
                admin_group: "cf-admins".to_owned(),
                ..IssuerConfig::default()
            },
        );
        let set = issuer
            .keys
            .set((EncodingKey::from_secret(key), DecodingKey::from_secret(key)));
        assert!(set.is_ok());
        issuer
    }

    #[tokio::test]
    async fn tokens_round_trip_and_map_to_kubernetes_identities() {
        let issuer = issuer_with_key(&[7; 32]);
        assert_eq!(issuer.iss(), "http://api.example.com/oauth/token");
        let claims = issuer.claims("alice", false, "password", "access", SystemTime::now());
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(claims.user_id, "uaa:alice");
        assert_eq!(claims.origin, "uaa");
        assert!(!claims.scope.contains(&"cloud_controller.admin".to_owned()));
        let token = issuer.sign(&claims).await.unwrap();
        assert_eq!(issuer.decode(&token, "access").await.unwrap(), Some(claims));
        let me = issuer.verify_access(&token).await.unwrap();
        assert_eq!(me, Identity::user("uaa:alice".to_owned(), vec![]));
        let admin = issuer.claims("root", true, "password", "access", SystemTime::now());
        let token = issuer.sign(&admin).await.unwrap();
        let me = issuer.verify_access(&token).await.unwrap();
        assert_eq!(me.groups, vec!["cf-admins".to_owned()]);
    }

    #[tokio::test]
    async fn expired_forged_and_wrong_kind_tokens_are_refused() {
        let issuer = issuer_with_key(&[7; 32]);
        let old = SystemTime::now() - Duration::from_secs(7200);
        let expired = issuer
            .sign(&issuer.claims("alice", false, "password", "access", old))
            .await
            .unwrap();
        assert!(matches!(
            issuer.verify_access(&expired).await,
            Err(CfError::InvalidAuthToken)
        ));
        let refresh = issuer
            .sign(&issuer.claims("alice", false, "password", "refresh", SystemTime::now()))
            .await
            .unwrap();
        assert!(matches!(
            issuer.verify_access(&refresh).await,
            Err(CfError::InvalidAuthToken)
        ));
        assert!(issuer.decode(&refresh, "refresh").await.unwrap().is_some());
        let other = issuer_with_key(&[8; 32]);
        let forged = other
            .sign(&other.claims("alice", true, "password", "access", SystemTime::now()))
            .await
            .unwrap();
        assert!(matches!(
            issuer.verify_access(&forged).await,
            Err(CfError::InvalidAuthToken)
        ));
        let mut foreign = issuer.claims("alice", false, "password", "access", SystemTime::now());
        foreign.iss = "https://elsewhere/oauth/token".to_owned();
        let foreign = issuer.sign(&foreign).await.unwrap();
        assert!(matches!(
            issuer.verify_access(&foreign).await,
            Err(CfError::InvalidAuthToken)
        ));
    }

    #[test]
    fn passwords_check_against_bcrypt_hashes() {
        let user = User {
            password_hash: hash_password("s3cret", 4).unwrap(),
            admin: false,
        };
        assert!(user.password_hash.starts_with("$2b$04$"));
        assert!(check_password(&user, "s3cret"));
        assert!(!check_password(&user, "S3cret"));
        let broken = User {
            password_hash: "not-a-hash".to_owned(),
            admin: false,
        };
        assert!(!check_password(&broken, "not-a-hash"));
    }

    #[test]
    fn users_secret_reads_yaml() {
        let yaml = "admin:\n  passwordHash: $2b$04$x\n  admin: true\nbob:\n  passwordHash: h\n";
        let secret = Secret {
            data: Some(BTreeMap::from([(
                USERS_KEY.to_owned(),
                ByteString(yaml.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        };
        let users = users_of(&secret).unwrap();
        assert!(users["admin"].admin);
        assert!(!users["bob"].admin);
        assert!(users_of(&Secret::default()).unwrap().is_empty());
        let typo = Secret {
            data: Some(BTreeMap::from([(
                USERS_KEY.to_owned(),
                ByteString(b"a: {passwrd: x}".to_vec()),
            )])),
            ..Secret::default()
        };
        assert!(users_of(&typo).is_err());
    }

    #[test]
    fn random_passwords_differ() {
        let a = random_password().unwrap();
        assert_eq!(a.len(), 24);
        assert_ne!(a, random_password().unwrap());
    }

    #[test]
    fn token_clients_come_from_basic_or_the_form() {
        let form = |id: Option<&str>| TokenForm {
            grant_type: "password".to_owned(),
            username: None,
            password: None,
            refresh_token: None,
            client_id: id.map(str::to_owned),
        };
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, "Basic Y2Y6".parse().unwrap());
        assert_eq!(client_of(&h, &form(None)).as_deref(), Some("cf"));
        assert_eq!(
            client_of(&HeaderMap::new(), &form(Some("cf"))).as_deref(),
            Some("cf")
        );
        assert_eq!(client_of(&HeaderMap::new(), &form(None)), None);
    }
}
