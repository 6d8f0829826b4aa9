//! `kubefoundry dev`: everything in one process with no cluster. The simulated cluster (TLS,
//! so its CA can vouch for client certificates), the CRDs, the root namespace, the default
//! shared domain, the controller and the CF API. In issuer mode (the default) the API issues
//! tokens itself and an `admin` user is created with a random password; in Kubernetes mode the
//! cf CLI logs in with the written kubeconfig (`cf_on_k8s`). Everything persists under the data
//! directory: the cluster's store holds the users Secret and the token signing key, so tokens
//! and passwords survive a restart.

use std::{net::SocketAddr, path::PathBuf};

use base64::Engine as _;
use k8s_openapi::{
    api::core::v1::Namespace, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};

use crate::{
    api::{self, auth::Mode, issuer},
    crd::{CFDomain, CFDomainSpec},
};

/// The error type of `dev`.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The root namespace dev uses.
pub const ROOT_NAMESPACE: &str = "cf";
/// The default shared domain (wildcard DNS to loopback).
pub const DEFAULT_DOMAIN: &str = "apps.127.0.0.1.nip.io";
/// The admin's CF user name.
pub const ADMIN: &str = "admin";
/// The kubeconfig user with a client certificate (CN `cf-admin`, O `system:masters`).
pub const CERT_USER: &str = "cf-admin";

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where state persists.
    pub data_dir: PathBuf,
    /// The simulated Kubernetes API's address.
    pub kube_listen: SocketAddr,
    /// The CF API's address.
    pub api_listen: SocketAddr,
    /// How the cf CLI logs in: [`Mode::Issuer`] (`cf login -u admin -p …`) or
    /// [`Mode::Kubernetes`] (kubeconfig users, `cf_on_k8s`).
    pub auth: Mode,
}

/// A running dev environment; dropping it stops everything.
pub struct Dev {
    /// The CF API URL.
    pub api_url: String,
    /// The simulated cluster's URL.
    pub kube_url: String,
    /// The written kubeconfig (users `admin`, with a token, and `cf-admin`, with a client cert).
    pub kubeconfig: PathBuf,
    /// How the cf CLI logs in.
    pub auth: Mode,
    /// The admin's password in issuer mode (`None` if it was set before and its file is gone).
    pub admin_password: Option<String>,
    /// The cluster admin's bearer token.
    pub admin_token: String,
    /// The client certificate of the kubeconfig's `cf-admin` user.
    pub cert_user: kubefoundry_sim::tls::ClientCert,
    /// The façade's state.
    pub state: std::sync::Arc<api::ApiState>,
    /// The simulated cluster (its CA issues client certificates).
    pub sim: kubefoundry_sim::Running,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Dev {
    /// What to tell the person who started it.
    pub fn banner(&self, data_dir: &std::path::Path) -> String {
        let mut out = format!(
            "kubefoundry dev is running (state in {})\n  CF API:      {}\n",
            data_dir.display(),
            self.api_url
        );
        match self.auth {
            Mode::Kubernetes => out.push_str(&format!(
                "  Log in:      export KUBECONFIG={kc}; cf api {api} && cf login -u {ADMIN}   (or -u {CERT_USER}: client certificate)\n",
                kc = self.kubeconfig.display(),
                api = self.api_url,
            )),
            _ => {
                let password = self
                    .admin_password
                    .clone()
                    .unwrap_or_else(|| "(set earlier; its file is gone: delete the data dir to reset)".to_owned());
                out.push_str(&format!(
                    "  Admin:       user '{ADMIN}', password {password}\n  Log in:      cf api {api} && cf login -u {ADMIN} -p {password}\n",
                    api = self.api_url,
                ));
            }
        }
        out.push_str(&format!(
            "  Kubernetes:  {}   (KUBECONFIG={}; users '{ADMIN}' (token {}) and '{CERT_USER}' (client certificate))\n",
            self.kube_url,
            self.kubeconfig.display(),
            self.admin_token
        ));
        out
    }
}

fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// The simulated cluster's kubeconfig plus the user `cert` authenticates (`cf-admin`).
fn kubeconfig(
    sim: &kubefoundry_sim::Running,
    cert: &kubefoundry_sim::tls::ClientCert,
) -> Result<String, Error> {
    let mut config: serde_json::Value = serde_yaml::from_str(&sim.kubeconfig())?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    if let Some(users) = config.get_mut("users").and_then(|u| u.as_array_mut()) {
        users.push(serde_json::json!({
            "name": CERT_USER,
            "user": {"client-certificate-data": b64(&cert.cert_pem), "client-key-data": b64(&cert.key_pem)},
        }));
    }
    Ok(serde_yaml::to_string(&config)?)
}

/// Starts everything; returns once the API is listening.
pub async fn start(options: Options) -> Result<Dev, Error> {
    let sim = kubefoundry_sim::start(kubefoundry_sim::Options {
        listen: Some(options.kube_listen),
        data_dir: Some(options.data_dir.join("cluster")),
        tls: true,
        ..kubefoundry_sim::Options::default()
    })
    .await?;
    let tls = sim.tls.clone().ok_or("the simulated cluster serves no TLS")?;
    let cert_user = tls.client_cert(CERT_USER, &["system:masters"])?;
    let kubeconfig_path = options.data_dir.join("kubeconfig");
    write_private(&kubeconfig_path, kubeconfig(&sim, &cert_user)?.as_bytes())?;
    let client = sim.client().await?;
    bootstrap(&client).await?;
    let admin_password = match options.auth {
        Mode::Kubernetes => None,
        _ => admin_password(&client, &options.data_dir).await?,
    };
    let controller_client = client.clone();
    let controller = tokio::spawn(async move {
        let config = crate::controller::Config {
            root_namespace: ROOT_NAMESPACE.to_owned(),
            ..Default::default()
        };
        if let Err(e) = crate::controller::run(controller_client, config, std::future::pending()).await {
            tracing::error!(error = %e, "controller stopped");
        }
    });
    let listener = tokio::net::TcpListener::bind(options.api_listen).await?;
    let api_url = format!("http://{}", listener.local_addr()?);
    let config = api::Config {
        base_url: api_url.clone(),
        root_namespace: ROOT_NAMESPACE.to_owned(),
        package_dir: options.data_dir.join("packages"),
        auth: api::auth::AuthConfig {
            mode: options.auth,
            client_ca: vec![tls.ca_der.clone()],
            ..api::auth::AuthConfig::default()
        },
        ..api::Config::default()
    };
    let state = api::state(client, config).await;
    let router = api::router(state.clone());
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "CF API stopped");
        }
    });
    Ok(Dev {
        api_url,
        kube_url: sim.url.clone(),
        kubeconfig: kubeconfig_path,
        auth: options.auth,
        admin_password,
        admin_token: sim.admin_token.clone(),
        cert_user,
        state,
        sim,
        tasks: vec![controller, server],
    })
}

