//! Logging in to the CF façade as the cf CLI does, in every auth mode: the UAA sequence against
//! the built-in issuer of `kubefoundry dev` (GET /, GET /login, POST /oauth/token with Basic
//! `cf:`, bearer requests, refresh), RBAC through the token's Kubernetes identity, the 401
//! shapes, persistence of users and the signing key across a restart; `ClientCert` credentials
//! from the simulated cluster's CA (`cf_on_k8s`); and tokens of an external OIDC issuer
//! verified by its JWKS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{net::SocketAddr, path::PathBuf, time::SystemTime};

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use kubefoundry::{
    api::{
        self,
        auth::{AuthConfig, Mode, oidc::OidcConfig},
        issuer,
    },
    dev,
};
use serde_json::{Value, json};

type Http =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn http() -> Http {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// One request with the cf CLI's headers; returns (status, JSON body or Null).
async fn send(url: &str, method: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("accept", "application/json")
        .header("user-agent", "cf/8.18.0 (go1.24; amd64 linux)");
    let mut typed = false;
    for (k, v) in headers {
        typed |= k.eq_ignore_ascii_case("content-type");
        req = req.header(*k, v);
    }
    if !typed {
        req = req.header("content-type", "application/json");
    }
    let response = http()
        .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

async fn get(base: &str, path: &str, auth: Option<String>) -> (u16, Value) {
    let headers: Vec<(&str, String)> = auth.into_iter().map(|a| ("authorization", a)).collect();
    send(&format!("{base}{path}"), "GET", &headers, "").await
}

/// `POST <login>/oauth/token` exactly as the cf CLI sends it.
async fn token_request(base: &str, form: &str) -> (u16, Value) {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("cf:")
    );
    send(
        &format!("{base}/oauth/token"),
        "POST",
        &[
            ("authorization", basic),
            ("content-type", "application/x-www-form-urlencoded".to_owned()),
        ],
        form,
    )
    .await
}

async fn password_grant(base: &str, user: &str, password: &str) -> (u16, Value) {
    token_request(
        base,
        &format!("grant_type=password&username={user}&password={password}"),
    )
    .await
}

/// The JWT payload, decoded without verification as the cf CLI does.
fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

fn cf_error(body: &Value) -> (&str, &str) {
    let e = &body["errors"][0];
    (
        e["title"].as_str().unwrap_or(""),
        e["detail"].as_str().unwrap_or(""),
    )
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kf-auth-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn start_dev(data_dir: &std::path::Path, api_listen: SocketAddr, auth: Mode) -> dev::Dev {
    dev::start(dev::Options {
        data_dir: data_dir.to_owned(),
        kube_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        api_listen,
        auth,
    })
    .await
    .unwrap()
}

/// The `ClientCert` header the cf CLI builds from a certificate and its key.
fn client_cert_header(cert: &kubefoundry_sim::tls::ClientCert) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "ClientCert {}",
        b64.encode(format!("{}{}", cert.cert_pem, cert.key_pem))
    )
}

