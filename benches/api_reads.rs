//! Read path of `kubefoundry api` at 1,000 spaces × 10 apps: `GET /v3/apps?per_page=50` and
//! `GET /v3/apps/{guid}`, as the admin and as a space developer of ten spaces. The façade runs
//! as its own process (the release binary) against the simulated cluster, so its memory is its
//! own. Reports p50/p99 latency, requests per second, Kubernetes API requests per CF request
//! (the goal is zero in steady state: reads come from watch caches) and the façade's RSS.
//!
//! Run with `cargo bench --bench api_reads`. It prints figures and asserts none. Knobs:
//! `KF_BENCH_SPACES` (default 1,000), `KF_BENCH_APPS_PER_SPACE` (default 10),
//! `KF_BENCH_REQUESTS` (per measured endpoint, default 2,000), `KF_BENCH_CONCURRENCY` (client
//! tasks, default 4).

use std::{
    process::{ExitCode, Stdio},
    time::{Duration, Instant},
};

use futures::{StreamExt as _, TryStreamExt as _};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use k8s_openapi::{
    api::core::v1::Namespace, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use kubefoundry::crd::{
    AppState, CFApp, CFAppSpec, CFOrg, CFOrgSpec, CFRole, CFSpace, CFSpaceSpec, Lifecycle, LifecycleType,
};
use serde_json::json;

mod common;

use common::{BoxError, Result, create_all, env_usize, rss_kib};
/// The URL of the i-th request of a measured case.
type UrlOf<'a> = Box<dyn Fn(usize) -> String + 'a>;
type HttpClient =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        ..ObjectMeta::default()
    }
}

