//! What both whole-system benchmarks share: knobs from the environment, a process's memory from
//! /proc, concurrent creates, and a `main` on a two-worker runtime that reports failures.

use std::process::ExitCode;

use futures::{StreamExt as _, TryStreamExt as _};
use kube::{Api, api::PostParams};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// A positive integer knob (`_` separators allowed), or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

/// (current RSS, peak RSS) of process `pid`, in KiB; zeros when /proc cannot say.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Creates `objects` with `concurrency` requests in flight, each through `api_of(object)`.
pub async fn create_all<K>(api_of: impl Fn(&K) -> Api<K>, objects: Vec<K>, concurrency: usize) -> Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    futures::stream::iter(objects.into_iter().map(|o| {
        let api = api_of(&o);
        async move { api.create(&PostParams::default(), &o).await.map(|_| ()) }
    }))
    .buffer_unordered(concurrency)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

/// Runs `run` on a two-worker runtime (the machine's size), printing a failure.
pub fn main(run: impl std::future::Future<Output = Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}
