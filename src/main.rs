//! The `kubefoundry` binary: one executable, one subcommand per role.

use std::{io::Write, net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// The Cloud Foundry v3 API on any Kubernetes cluster.
#[derive(Parser)]
#[command(name = "kubefoundry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every CRD as multi-document YAML, or write one file per kind with --out.
    Crds {
        /// Write one `<kind>.yaml` per CRD into this directory instead of printing.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print the ClusterRole of every CF role type as multi-document YAML (what the chart ships).
    Rbac,
    /// Read a password from stdin and print its bcrypt hash, for the `passwordHash` of a user in
    /// the issuer's users Secret.
    HashPassword,
    /// Run the simulated Kubernetes API server (no cluster needed) until interrupted.
    Sim {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// Write an admin kubeconfig here (user `admin`, group `system:masters`).
        #[arg(long, value_name = "FILE")]
        kubeconfig_out: PathBuf,
        /// Persist every write under this directory; without it, state lives in memory.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Extra bearer tokens in kube-apiserver's --token-auth-file CSV format.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Serve HTTPS with a generated CA (written into the kubeconfig).
        #[arg(long)]
        tls: bool,
    },
    /// Run every reconciler against the cluster from KUBECONFIG (or in-cluster config).
    Controller {
        /// The root namespace, where CFOrgs, CFDomains and global CFRoles live.
        #[arg(long, env = "KUBEFOUNDRY_ROOT_NAMESPACE", default_value = "cf")]
        root_namespace: String,
        /// Namespace of the leader-election Lease (defaults to the root namespace).
        #[arg(long)]
        lease_namespace: Option<String>,
        /// This replica's identity for leader election (defaults to the host name and pid).
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// Prefix for CF user and group names in RBAC subjects.
        #[arg(long, env = "KUBEFOUNDRY_USER_PREFIX", default_value = "")]
        user_prefix: String,
        /// Serve /metrics, /healthz and /readyz here.
        #[arg(long, default_value = "0.0.0.0:8080")]
        metrics_addr: SocketAddr,
        /// The IngressClass route Ingresses name (defaults to the cluster's default class).
        #[arg(long, env = "KUBEFOUNDRY_INGRESS_CLASS")]
        ingress_class: Option<String>,
        /// Apply the CF ClusterRoles at start-up; `false` when the Helm chart ships them.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        manage_cluster_roles: bool,
        #[command(flatten)]
        app_defaults: AppDefaultsArgs,
    },
    /// Serve the CF v3 API against the cluster from KUBECONFIG (or in-cluster config).
    Api {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:9000")]
        listen: SocketAddr,
        /// The URL clients reach the API at; links in responses are absolute under it.
        #[arg(long, env = "KUBEFOUNDRY_API_URL")]
        external_url: Option<String>,
        /// The root namespace.
        #[arg(long, env = "KUBEFOUNDRY_ROOT_NAMESPACE", default_value = "cf")]
        root_namespace: String,
        /// Where uploaded package bits are kept.
        #[arg(long, env = "KUBEFOUNDRY_PACKAGE_DIR", value_name = "DIR")]
        package_dir: Option<PathBuf>,
        #[command(flatten)]
        auth: Box<AuthArgs>,
        #[command(flatten)]
        app_defaults: AppDefaultsArgs,
    },
    /// Everything in one process with no cluster: the simulated cluster, the controller and
    /// the CF API. Prints the API URL and the kubeconfig to log in with.
    Dev {
        /// Where the simulated cluster persists its state.
        #[arg(long, default_value = ".kubefoundry")]
        data_dir: PathBuf,
        /// Address of the simulated Kubernetes API.
        #[arg(long, default_value = "127.0.0.1:6443")]
        kube_listen: SocketAddr,
        /// Address of the CF API.
        #[arg(long, default_value = "127.0.0.1:9000")]
        api_listen: SocketAddr,
        /// How the cf CLI logs in: `issuer` (`cf login -u admin -p <printed password>`) or
        /// `kubernetes` (users of the printed kubeconfig, `cf_on_k8s`).
        #[arg(long, default_value = "issuer", value_parser = ["issuer", "kubernetes"])]
        auth: String,
    },
}

/// Limits of processes and tasks that set none (the controller and the API must agree).
#[derive(clap::Args)]
struct AppDefaultsArgs {
    /// Memory per app instance or task, in MB.
    #[arg(long, env = "KUBEFOUNDRY_APP_MEMORY_MB", default_value_t = 1024, value_parser = clap::value_parser!(i64).range(1..))]
    app_memory_mb: i64,
    /// Ephemeral disk per app instance or task, in MB.
    #[arg(long, env = "KUBEFOUNDRY_APP_DISK_MB", default_value_t = 1024, value_parser = clap::value_parser!(i64).range(1..))]
    app_disk_mb: i64,
    /// Log rate limit per app instance, in bytes per second; -1 is unlimited.
    #[arg(long, env = "KUBEFOUNDRY_APP_LOG_RATE_LIMIT", default_value_t = -1, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..))]
    app_log_rate_limit: i64,
}

impl From<AppDefaultsArgs> for kubefoundry::controller::podspec::AppDefaults {
    fn from(a: AppDefaultsArgs) -> Self {
        Self {
            memory_mb: a.app_memory_mb,
            disk_mb: a.app_disk_mb,
            log_rate_limit: a.app_log_rate_limit,
        }
    }
}

/// How `kubefoundry api` authenticates callers.
#[derive(clap::Args)]
struct AuthArgs {
    /// `kubernetes` (kubeconfig credentials: bearer tokens by TokenReview, client certificates),
    /// `issuer` (the API issues tokens for users of a Secret: `cf login -u -p`) or `oidc` (tokens
    /// of an external OIDC/UAA issuer). Kubernetes bearer tokens and client certificates are
    /// accepted in every mode.
    #[arg(long = "auth", env = "KUBEFOUNDRY_AUTH", default_value = "kubernetes", value_parser = ["kubernetes", "issuer", "oidc"])]
    mode: String,
    /// CA bundle (PEM) client certificates must chain to; defaults to the cluster's CA.
    #[arg(long, env = "KUBEFOUNDRY_CLIENT_CA_FILE", value_name = "FILE")]
    client_ca_file: Option<PathBuf>,
    /// Issuer mode: the Secret (root namespace) with the users, data key `users.yaml`.
    #[arg(long, env = "KUBEFOUNDRY_USERS_SECRET", default_value = "kubefoundry-users")]
    users_secret: String,
    /// Issuer mode: the Secret (root namespace) holding the token signing key; created if missing.
    #[arg(
        long,
        env = "KUBEFOUNDRY_ISSUER_KEY_SECRET",
        default_value = "kubefoundry-issuer-key"
    )]
    issuer_key_secret: String,
    /// Issuer and oidc modes: prefix of Kubernetes user names (e.g. `cf:`).
    #[arg(long, env = "KUBEFOUNDRY_USER_PREFIX", default_value = "")]
    user_prefix: String,
    /// Issuer mode: the Kubernetes group CF admins are given.
    #[arg(long, env = "KUBEFOUNDRY_ADMIN_GROUP", default_value = "system:masters")]
    admin_group: String,
    /// OIDC mode: the issuer URL (`iss` of its tokens), e.g. `https://uaa.example.com/oauth/token`.
    #[arg(long, env = "KUBEFOUNDRY_OIDC_ISSUER_URL")]
    oidc_issuer_url: Option<String>,
    /// OIDC mode: an audience tokens must carry; empty checks none.
    #[arg(long, env = "KUBEFOUNDRY_OIDC_AUDIENCE", default_value = "cloud_controller")]
    oidc_audience: String,
    /// OIDC mode: the claim naming the user.
    #[arg(long, env = "KUBEFOUNDRY_OIDC_USERNAME_CLAIM", default_value = "user_name")]
    oidc_username_claim: String,
    /// OIDC mode: the claim listing the user's groups.
    #[arg(long, env = "KUBEFOUNDRY_OIDC_GROUPS_CLAIM")]
    oidc_groups_claim: Option<String>,
    /// OIDC mode: where the cf CLI logs in (defaults to the issuer URL without `/oauth/token`).
    #[arg(long, env = "KUBEFOUNDRY_OIDC_LOGIN_URL")]
    oidc_login_url: Option<String>,
    /// OIDC mode: the JWKS URL (defaults to the issuer's discovery document's `jwks_uri`).
    #[arg(long, env = "KUBEFOUNDRY_OIDC_JWKS_URL")]
    oidc_jwks_url: Option<String>,
    /// OIDC mode: CA bundle (PEM) for the issuer's TLS (defaults to the system roots).
    #[arg(long, env = "KUBEFOUNDRY_OIDC_CA_FILE", value_name = "FILE")]
    oidc_ca_file: Option<PathBuf>,
}