async fn get(http: &HttpClient, url: &str, token: &str) -> Result<(u16, Bytes)> {
    let req = hyper::Request::builder()
        .uri(url)
        .header("authorization", format!("bearer {token}"))
        .header("content-type", "application/json")
        .body(Empty::new())?;
    let response = http.request(req).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

struct Figures {
    p50: Duration,
    p99: Duration,
    rps: f64,
    kube_per_request: f64,
}

/// Runs `n` GETs of `url(i)` with `concurrency` tasks; latencies, throughput and the Kubernetes
/// requests the façade made meanwhile.
async fn measure(
    http: &HttpClient,
    sim: &kubefoundry_sim::Running,
    n: usize,
    concurrency: usize,
    token: &str,
    url: impl Fn(usize) -> String,
) -> Result<Figures> {
    // Warm-up: the first request of a token pays its TokenReview.
    let (status, body) = get(http, &url(0), token).await?;
    if status != 200 {
        return Err(format!("{} answered {status}: {}", url(0), String::from_utf8_lossy(&body)).into());
    }
    let before = sim.cluster.requests.total();
    let started = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter((0..n).map(|i| {
        let u = url(i);
        async move {
            let t = Instant::now();
            let (status, _) = get(http, &u, token).await?;
            if status != 200 {
                return Err::<Duration, BoxError>(format!("{u} answered {status}").into());
            }
            Ok(t.elapsed())
        }
    }))
    .buffer_unordered(concurrency)
    .try_collect()
    .await?;
    let elapsed = started.elapsed();
    let kube = sim.cluster.requests.total() - before;
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(Figures {
        p50: at(0.50),
        p99: at(0.99),
        rps: n as f64 / elapsed.as_secs_f64(),
        kube_per_request: kube as f64 / n as f64,
    })
}

async fn run() -> Result<()> {
    let spaces_n = env_usize("KF_BENCH_SPACES", 1_000);
    let per_space = env_usize("KF_BENCH_APPS_PER_SPACE", 10);
    let requests = env_usize("KF_BENCH_REQUESTS", 2_000);
    let concurrency = env_usize("KF_BENCH_CONCURRENCY", 4);
    let apps_n = spaces_n * per_space;
    println!(
        "api reads: {spaces_n} spaces x {per_space} apps = {apps_n} apps; {requests} requests per endpoint, {concurrency} concurrent; {} CPUs",
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    let dir = std::env::temp_dir().join(format!("kf-api-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let tokens = dir.join("tokens.csv");
    std::fs::write(&tokens, "alice-token,alice,alice-uid,\n")?;
    let sim = kubefoundry_sim::start(kubefoundry_sim::Options {
        token_file: Some(tokens),
        ..kubefoundry_sim::Options::default()
    })
    .await?;
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let client: Client = sim.client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in kubefoundry::crd::all() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns_objects = vec![
        Namespace {
            metadata: meta("cf", ""),
            ..Namespace::default()
        },
        Namespace {
            metadata: meta("org-0", ""),
            ..Namespace::default()
        },
    ];
    for s in 0..spaces_n {
        ns_objects.push(Namespace {
            metadata: meta(&format!("space-{s}"), ""),
            ..Namespace::default()
        });
    }
    for ns in &mut ns_objects {
        ns.metadata.namespace = None;
    }
    create_all(|_| namespaces.clone(), ns_objects, 16).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let loaded = Instant::now();
    let mut org = CFOrg::new(
        "org-0",
        CFOrgSpec {
            display_name: "bench".to_owned(),
            suspended: false,
        },
    );
    org.metadata.namespace = Some("cf".to_owned());
    Api::<CFOrg>::namespaced(client.clone(), "cf")
        .create(&PostParams::default(), &org)
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
            space.metadata.namespace = Some("org-0".to_owned());
            space
        })
        .collect();
    create_all(|_| Api::namespaced(client.clone(), "org-0"), spaces, 16).await?;
    let apps: Vec<CFApp> = (0..apps_n)
        .map(|a| {
            let mut app = CFApp::new(
                &format!("app-{a}"),
                CFAppSpec {
                    display_name: format!("app-{a}"),
                    desired_state: AppState::Stopped,
                    lifecycle: Lifecycle {
                        type_: LifecycleType::Docker,
                        ..Lifecycle::default()
                    },
                    env: Default::default(),
                    current_droplet_guid: None,
                    restarted_at: None,
                },
            );
            app.metadata.namespace = Some(format!("space-{}", a % spaces_n));
            app
        })
        .collect();
    create_all(
        |a: &CFApp| {
            Api::namespaced(
                client.clone(),
                a.metadata.namespace.as_deref().unwrap_or_default(),
            )
        },
        apps,
        16,
    )
    .await?;
    // alice develops in the first ten spaces (and so sees 10 × per_space apps).
    let roles: Vec<CFRole> = (0..spaces_n.min(10))
        .map(|s| -> Result<CFRole> {
            Ok(serde_json::from_value(json!({
                "apiVersion": "kubefoundry.dev/v1alpha1",
                "kind": "CFRole",
                "metadata": {"name": format!("alice-dev-{s}"), "namespace": format!("space-{s}")},
                "spec": {"type": "space_developer", "subject": {"kind": "User", "name": "alice"}},
            }))?)
        })
        .collect::<Result<_>>()?;
    create_all(
        |r: &CFRole| {
            Api::namespaced(
                client.clone(),
                r.metadata.namespace.as_deref().unwrap_or_default(),
            )
        },
        roles,
        16,
    )
    .await?;
    println!("loaded {apps_n} apps in {:.1} s", loaded.elapsed().as_secs_f64());

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut api = std::process::Command::new(env!("CARGO_BIN_EXE_kubefoundry"))
        .args([
            "api",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--root-namespace",
            "cf",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = api.id();
    let http: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let ready = Instant::now();
    loop {
        if let Ok((200, _)) = get(&http, &format!("{base}/"), "").await {
            break;
        }
        if ready.elapsed() > Duration::from_secs(120) {
            let _ = api.kill();
            return Err("the API did not come up in 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "api ready (caches filled) {:.1} s after start, RSS {} MiB",
        ready.elapsed().as_secs_f64(),
        rss_kib(pid).0 / 1024
    );

    let admin = sim.admin_token.clone();
    let cases: Vec<(&str, &str, UrlOf<'_>)> = vec![
        (
            "GET /v3/apps?per_page=50",
            "admin",
            Box::new(|_| format!("{base}/v3/apps?per_page=50")),
        ),
        (
            "GET /v3/apps?per_page=50",
            "space developer (10 spaces)",
            Box::new(|_| format!("{base}/v3/apps?per_page=50")),
        ),
        (
            "GET /v3/apps/{guid}",
            "admin",
            Box::new(|i| format!("{base}/v3/apps/app-{}", (i * 7919) % apps_n)),
        ),
        (
            "GET /v3/apps/{guid}",
            "space developer (10 spaces)",
            // app-a lives in space a % spaces_n; alice's spaces are 0..10.
            Box::new(|i| {
                format!(
                    "{base}/v3/apps/app-{}",
                    (i % 10) + spaces_n * ((i / 10) % per_space)
                )
            }),
        ),
        (
            "GET /v3/apps?per_page=5000",
            "admin",
            Box::new(|_| format!("{base}/v3/apps?per_page=5000")),
        ),
    ];
    println!();
    println!("| request | caller | p50 | p99 | req/s | Kubernetes requests per request |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (what, who, url) in &cases {
        let token = if who.starts_with("admin") {
            admin.as_str()
        } else {
            "alice-token"
        };
        let n = if what.contains("5000") {
            (requests / 20).max(10)
        } else {
            requests
        };
        let f = match measure(&http, &sim, n, concurrency, token, url).await {
            Ok(f) => f,
            Err(e) => {
                let _ = api.kill();
                let _ = api.wait();
                return Err(e);
            }
        };
        println!(
            "| `{what}` | {who} | {:.2} ms | {:.2} ms | {:.0} | {:.3} |",
            f.p50.as_secs_f64() * 1e3,
            f.p99.as_secs_f64() * 1e3,
            f.rps,
            f.kube_per_request
        );
    }
    let (rss, hwm) = rss_kib(pid);
    println!();
    println!(
        "façade RSS after the run: {} MiB (peak {} MiB)",
        rss / 1024,
        hwm / 1024
    );
    let _ = api.kill();
    let _ = api.wait();
    Ok(())
}

fn main() -> ExitCode {
    common::main(run())
}
