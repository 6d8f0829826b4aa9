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
        #[arg(long, default_value = "")]
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
    },
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
        Command::Api {
            listen,
            external_url,
            root_namespace,
        } => {
            let config = kubefoundry::api::Config {
                base_url: external_url.unwrap_or_else(|| format!("http://{listen}")),
                root_namespace,
                identity_ttl: std::time::Duration::from_secs(60),
                ..kubefoundry::api::Config::default()
            };
            runtime().and_then(|rt| rt.block_on(api(listen, config)))
        }
        Command::Dev {
            data_dir,
            kube_listen,
            api_listen,
        } => runtime().and_then(|rt| rt.block_on(dev(data_dir, kube_listen, api_listen))),
        Command::Controller {
            root_namespace,
            lease_namespace,
            identity,
            user_prefix,
            metrics_addr,
            ingress_class,
            manage_cluster_roles,
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

async fn api(listen: SocketAddr, config: kubefoundry::api::Config) -> Result<(), Box<dyn std::error::Error>> {
    let client = kube::Client::try_default().await?;
    serve_api(client, listen, config).await
}

async fn serve_api(
    client: kube::Client,
    listen: SocketAddr,
    config: kubefoundry::api::Config,
) -> Result<(), Box<dyn std::error::Error>> {
    let state = kubefoundry::api::state(client, config).await;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, kubefoundry::api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn dev(
    data_dir: PathBuf,
    kube_listen: SocketAddr,
    api_listen: SocketAddr,
) -> Result<(), Box<dyn std::error::Error>> {
    use kube::api::{Api, Patch, PatchParams};
    let sim = kubefoundry_sim::start(kubefoundry_sim::Options {
        listen: Some(kube_listen),
        data_dir: Some(data_dir.join("cluster")),
        ..kubefoundry_sim::Options::default()
    })
    .await?;
    let kubeconfig = data_dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let client = sim.client().await?;
    let apply = PatchParams::apply(kubefoundry::labels::FIELD_MANAGER).force();
    let crds: Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = Api::all(client.clone());
    for crd in kubefoundry::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &apply, &Patch::Apply(&crd)).await?;
    }
    let root = "cf";
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": root}});
    namespaces.patch(root, &apply, &Patch::Apply(&ns)).await?;
    // CRDs become Established as they are written; the controller's watches need them served.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let controller_config = kubefoundry::controller::Config {
        root_namespace: root.to_owned(),
        ..Default::default()
    };
    let controller_client = client.clone();
    tokio::spawn(async move {
        if let Err(e) =
            kubefoundry::controller::run(controller_client, controller_config, std::future::pending()).await
        {
            tracing::error!(error = %e, "controller stopped");
        }
    });
    let base_url = format!("http://{api_listen}");
    eprintln!("kubefoundry dev is running (state in {})", data_dir.display());
    eprintln!("  CF API:      {base_url}   (cf api {base_url} --skip-ssl-validation)");
    eprintln!(
        "  Kubernetes:  {}   (KUBECONFIG={})",
        sim.url,
        kubeconfig.display()
    );
    eprintln!(
        "  Admin:       user 'admin' (system:masters), token {}",
        sim.admin_token
    );
    let config = kubefoundry::api::Config {
        base_url,
        root_namespace: root.to_owned(),
        identity_ttl: std::time::Duration::from_secs(60),
        ..kubefoundry::api::Config::default()
    };
    serve_api(client, api_listen, config).await
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