impl AuthArgs {
    /// The façade's auth settings; `cluster_ca` (DER) is the client CA unless a file is given.
    fn config(
        self,
        cluster_ca: Vec<Vec<u8>>,
    ) -> Result<kubefoundry::api::auth::AuthConfig, Box<dyn std::error::Error>> {
        use kubefoundry::api::{auth, issuer::IssuerConfig};
        let client_ca = match &self.client_ca_file {
            Some(path) => auth::clientcert::ders_from_pem(&std::fs::read_to_string(path)?)?,
            None => cluster_ca,
        };
        let mode: auth::Mode = self.mode.parse()?;
        let oidc = match self.oidc_issuer_url {
            Some(url) => Some(auth::oidc::OidcConfig {
                issuer_url: url,
                audience: Some(self.oidc_audience).filter(|a| !a.is_empty()),
                username_claim: self.oidc_username_claim,
                groups_claim: self.oidc_groups_claim,
                user_prefix: self.user_prefix.clone(),
                login_url: self.oidc_login_url,
                jwks_url: self.oidc_jwks_url,
                ca_pem: self.oidc_ca_file.map(std::fs::read_to_string).transpose()?,
            }),
            None if mode == auth::Mode::Oidc => return Err("--auth oidc needs --oidc-issuer-url".into()),
            None => None,
        };
        Ok(auth::AuthConfig {
            mode,
            client_ca,
            issuer: IssuerConfig {
                users_secret: self.users_secret,
                key_secret: self.issuer_key_secret,
                user_prefix: self.user_prefix,
                admin_group: self.admin_group,
                ..IssuerConfig::default()
            },
            oidc,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Crds { out } => crds(out),
        Command::Rbac => kubefoundry::controller::role::cluster_roles::all_yaml()
            .map_err(Into::into)
            .and_then(|yaml| Ok(std::io::stdout().write_all(yaml.as_bytes())?)),
        Command::Sim {
            listen,
            kubeconfig_out,
            data_dir,
            token_file,
            tls,
        } => {
            let options = kubefoundry_sim::Options {
                listen: Some(listen),
                data_dir,
                token_file,
                tls,
                config: kubefoundry_sim::Config::default(),
            };
            runtime().and_then(|rt| rt.block_on(sim(options, kubeconfig_out)))
        }
        Command::HashPassword => hash_password(),
        Command::Api {
            listen,
            external_url,
            root_namespace,
            package_dir,
            auth,
            app_defaults,
        } => {
            let defaults = kubefoundry::api::Config::default();
            let config = kubefoundry::api::Config {
                base_url: external_url.unwrap_or_else(|| format!("http://{listen}")),
                root_namespace,
                identity_ttl: std::time::Duration::from_secs(60),
                package_dir: package_dir.unwrap_or(defaults.package_dir.clone()),
                app_defaults: app_defaults.into(),
                ..defaults
            };
            runtime().and_then(|rt| rt.block_on(api(listen, config, *auth)))
        }
        Command::Dev {
            data_dir,
            kube_listen,
            api_listen,
            auth,
        } => runtime().and_then(|rt| {
            rt.block_on(dev(kubefoundry::dev::Options {
                data_dir,
                kube_listen,
                api_listen,
                auth: auth.parse()?,
            }))
        }),
        Command::Controller {
            root_namespace,
            lease_namespace,
            identity,
            user_prefix,
            metrics_addr,
            ingress_class,
            manage_cluster_roles,
            app_defaults,
        } => {
            let defaults = kubefoundry::controller::Config::default();
            let config = kubefoundry::controller::Config {
                lease_namespace: lease_namespace.unwrap_or_else(|| root_namespace.clone()),
                root_namespace,
                identity: identity.unwrap_or(defaults.identity.clone()),
                user_prefix,
                metrics_addr: Some(metrics_addr),
                ingress_class,
                manage_cluster_roles,
                app_defaults: app_defaults.into(),
                ..defaults
            };
            runtime().and_then(|rt| rt.block_on(controller(config)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kubefoundry: {err}");
            ExitCode::FAILURE
        }
    }
}

fn crds(out: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    match out {
        Some(dir) => {
            for path in kubefoundry::crd::write_all(&dir)? {
                eprintln!("wrote {path}");
            }
        }
        None => std::io::stdout().write_all(kubefoundry::crd::all_yaml()?.as_bytes())?,
    }
    Ok(())
}

fn hash_password() -> Result<(), Box<dyn std::error::Error>> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err("no password on stdin".into());
    }
    let hash = kubefoundry::api::issuer::hash_password(password, kubefoundry::api::issuer::BCRYPT_COST)?;
    println!("{hash}");
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, Box<dyn std::error::Error>> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

async fn sim(
    options: kubefoundry_sim::Options,
    kubeconfig: PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    let running = kubefoundry_sim::start(options).await?;
    running.write_kubeconfig(&kubeconfig)?;
    eprintln!(
        "kubefoundry sim serving {} (kubeconfig: {})",
        running.url,
        kubeconfig.display()
    );
    shutdown_signal().await;
    Ok(())
}

async fn controller(config: kubefoundry::controller::Config) -> Result<(), Box<dyn std::error::Error>> {
    let client = kube::Client::try_default().await?;
    kubefoundry::controller::run(client, config, shutdown_signal()).await?;
    Ok(())
}

async fn api(
    listen: SocketAddr,
    mut config: kubefoundry::api::Config,
    auth: AuthArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    let kube_config = kube::Config::infer().await?;
    // Most clusters sign client certificates with the CA that serves the API (kubeadm, kind,
    // k3s), so the cluster's CA is the default client CA.
    let cluster_ca = kube_config.root_cert.clone().unwrap_or_default();
    config.auth = auth.config(cluster_ca)?;
    let client = kube::Client::try_from(kube_config)?;
    let state = kubefoundry::api::state(client, config).await;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, kubefoundry::api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn dev(options: kubefoundry::dev::Options) -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = options.data_dir.clone();
    let dev = kubefoundry::dev::start(options)
        .await
        .map_err(|e| e.to_string())?;
    print!("{}", dev.banner(&data_dir));
    std::io::stdout().flush()?;
    shutdown_signal().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
