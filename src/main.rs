//! The `kubefoundry` binary: one executable, one subcommand per role.

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crds { out } => crds(out),
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
