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
        Command::Sim { listen, kubeconfig_out, data_dir, token_file, tls } => {
            let options = kubefoundry_sim::Options {
                listen: Some(listen),
                data_dir,
                token_file,
                tls,
                config: kubefoundry_sim::Config::default(),
            };
            runtime().and_then(|rt| rt.block_on(sim(options, kubeconfig_out)))
        }
        Command::Controller { root_namespace, lease_namespace, identity, user_prefix, metrics_addr } => {
            let defaults = kubefoundry::controller::Config::default();
            let config = kubefoundry::controller::Config {
                lease_namespace: lease_namespace.unwrap_or_else(|| root_namespace.clone()),
                root_namespace,
                identity: identity.unwrap_or(defaults.identity.clone()),
                user_prefix,
                metrics_addr: Some(metrics_addr),
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

async fn sim(options: kubefoundry_sim::Options, kubeconfig: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let running = kubefoundry_sim::start(options).await?;
    running.write_kubeconfig(&kubeconfig)?;
    eprintln!("kubefoundry sim serving {} (kubeconfig: {})", running.url, kubeconfig.display());
    shutdown_signal().await;
    Ok(())
}

async fn controller(config: kubefoundry::controller::Config) -> Result<(), Box<dyn std::error::Error>> {
    let client = kube::Client::try_default().await?;
    kubefoundry::controller::run(client, config, shutdown_signal()).await?;
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