/// dev's kubeconfig carries the `cf-admin` user with exactly this certificate and key.
fn assert_in_kubeconfig(d: &dev::Dev) {
    let text = std::fs::read_to_string(&d.kubeconfig).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    assert!(text.contains(dev::CERT_USER), "{text}");
    assert!(text.contains(&b64.encode(&d.cert_user.cert_pem)), "{text}");
    assert!(text.contains(&b64.encode(&d.cert_user.key_pem)), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uaa_login_sequence_against_dev() {
    let dir = temp_dir();
    let api_addr = free_port();
    let d = start_dev(&dir, api_addr, Mode::Issuer).await;
    let base = d.api_url.clone();
    let password = d
        .admin_password
        .clone()
        .expect("a fresh dev prints the admin password");

    // What `kubefoundry dev` prints: the API URL, the admin's credentials, the kubeconfig.
    let banner = d.banner(&dir);
    assert!(banner.contains(&base), "{banner}");
    assert!(
        banner.contains(&format!("cf login -u admin -p {password}")),
        "{banner}"
    );
    assert!(banner.contains(&d.kubeconfig.display().to_string()), "{banner}");
    assert_eq!(
        std::fs::read_to_string(dir.join("admin-password")).unwrap(),
        password
    );

    // cf api: `/` unauthenticated, login and uaa links at the façade, not cf_on_k8s.
    let (status, root) = get(&base, "/", None).await;
    assert_eq!(status, 200);
    assert_eq!(root["cf_on_k8s"], false);
    assert_eq!(root["links"]["login"]["href"], base.as_str());
    assert_eq!(root["links"]["uaa"]["href"], base.as_str());

    // cf login: GET <login>/login, prompts of at least two elements.
    let (status, login) = get(&base, "/login", None).await;
    assert_eq!(status, 200);
    assert!(login["app"]["version"].is_string());
    for prompt in ["username", "password"] {
        assert!(login["prompts"][prompt].as_array().unwrap().len() >= 2, "{login}");
    }
    assert_eq!(login["prompts"]["password"][0], "password");

    // Password grant with Basic cf:.
    let (status, tokens) = password_grant(&base, "admin", &password).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "bearer");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let claims = payload(&access);
    assert_eq!(claims["user_name"], "admin");
    assert_eq!(claims["user_id"], "admin");
    assert_eq!(claims["origin"], "uaa");
    assert_eq!(claims["client_id"], "cf");
    assert_eq!(claims["iss"], format!("{base}/oauth/token"));
    assert!(claims["jti"].is_string());
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    let scopes: Vec<&str> = claims["scope"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for s in [
        "openid",
        "cloud_controller.read",
        "cloud_controller.write",
        "cloud_controller.admin",
    ] {
        assert!(scopes.contains(&s), "{scopes:?}");
    }
    assert!(payload(&refresh)["exp"].as_u64().unwrap() > claims["exp"].as_u64().unwrap());

    // CC requests carry `bearer <jwt>` (lowercase, as the CLI stores it).
    let bearer = format!("bearer {access}");
    let (status, orgs) = get(&base, "/v3/organizations?order_by=name", Some(bearer.clone())).await;
    assert_eq!(status, 200, "{orgs}");
    assert!(orgs["resources"].is_array());
    let (status, me) = get(&base, "/whoami", Some(bearer.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(me, json!({"name": "admin", "kind": "user"}));
    // The admin impersonates its admin group, so RBAC lets it write.
    let (status, org) = send(
        &format!("{base}/v3/organizations"),
        "POST",
        &[("authorization", bearer.clone())],
        r#"{"name":"auth-org","suspended":false}"#,
    )
    .await;
    assert_eq!(status, 201, "{org}");

    // Refresh grant: a new pair that works.
    let (status, refreshed) = token_request(
        &base,
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["token_type"], "bearer");
    assert!(refreshed["refresh_token"].is_string());
    let renewed = format!("bearer {}", refreshed["access_token"].as_str().unwrap());
    let (status, _) = get(&base, "/v3/organizations", Some(renewed)).await;
    assert_eq!(status, 200);
    // An access token is not a refresh token, nor the reverse.
    let (status, err) =
        token_request(&base, &format!("grant_type=refresh_token&refresh_token={access}")).await;
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["error"], "invalid_token");
    let (status, body) = get(&base, "/v3/organizations", Some(format!("bearer {refresh}"))).await;
    assert_eq!(status, 401);
    assert_eq!(cf_error(&body).0, "CF-InvalidAuthToken");

    // Bad credentials: UAA's 401 shape, for a wrong password and an unknown user alike.
    for (user, pw) in [("admin", "wrong"), ("nobody", "x")] {
        let (status, err) = password_grant(&base, user, pw).await;
        assert_eq!(status, 401);
        assert_eq!(
            err,
            json!({"error": "unauthorized", "error_description": "Bad credentials"})
        );
    }
    // A client other than cf is refused the same way.
    let other = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("other:")
    );
    let (status, err) = send(
        &format!("{base}/oauth/token"),
        "POST",
        &[
            ("authorization", other),
            ("content-type", "application/x-www-form-urlencoded".to_owned()),
        ],
        &format!("grant_type=password&username=admin&password={password}"),
    )
    .await;
    assert_eq!((status, err["error"].as_str()), (401, Some("unauthorized")));

    // Missing, garbage and expired credentials.
    let (status, body) = get(&base, "/v3/organizations", None).await;
    assert_eq!((status, cf_error(&body).0), (401, "CF-NotAuthenticated"));
    let (status, body) = get(&base, "/v3/organizations", Some("bearer not-a-token".to_owned())).await;
    assert_eq!((status, cf_error(&body).0), (401, "CF-InvalidAuthToken"));
    let issuer = d.state.auth.issuer().unwrap();
    let old = SystemTime::now() - std::time::Duration::from_secs(7200);
    let expired = issuer
        .sign(&issuer.claims("admin", true, "password", "access", old))
        .await
        .unwrap();
    let (status, body) = get(&base, "/v3/organizations", Some(format!("bearer {expired}"))).await;
    assert_eq!((status, cf_error(&body).0), (401, "CF-InvalidAuthToken"));
    // A token signed with another key but claiming this issuer is refused.
    let mut forged = access.split('.').take(2).collect::<Vec<_>>().join(".");
    forged.push_str(".c2lnbmF0dXJl");
    let (status, body) = get(&base, "/v3/organizations", Some(format!("bearer {forged}"))).await;
    assert_eq!((status, cf_error(&body).0), (401, "CF-InvalidAuthToken"));

    // A non-admin user: logs in, sees no org, may not create one (Kubernetes RBAC says no).
    let client = d.state.client.clone();
    assert!(
        issuer::ensure_user(
            &client,
            dev::ROOT_NAMESPACE,
            "kubefoundry-users",
            "bob",
            "bob-pw",
            false
        )
        .await
        .unwrap()
    );
    let (status, tokens) = password_grant(&base, "bob", "bob-pw").await;
    assert_eq!(status, 200, "{tokens}");
    let bob = format!("bearer {}", tokens["access_token"].as_str().unwrap());
    assert!(
        !payload(tokens["access_token"].as_str().unwrap())["scope"]
            .as_array()
            .unwrap()
            .contains(&json!("cloud_controller.admin"))
    );
    let (status, orgs) = get(&base, "/v3/organizations", Some(bob.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(orgs["resources"], json!([]));
    let (status, body) = send(
        &format!("{base}/v3/organizations"),
        "POST",
        &[("authorization", bob.clone())],
        r#"{"name":"bobs-org"}"#,
    )
    .await;
    assert_eq!((status, cf_error(&body).0), (403, "CF-NotAuthorized"), "{body}");
    let (_, me) = get(&base, "/whoami", Some(bob)).await;
    assert_eq!(me, json!({"name": "bob", "kind": "user"}));

    // Kubernetes credentials still work in issuer mode: the cluster admin token (TokenReview)
    // and the kubeconfig's client-certificate user.
    let (_, me) = get(&base, "/whoami", Some(format!("Bearer {}", d.admin_token))).await;
    assert_eq!(me, json!({"name": "admin", "kind": "user"}));
    let (_, me) = get(&base, "/whoami", Some(client_cert_header(&d.cert_user))).await;
    assert_eq!(me, json!({"name": dev::CERT_USER, "kind": "user"}));

    // dev made the default shared domain.
    let domains: kube::Api<kubefoundry::crd::CFDomain> = kube::Api::namespaced(client, dev::ROOT_NAMESPACE);
    assert_eq!(
        domains.get("default-domain").await.unwrap().spec.name,
        dev::DEFAULT_DOMAIN
    );

    // Restart on the same data dir and address: the password is shown again, the same
    // password logs in, and tokens issued before the restart are still valid.
    drop(d);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let d = start_dev(&dir, api_addr, Mode::Issuer).await;
    assert_eq!(d.admin_password.as_deref(), Some(password.as_str()));
    let (status, _) = get(&base, "/v3/organizations", Some(bearer)).await;
    assert_eq!(status, 200, "a token from before the restart");
    let (status, _) = password_grant(&base, "admin", &password).await;
    assert_eq!(status, 200);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_mode_takes_client_certificates_from_the_cluster_ca() {
    let dir = temp_dir();
    let d = start_dev(&dir, SocketAddr::from(([127, 0, 0, 1], 0)), Mode::Kubernetes).await;
    let base = d.api_url.clone();
    assert!(d.admin_password.is_none());
    assert!(d.banner(&dir).contains("KUBECONFIG="), "{}", d.banner(&dir));

    // cf api: cf_on_k8s, no UAA; the issuer's endpoints are not served.
    let (_, root) = get(&base, "/", None).await;
    assert_eq!(root["cf_on_k8s"], true);
    assert_eq!(root["links"]["uaa"], Value::Null);
    let (status, body) = get(&base, "/login", None).await;
    assert_eq!((status, cf_error(&body).1), (404, "Unknown request"));
    let (status, _) = password_grant(&base, "admin", "x").await;
    assert_eq!(status, 404);

    // The kubeconfig's client-certificate user (O=system:masters) may write.
    let admin = client_cert_header(&d.cert_user);
    let (status, me) = get(&base, "/whoami", Some(admin.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(me, json!({"name": dev::CERT_USER, "kind": "user"}));
    let (status, org) = send(
        &format!("{base}/v3/organizations"),
        "POST",
        &[("authorization", admin)],
        r#"{"name":"cert-org"}"#,
    )
    .await;
    assert_eq!(status, 201, "{org}");

    assert_in_kubeconfig(&d);

    // A certificate the simulated cluster's CA issues for a plain user: that user, who sees
    // no org and may not create one.
    let alice = d
        .sim
        .tls
        .as_ref()
        .unwrap()
        .client_cert("alice", &["developers"])
        .unwrap();
    let alice = client_cert_header(&alice);
    let (_, me) = get(&base, "/whoami", Some(alice.clone())).await;
    assert_eq!(me, json!({"name": "alice", "kind": "user"}));
    let (status, orgs) = get(&base, "/v3/organizations", Some(alice.clone())).await;
    assert_eq!((status, &orgs["resources"]), (200, &json!([])));
    let (status, body) = send(
        &format!("{base}/v3/organizations"),
        "POST",
        &[("authorization", alice)],
        r#"{"name":"alice-org"}"#,
    )
    .await;
    assert_eq!((status, cf_error(&body).0), (403, "CF-NotAuthorized"), "{body}");

    // A certificate from another CA, even naming system:masters, is refused.
    let other_ca = kubefoundry_sim::tls::Tls::generate(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let foreign = other_ca.client_cert("mallory", &["system:masters"]).unwrap();
    let (status, body) = get(&base, "/whoami", Some(client_cert_header(&foreign))).await;
    assert_eq!((status, cf_error(&body).0), (401, "CF-InvalidAuthToken"));
    let b64 = base64::engine::general_purpose::STANDARD;
    // Not base64, or a certificate without its key.
    let (status, body) = get(&base, "/whoami", Some("ClientCert %%%".to_owned())).await;
    assert_eq!((status, cf_error(&body).0), (401, "CF-InvalidAuthToken"));
    let cert_only = format!("ClientCert {}", b64.encode(&foreign.cert_pem));
    let (status, _) = get(&base, "/whoami", Some(cert_only)).await;
    assert_eq!(status, 401);

    // Bearer tokens go to TokenReview.
    let (_, me) = get(&base, "/whoami", Some(format!("Bearer {}", d.admin_token))).await;
    assert_eq!(me, json!({"name": "admin", "kind": "user"}));
    let (_, body) = get(&base, "/whoami", None).await;
    assert_eq!(cf_error(&body).0, "CF-NotAuthenticated");
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A local OIDC issuer: discovery and a JWKS with one ES256 key (`kid` `k1`).
struct LocalIssuer {
    iss: String,
    key: jsonwebtoken::EncodingKey,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for LocalIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn es256_key() -> (jsonwebtoken::EncodingKey, Value) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = pair.public_key_raw();
    // Uncompressed point: 0x04 || x || y.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
        "x": b64.encode(&raw[1..33]), "y": b64.encode(&raw[33..65]),
    });
    (jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der()), jwk)
}

async fn local_issuer() -> LocalIssuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let iss = format!("{base}/oauth/token");
    let (key, jwk) = es256_key();
    let discovery = json!({"issuer": iss, "jwks_uri": format!("{base}/token_keys")}).to_string();
    let jwks = json!({"keys": [jwk]}).to_string();
    let json_type = [("content-type", "application/json")];
    let router = axum::Router::new()
        .route(
            "/oauth/token/.well-known/openid-configuration",
            axum::routing::get(move || async move { (json_type, discovery) }),
        )
        .route(
            "/token_keys",
            axum::routing::get(move || async move { (json_type, jwks) }),
        );
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    LocalIssuer { iss, key, server }
}

fn sign_es256(key: &jsonwebtoken::EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oidc_tokens_are_verified_by_the_issuers_jwks() {
    let issuer = local_issuer().await;
    let tc = kubefoundry_e2e::TestCluster::start().await;
    tc.install_crds().await;
    tc.kubectl_ok(&["create", "namespace", "cf"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut oidc = OidcConfig::new(issuer.iss.clone());
    oidc.groups_claim = Some("groups".to_owned());
    oidc.user_prefix = "oidc:".to_owned();
    let state = api::state(
        tc.client.clone(),
        api::Config {
            base_url: base.clone(),
            auth: AuthConfig {
                mode: Mode::Oidc,
                oidc: Some(oidc),
                ..AuthConfig::default()
            },
            ..api::Config::default()
        },
    )
    .await;
    let router = api::router(state);
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });

    // cf api sends the CLI to the issuer to log in.
    let (_, root) = get(&base, "/", None).await;
    let login = issuer.iss.trim_end_matches("/oauth/token");
    assert_eq!(root["cf_on_k8s"], false);
    assert_eq!(root["links"]["login"]["href"], login);
    assert_eq!(root["links"]["uaa"]["href"], login);
    let (status, _) = get(&base, "/login", None).await;
    assert_eq!(status, 404, "the built-in issuer is off");

    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |aud: &str, exp: u64| {
        json!({
            "iss": issuer.iss, "aud": [aud], "iat": now, "exp": exp,
            "user_name": "alice", "user_id": "u-1", "origin": "uaa", "groups": ["devs"],
        })
    };
    let good = sign_es256(&issuer.key, "k1", &claims("cloud_controller", now + 600));
    let (status, me) = get(&base, "/whoami", Some(format!("bearer {good}"))).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me, json!({"name": "oidc:alice", "kind": "user"}));
    let (status, orgs) = get(&base, "/v3/organizations", Some(format!("bearer {good}"))).await;
    assert_eq!((status, &orgs["resources"]), (200, &json!([])));

    let (other_key, _) = es256_key();
    for (why, token) in [
        (
            "wrong audience",
            sign_es256(&issuer.key, "k1", &claims("elsewhere", now + 600)),
        ),
        (
            "expired",
            sign_es256(&issuer.key, "k1", &claims("cloud_controller", now - 600)),
        ),
        (
            "unknown kid",
            sign_es256(&issuer.key, "k2", &claims("cloud_controller", now + 600)),
        ),
        (
            "other key",
            sign_es256(&other_key, "k1", &claims("cloud_controller", now + 600)),
        ),
    ] {
        let (status, body) = get(&base, "/whoami", Some(format!("bearer {token}"))).await;
        assert_eq!((status, cf_error(&body).0), (401, "CF-InvalidAuthToken"), "{why}");
    }
    server.abort();
}
