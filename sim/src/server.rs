//! Running the simulated cluster: seeding a fresh store as kube-apiserver bootstraps one,
//! serving HTTP/1.1 and HTTP/2 (optionally TLS with client certificates), and writing a
//! kubeconfig that kubectl, Helm and kube-rs use unchanged.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use serde_json::json;
use tokio::net::TcpListener;

use crate::{
    api,
    cluster::{Cluster, Config},
    controllers, persistence,
    rbac::TokenFile,
    store::Store,
    tls::Tls,
};

/// How to start the simulated cluster.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Address to listen on; port 0 picks a free one.
    pub listen: Option<SocketAddr>,
    /// Persist every write under this directory.
    pub data_dir: Option<PathBuf>,
    /// Extra bearer tokens, in kube-apiserver's `--token-auth-file` format.
    pub token_file: Option<PathBuf>,
    /// Serve HTTPS with a generated CA, and accept client certificates it issues.
    pub tls: bool,
    /// Behaviour settings.
    pub config: Config,
}

/// Errors starting the simulated cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token file could not be read or parsed.
    #[error("token file: {0}")]
    TokenFile(String),
    /// The data directory could not be opened.
    #[error("data dir: {0}")]
    DataDir(String),
    /// TLS material could not be generated.
    #[error("tls: {0}")]
    Tls(String),
    /// Writing the kubeconfig failed.
    #[error("cannot write kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running simulated cluster.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The server URL, `http://127.0.0.1:PORT` or `https://…`.
    pub url: String,
    /// The admin user's bearer token (user `admin`, group `system:masters`).
    pub admin_token: String,
    /// The shared state, for fault injection and direct inspection in tests.
    pub cluster: Arc<Cluster>,
    /// TLS material when serving HTTPS.
    pub tls: Option<Arc<Tls>>,
    server: tokio::task::JoinHandle<()>,
    controllers: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.server.abort();
        self.controllers.abort();
        // Open connections and watches may hold the cluster a while longer; the data dir is
        // released now, so a server started next on it opens it (as after a process exit).
        self.cluster.store.detach_persistence();
    }
}

/// Builds the cluster state: restores or seeds the store, loads tokens.
pub fn build(options: &Options, admin_token: &str, tls: Option<&Tls>) -> Result<Arc<Cluster>, Error> {
    let mut tokens_csv = format!("{admin_token},admin,admin-uid,\"system:masters\"\n");
    if let Some(path) = &options.token_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::TokenFile(format!("{}: {e}", path.display())))?;
        tokens_csv.push_str(&text);
    }
    let tokens = TokenFile::parse("tokens", &tokens_csv).map_err(Error::TokenFile)?;
    let (store, key, fresh) = match &options.data_dir {
        Some(dir) => {
            let (store, key, fresh) =
                persistence::open(dir, options.config.history_limit).map_err(Error::DataDir)?;
            (store, key, fresh)
        }
        None => (Store::new(options.config.history_limit), random_key(), true),
    };
    let mut cluster = Cluster::new(Arc::new(store), options.config.clone(), tokens, key);
    if let Some(tls) = tls {
        cluster.ca_pem = tls.ca_pem.clone();
    }
    let cluster = Arc::new(cluster);
    // Serve the CRDs already stored before anything asks for their objects.
    for (_, crd) in cluster
        .store
        .list("apiextensions.k8s.io/customresourcedefinitions", None)
        .0
    {
        crate::kinds::establish_crd(&cluster, &crd);
    }
    if fresh {
        seed(&cluster);
    }
    Ok(cluster)
}

fn random_key() -> Vec<u8> {
    let mut key = uuid::Uuid::new_v4().as_bytes().to_vec();
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key
}

/// What kube-apiserver creates on first start: the system namespaces and the bootstrap RBAC.
fn seed(cluster: &Arc<Cluster>) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let Some(rt) = cluster.registry.get("", "v1", "namespaces") else {
            return;
        };
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        if let Err(e) = api::objects::create_as(cluster, &rt, "", body, "kube-apiserver") {
            tracing::warn!(message = e.message, "seeding namespace failed");
        }
    }
    for object in crate::rbac::bootstrap_policy() {
        let api_version = object["apiVersion"].as_str().unwrap_or("");
        let kind = object["kind"].as_str().unwrap_or("");
        let Some(rt) = cluster.registry.by_kind(api_version, kind) else {
            continue;
        };
        if let Err(e) = api::objects::create_as(cluster, &rt, "", object.clone(), "kube-apiserver") {
            tracing::warn!(message = e.message, "seeding bootstrap RBAC failed");
        }
    }
}