/// CRDs, the root namespace and the default shared domain, each only when missing.
async fn bootstrap(client: &Client) -> Result<(), Error> {
    let apply = PatchParams::apply(crate::labels::FIELD_MANAGER).force();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crate::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &apply, &Patch::Apply(&crd)).await?;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ROOT_NAMESPACE}});
    namespaces
        .patch(ROOT_NAMESPACE, &apply, &Patch::Apply(&ns))
        .await?;
    // CRDs become Established as they are written: retry the first CF write until it is served.
    let domains: Api<CFDomain> = Api::namespaced(client.clone(), ROOT_NAMESPACE);
    let mut domain = CFDomain::new(
        "default-domain",
        CFDomainSpec {
            name: DEFAULT_DOMAIN.to_owned(),
            internal: false,
            organization_guid: None,
            shared_organization_guids: Vec::new(),
            tls_secret_name: None,
        },
    );
    domain.metadata.namespace = Some(ROOT_NAMESPACE.to_owned());
    let mut last = None;
    for _ in 0..50 {
        match domains.create(&PostParams::default(), &domain).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(last.map_or_else(|| "default domain not created".into(), Into::into))
}

/// The admin's password: created (random, hashed into the users Secret, kept in
/// `<data dir>/admin-password` so it can be shown again) on first start, read back after.
async fn admin_password(client: &Client, data_dir: &std::path::Path) -> Result<Option<String>, Error> {
    let file = data_dir.join("admin-password");
    let password = issuer::random_password()?;
    let users_secret = issuer::IssuerConfig::default().users_secret;
    if issuer::ensure_user(client, ROOT_NAMESPACE, &users_secret, ADMIN, &password, true).await? {
        write_private(&file, password.as_bytes())?;
        return Ok(Some(password));
    }
    Ok(std::fs::read_to_string(&file).ok().map(|s| s.trim().to_owned()))
}
