//! Scale of `kubefoundry controller`: 10,000 started docker apps across 1,000 spaces, applied
//! GitOps-style to the simulated cluster, with the controller running as its own process (the
//! release binary), so its memory is its own. Reports the time for orgs/spaces and then apps to
//! converge, the Kubernetes API requests the controller made per app, the writes it makes once
//! converged (should be zero), and the controller's peak and final RSS.
//!
//! Run with `cargo bench --bench controller_scale`. It prints figures and asserts none. Knobs:
//! `KF_BENCH_APPS` (default 10,000), `KF_BENCH_SPACES` (default 1,000), `KF_BENCH_ORGS`
//! (default 10), `KF_BENCH_CONCURRENCY` (client tasks creating objects, default 16).

use std::{
    process::{ExitCode, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::Namespace, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use kubefoundry::crd::{CFApp, CFDroplet, CFOrg, CFOrgSpec, CFSpace, CFSpaceSpec};
use serde_json::json;

mod common;

use common::{Result, env_usize, rss_kib};

/// Requests the benchmark itself makes, so the controller's share can be told apart.
static OWN_REQUESTS: AtomicU64 = AtomicU64::new(0);

fn own(n: u64) {
    OWN_REQUESTS.fetch_add(n, Ordering::Relaxed);
}

/// Creates `objects`, counting them as the benchmark's own requests.
async fn create_all<K>(api_of: impl Fn(&K) -> Api<K>, objects: Vec<K>, concurrency: usize) -> Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let n = objects.len() as u64;
    common::create_all(api_of, objects, concurrency).await?;
    own(n);
    Ok(())
}

/// Polls `count` every 500 ms until it reaches `want`; returns the elapsed time.
async fn converge<F, Fut>(what: &str, want: usize, started: Instant, mut count: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize>>,
{
    let mut last = 0;
    loop {
        let n = count().await?;
        if n != last {
            eprintln!(
                "  {what}: {n}/{want} after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            last = n;
        }
        if n >= want {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err(format!("{what} did not converge in 30 min ({n}/{want})").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn count_pages<K>(api: &Api<K>, ok: impl Fn(&K) -> bool) -> Result<usize>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut n = 0;
    let mut params = ListParams::default().limit(5000);
    loop {
        let page = api.list(&params).await?;
        own(1);
        n += page.items.iter().filter(|o| ok(o)).count();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => params = params.continue_token(&c),
            None => return Ok(n),
        }
    }
}

async fn run() -> Result<()> {
    let apps_n = env_usize("KF_BENCH_APPS", 10_000);
    let spaces_n = env_usize("KF_BENCH_SPACES", 1_000).min(apps_n);
    let orgs_n = env_usize("KF_BENCH_ORGS", 10).min(spaces_n);
    let concurrency = env_usize("KF_BENCH_CONCURRENCY", 16);
    println!(
        "controller scale: {apps_n} started docker apps, {spaces_n} spaces, {orgs_n} orgs; {} CPUs",
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    let sim = kubefoundry_sim::start(kubefoundry_sim::Options {
        config: kubefoundry_sim::Config {
            pod_start_delay: Duration::from_millis(50),
            ..kubefoundry_sim::Config::default()
        },
        ..kubefoundry_sim::Options::default()
    })
    .await?;
    let dir = std::env::temp_dir().join(format!("kf-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let client: Client = sim.client().await?;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in kubefoundry::crd::all() {
        crds.create(&PostParams::default(), &crd).await?;
        own(1);
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "cf"}}))?,
        )
        .await?;
    own(1);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut controller = std::process::Command::new(env!("CARGO_BIN_EXE_kubefoundry"))
        .args([
            "controller",
            "--root-namespace",
            "cf",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = controller.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = rss_kib(pid);
    println!("controller idle RSS: {} MiB", baseline.0 / 1024);

    // Orgs and spaces.
    let started = Instant::now();
    let requests_before = sim.cluster.requests.total();
    let own_before = OWN_REQUESTS.load(Ordering::Relaxed);
    let orgs: Vec<CFOrg> = (0..orgs_n)
        .map(|o| {
            let mut org = CFOrg::new(
                &format!("org-{o}"),
                CFOrgSpec {
                    display_name: format!("org {o}"),
                    suspended: false,
                },
            );
            org.metadata.namespace = Some("cf".to_owned());
            org
        })
        .collect();
    create_all(|_| Api::namespaced(client.clone(), "cf"), orgs, concurrency).await?;
    converge("org namespaces", orgs_n, started, || {
        let namespaces = namespaces.clone();
        async move {
            count_pages(&namespaces, |n| {
                n.metadata.name.as_deref().is_some_and(|x| x.starts_with("org-"))
            })
            .await
        }
    })
    .await?;
    let spaces: Vec<CFSpace> = (0..spaces_n)
        .map(|s| {
            let mut space = CFSpace::new(
                &format!("space-{s}"),
                CFSpaceSpec {
                    display_name: format!("space {s}"),
                    allow_ssh: true,
                },
            );
            space.metadata.namespace = Some(format!("org-{}", s % orgs_n));
            space
        })
        .collect();
    create_all(
        |s: &CFSpace| {
            Api::namespaced(
                client.clone(),
                s.metadata.namespace.as_deref().unwrap_or_default(),
            )
        },
        spaces,
        concurrency,
    )
    .await?;
    let spaces_time = converge("space namespaces", spaces_n, started, || {
        let namespaces = namespaces.clone();
        async move {
            count_pages(&namespaces, |n| {
                n.metadata
                    .name
                    .as_deref()
                    .is_some_and(|x| x.starts_with("space-"))
            })
            .await
        }
    })
    .await?;

    // Apps: a droplet with an image and a started app using it, per app.
    let apps_started = Instant::now();
    let mut droplets = Vec::with_capacity(apps_n);
    let mut apps = Vec::with_capacity(apps_n);
    for a in 0..apps_n {
        let ns = format!("space-{}", a % spaces_n);
        let mut droplet: CFDroplet = serde_json::from_value(json!({
            "apiVersion": "kubefoundry.dev/v1alpha1",
            "kind": "CFDroplet",
            "metadata": {"name": format!("droplet-{a}"), "namespace": ns},
            "spec": {"appGuid": format!("app-{a}"), "lifecycle": "docker", "image": "nginxinc/nginx-unprivileged:1.27", "processTypes": {"web": ""}},
        }))?;
        droplet.metadata.namespace = Some(ns.clone());
        droplets.push(droplet);
        apps.push(serde_json::from_value::<CFApp>(json!({
            "apiVersion": "kubefoundry.dev/v1alpha1",
            "kind": "CFApp",
            "metadata": {"name": format!("app-{a}"), "namespace": ns},
            "spec": {"displayName": format!("app {a}"), "desiredState": "STARTED", "lifecycle": {"type": "docker"}, "currentDropletGuid": format!("droplet-{a}")},
        }))?);
    }
    let ns_api = |ns: Option<&str>| -> Api<CFApp> { Api::namespaced(client.clone(), ns.unwrap_or_default()) };
    create_all(
        |d: &CFDroplet| {
            Api::namespaced(
                client.clone(),
                d.metadata.namespace.as_deref().unwrap_or_default(),
            )
        },
        droplets,
        concurrency,
    )
    .await?;
    create_all(
        |a: &CFApp| ns_api(a.metadata.namespace.as_deref()),
        apps,
        concurrency,
    )
    .await?;
    let created = apps_started.elapsed();
    let all_apps: Api<CFApp> = Api::all(client.clone());
    let apps_time = converge("apps STARTED", apps_n, apps_started, || {
        let all_apps = all_apps.clone();
        async move {
            count_pages(&all_apps, |a| {
                a.status
                    .as_ref()
                    .and_then(|s| s.ready_instances)
                    .is_some_and(|r| r >= 1)
            })
            .await
        }
    })
    .await?;
    let converged_requests = sim.cluster.requests.total() - requests_before;
    let own_requests = OWN_REQUESTS.load(Ordering::Relaxed) - own_before;
    let controller_requests = converged_requests.saturating_sub(own_requests);
    let at_converge = rss_kib(pid);

    // Steady state: no writes from the controller.
    let snapshot = sim.cluster.requests.snapshot();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let later = sim.cluster.requests.snapshot();
    let steady_writes: u64 = later
        .iter()
        .filter(|(k, _)| {
            let verb = k.split(' ').next().unwrap_or_default();
            matches!(verb, "create" | "update" | "patch" | "delete")
        })
        .map(|(k, v)| v - snapshot.get(k).copied().unwrap_or(0))
        .sum();
    let end = rss_kib(pid);
    let _ = controller.kill();
    let _ = controller.wait();

    println!();
    println!("| measure | value |");
    println!("| --- | --- |");
    println!(
        "| orgs + spaces: time to all namespaces | {:.1} s |",
        spaces_time.as_secs_f64()
    );
    println!(
        "| apps: created (droplets + apps) in | {:.1} s |",
        created.as_secs_f64()
    );
    println!(
        "| apps: time from first create to all {apps_n} STARTED with a ready instance | {:.1} s |",
        apps_time.as_secs_f64()
    );
    println!(
        "| controller API requests until converged (orgs, spaces, apps) | {controller_requests} ({:.1} per app) |",
        controller_requests as f64 / apps_n as f64
    );
    println!("| writes in the 15 s after convergence (any client) | {steady_writes} |");
    println!(
        "| controller RSS idle / at convergence / 15 s later | {} / {} / {} MiB |",
        baseline.0 / 1024,
        at_converge.0 / 1024,
        end.0 / 1024
    );
    println!(
        "| controller peak RSS (VmHWM) | {} MiB |",
        end.1.max(at_converge.1) / 1024
    );
    Ok(())
}

fn main() -> ExitCode {
    common::main(run())
}