/// Starts serving; returns once the listener is bound.
pub async fn start(options: Options) -> Result<Running, Error> {
    let addr = options
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let tls = if options.tls {
        Some(Arc::new(Tls::generate(addr).map_err(Error::Tls)?))
    } else {
        None
    };
    let admin_token = format!("sim-admin-{}", uuid::Uuid::new_v4().simple());
    let mut options = options;
    if tls.is_none() {
        options.config.anonymous_is_admin = true;
    }
    let cluster = build(&options, &admin_token, tls.as_deref())?;
    let controllers = controllers::spawn(cluster.clone());
    let router = api::router(cluster.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = match tls.clone() {
        Some(tls) => tokio::spawn(async move { crate::tls::serve(listener, router, tls).await }),
        None => tokio::spawn(async move {
            // Go sets TCP_NODELAY on every connection, so kube-apiserver has it; without it a
            // small write such as a watch event waits for the client's delayed ACK (~40 ms).
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!(%err, "simulated cluster stopped");
            }
        }),
    };
    Ok(Running {
        addr,
        url: format!("{scheme}://{addr}"),
        admin_token,
        cluster,
        tls,
        server,
        controllers,
    })
}

impl Running {
    /// A kubeconfig for the admin user, as YAML.
    pub fn kubeconfig(&self) -> String {
        let cluster = match &self.tls {
            Some(tls) => {
                use base64::Engine as _;
                json!({"server": self.url, "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(&tls.ca_pem)})
            }
            None => json!({"server": self.url}),
        };
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kubefoundry-sim", "cluster": cluster}],
            "users": [{"name": "admin", "user": {"token": self.admin_token}}],
            "contexts": [{"name": "kubefoundry-sim", "context": {"cluster": "kubefoundry-sim", "user": "admin", "namespace": "default"}}],
            "current-context": "kubefoundry-sim",
            "preferences": {},
        });
        serde_yaml::to_string(&config).unwrap_or_default()
    }

    /// Writes the admin kubeconfig to `path` (mode 0600).
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> Result<(), Error> {
        let err = |source| Error::Kubeconfig {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        std::fs::write(path, self.kubeconfig()).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        }
        Ok(())
    }

    /// A kube-rs client authenticated as the admin user.
    pub async fn client(&self) -> Result<kube::Client, kube::Error> {
        let kubeconfig: kube::config::Kubeconfig =
            serde_yaml::from_str(&self.kubeconfig()).map_err(|e| kube::Error::Service(Box::new(e)))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| kube::Error::Service(Box::new(e)))?;
        kube::Client::try_from(config)
    }

    /// A kube-rs client authenticated with `token`.
    pub async fn client_with_token(&self, token: &str) -> Result<kube::Client, kube::Error> {
        let mut config = kube::Config::new(self.url.parse().map_err(|e| kube::Error::Service(Box::new(e)))?);
        config.auth_info.token = Some(token.to_owned().into());
        if let Some(tls) = &self.tls {
            config.root_cert = Some(vec![tls.ca_der.clone()]);
        }
        kube::Client::try_from(config)
    }
}

/// An in-process client: requests go straight into the router, no socket involved.
pub fn in_process_client(cluster: Arc<Cluster>, token: &str) -> kube::Client {
    let router = api::router(cluster);
    let header = axum::http::HeaderValue::from_str(&format!("Bearer {token}")).ok();
    let service = tower::ServiceBuilder::new()
        .map_request(move |mut req: axum::http::Request<kube::client::Body>| {
            if let Some(h) = &header {
                req.headers_mut()
                    .insert(axum::http::header::AUTHORIZATION, h.clone());
            }
            req
        })
        .service(router);
    kube::Client::new(service, "default")
}
