//! Throughput and memory of the simulated API server at scale: create, list and watch
//! throughput over HTTP through kube-rs, process memory per stored object, and the cost of
//! schema validation plus CEL rules on CRD-backed writes.
//!
//! Run with `cargo bench -p kubefoundry-sim --bench throughput`. It reports figures and never
//! asserts them, because absolute numbers depend on the (shared, noisy) machine. Knobs:
//! `KF_BENCH_N` (ConfigMaps, default 100,000), `KF_BENCH_CRD_N` (CFApps, default N/5),
//! `KF_BENCH_MODS` (live-watch modifications, default N/10), `KF_BENCH_CONCURRENCY`
//! (concurrent client tasks, default 16) and `KF_BENCH_PHASES` (which of `list`, `watch` and
//! `crd` run after the creates, comma-separated, default all; handy under a profiler).

use std::{
    collections::BTreeMap,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{StreamExt as _, TryStreamExt as _, io::AsyncBufReadExt as _};
use k8s_openapi::{
    api::core::v1::{ConfigMap, Namespace},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{
        ApiResource, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
        WatchEvent, WatchParams,
    },
};
use kubefoundry_sim::{
    Options, Running,
    api::encode::{JsonCache, list_body},
};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The namespace the ConfigMaps live in.
const NS: &str = "bench";
/// The namespace the CFApps live in, apart so their lists and watches see only them.
const CF_NS: &str = "bench-cf";
/// The page size of the paginated list: Korifi's and CCNG's maximum `per_page` is 5000, and
/// client-go's reflector pages at 500, which is what an informer start-up costs.
const PAGE: u32 = 500;
/// How many times each list is repeated; the median is reported because the box is shared.
const LIST_RUNS: usize = 3;

struct Settings {
    n: usize,
    crd_n: usize,
    mods: usize,
    concurrency: usize,
    phases: Vec<String>,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

impl Settings {
    fn from_env() -> Self {
        let n = env_usize("KF_BENCH_N", 100_000);
        Self {
            n,
            crd_n: env_usize("KF_BENCH_CRD_N", (n / 5).max(1)),
            mods: env_usize("KF_BENCH_MODS", (n / 10).max(1)),
            concurrency: env_usize("KF_BENCH_CONCURRENCY", 16),
            phases: std::env::var("KF_BENCH_PHASES")
                .unwrap_or_else(|_| "list,watch,crd".to_owned())
                .split(',')
                .map(|p| p.trim().to_owned())
                .collect(),
        }
    }

    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
}

fn main() -> ExitCode {
    // Two worker threads: the box has two cores, and server, client and watchers share them.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Settings::from_env())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("benchmark failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Resident set size of this process (server, client and watchers all live here), from
/// `/proc/self/status`; `None` where that file does not exist.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn rate(count: usize, d: Duration) -> f64 {
    count as f64 / d.as_secs_f64().max(f64::EPSILON)
}

/// The `p`-th percentile (0..=100) of sorted latencies, nearest-rank.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs.get(runs.len() / 2).copied().unwrap_or_default()
}

fn print_rss(label: &str) -> Option<u64> {
    let rss = rss_bytes();
    match rss {
        Some(b) => println!("  RSS {label:<34} {:>9.1} MiB", mib(b)),
        None => println!("  RSS {label:<34} unavailable (no /proc/self/status)"),
    }
    rss
}

/// What a batch of concurrent writes measured.
struct Batch {
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Batch {
    fn report(&self, what: &str) {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        println!(
            "  {what:<38} {:>9.0} /s   ({} in {:.2} s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms)",
            rate(sorted.len(), self.wall),
            sorted.len(),
            self.wall.as_secs_f64(),
            ms(percentile(&sorted, 50.0)),
            ms(percentile(&sorted, 99.0)),
            ms(sorted.last().copied().unwrap_or_default()),
        );
    }
}

/// Runs `op(i)` for every `i < count` from `concurrency` tasks, each taking the next index, and
/// times every call: a fixed pool of clients rather than one task per object, as a controller
/// with bounded concurrency would write.
async fn concurrently<F, Fut>(count: usize, concurrency: usize, op: F) -> Result<Batch>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (op, next) = (op.clone(), next.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(count / concurrency + 1);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, BoxError>(latencies);
                }
                let t = Instant::now();
                op(i).await?;
                latencies.push(t.elapsed());
            }
        });
    }
    let mut latencies = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        latencies.extend(joined??);
    }
    Ok(Batch {
        wall: started.elapsed(),
        latencies,
    })
}

async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// A small ConfigMap, about what an app's settings or a lock holder looks like.
fn config_map(i: usize) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("bench-{i:06}")),
            labels: Some(BTreeMap::from([
                ("app".to_owned(), "bench".to_owned()),
                ("shard".to_owned(), (i % 16).to_string()),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("index".to_owned(), i.to_string()),
            (
                "greeting".to_owned(),
                "hello from the throughput benchmark".to_owned(),
            ),
        ])),
        ..ConfigMap::default()
    }
}

/// A CFApp that exercises the schema (enum, lengths, defaults, a map) and every CEL rule of
/// the CRD: two over `env`, one over `lifecycle`.
fn cf_app(ar: &ApiResource, i: usize) -> DynamicObject {
    DynamicObject::new(&format!("app-{i:06}"), ar)
        .within(CF_NS)
        .data(json!({
            "spec": {
                "displayName": format!("app {i}"),
                "desiredState": if i.is_multiple_of(2) { "STARTED" } else { "STOPPED" },
                "env": {"GREETING": "hello", "LOG_LEVEL": "info", "WORKERS": (i % 8).to_string()},
                "lifecycle": {"type": "buildpack", "buildpacks": ["ruby_buildpack"], "stack": "cflinuxfs4"},
            }
        }))
}

async fn run(s: Settings) -> Result<()> {
    let total = Instant::now();
    println!(
        "kubefoundry-sim throughput: {} ConfigMaps, {} CFApps, {} live modifications, {} concurrent client tasks",
        s.n, s.crd_n, s.mods, s.concurrency
    );
    let rss_start = print_rss("before the sim starts");
    let running = kubefoundry_sim::start(Options::default()).await?;
    let client = running.client().await?;
    create_namespace(&client, NS).await?;
    create_namespace(&client, CF_NS).await?;
    let rss_empty = print_rss("sim started, empty");

    println!("\ncreate (POST, kube-rs Api::create)");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let api = cms.clone();
    let created = concurrently(s.n, s.concurrency, move |i| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &config_map(i)).await?;
            Ok(())
        }
    })
    .await?;
    created.report("ConfigMaps created");
    // Let the background controllers drain the burst before measuring memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_loaded = print_rss(&format!("after {} ConfigMaps", s.n));
    memory_report(&running, rss_empty, rss_loaded, s.n);

    if s.runs("list") {
        println!("\nlist ({} items; median of {LIST_RUNS} runs)", s.n);
        list_report(&running, &client, &cms, s.n).await?;
        let cache = &running.cluster.json_cache;
        println!(
            "  encoded-JSON cache                     {:>9.1} MiB    ({} versions)",
            mib(cache.bytes() as u64),
            cache.len()
        );
        print_rss("after the lists");
    }
    if s.runs("watch") {
        println!("\nwatch");
        initial_watch(&client, &cms, s.n).await?;
        live_watch(&cms, s.mods, s.concurrency).await?;
    }
    print_rss("after the watches");

    if s.runs("crd") {
        println!("\nCRD-backed custom resources (CFApp: structural schema, defaults, 3 CEL rules)");
        cf_apps(&running, &client, &s, &created).await?;
    }

    let rss_end = print_rss("at the end");
    if let (Some(a), Some(b)) = (rss_start, rss_end) {
        println!(
            "  RSS growth over the whole run          {:>9.1} MiB",
            mib(b.saturating_sub(a))
        );
    }
    println!("\ntotal {:.1} s", total.elapsed().as_secs_f64());
    Ok(())
}

fn memory_report(running: &Running, before: Option<u64>, after: Option<u64>, n: usize) {
    let store = &running.cluster.store;
    let sample = store.get(&kubefoundry_sim::store::Key::new(
        "/configmaps",
        NS,
        "bench-000000",
    ));
    let json_len = sample
        .and_then(|o| serde_json::to_vec(&*o).ok())
        .map_or(0, |b| b.len());
    if let (Some(before), Some(after)) = (before, after) {
        let grown = after.saturating_sub(before);
        println!(
            "  memory per ConfigMap                   {:>9.0} B    ({:.1} MiB for {n}; stored JSON of one is {json_len} B; \
             includes the watch history of the last writes and allocator slack)",
            grown as f64 / n as f64,
            mib(grown),
        );
    }
}

async fn list_report(running: &Running, client: &Client, cms: &Api<ConfigMap>, n: usize) -> Result<()> {
    // Typed: what an informer or controller pays, including kube-rs decoding every item. The
    // first list encodes every object; later ones reuse the encoded JSON (see the sim's
    // JsonCache), so the first is reported apart.
    let t = Instant::now();
    let mut count = cms.list(&ListParams::default()).await?.items.len();
    let first = t.elapsed();
    println!(
        "  full list, typed, first (encodes)      {:>9.0} items/s   {:>8.1} ms per list ({count} items)",
        rate(count, first),
        ms(first)
    );
    let mut runs = Vec::new();
    for _ in 0..LIST_RUNS {
        let t = Instant::now();
        cms.list(&ListParams::default()).await?;
        runs.push(t.elapsed());
    }
    let typed = median(runs);
    println!(
        "  full list, typed (Api::list)           {:>9.0} items/s   {:>8.1} ms per list",
        rate(count, typed),
        ms(typed)
    );

    // Raw: the server's share, with the client only reading the bytes.
    let mut runs = Vec::new();
    let mut bytes = 0;
    for _ in 0..LIST_RUNS {
        let t = Instant::now();
        let request = kube::core::Request::new(format!("/api/v1/namespaces/{NS}/configmaps"))
            .list(&ListParams::default())?;
        bytes = client.request_text(request).await?.len();
        runs.push(t.elapsed());
    }
    let raw = median(runs);
    println!(
        "  full list, raw JSON                    {:>9.0} items/s   {:>8.1} ms per list ({:.1} MiB)",
        rate(n, raw),
        ms(raw),
        mib(bytes as u64)
    );

    // The server's own work, in process and single-threaded: reading the items out of the
    // store and encoding the JSON body, with no HTTP and no client.
    let rt = running
        .cluster
        .registry
        .get("", "v1", "configmaps")
        .ok_or("ConfigMaps are not served")?;
    let server_side = |cache: Option<&JsonCache>| {
        let t = Instant::now();
        let page = running
            .cluster
            .store
            .list_page(&rt.key(), Some(NS), None, None, None, |_| true);
        let items = page.map(|p| p.items).unwrap_or_default();
        let fresh = JsonCache::default();
        let body = list_body(
            &rt,
            &json!({"resourceVersion": "1"}),
            &items,
            cache.unwrap_or(&fresh),
        );
        let elapsed = t.elapsed();
        drop(body);
        elapsed
    };
    let encoding = median((0..LIST_RUNS).map(|_| server_side(None)).collect());
    let cached = median(
        (0..LIST_RUNS)
            .map(|_| server_side(Some(&running.cluster.json_cache)))
            .collect(),
    );
    println!(
        "  full list, server side, encoding       {:>9.0} items/s   {:>8.1} ms per list (store read + JSON encode, in process)",
        rate(n, encoding),
        ms(encoding)
    );
    println!(
        "  full list, server side, cached JSON    {:>9.0} items/s   {:>8.1} ms per list (store read + copying encoded JSON)",
        rate(n, cached),
        ms(cached)
    );

    // Paginated: client-go's reflector pattern, each page a separate request with a continue token.
    let mut runs = Vec::new();
    let mut pages = 0;
    for _ in 0..LIST_RUNS {
        let t = Instant::now();
        let (mut token, mut seen) = (None::<String>, 0);
        pages = 0;
        loop {
            let mut lp = ListParams::default().limit(PAGE);
            if let Some(c) = token.take() {
                lp = lp.continue_token(&c);
            }
            let page = cms.list(&lp).await?;
            pages += 1;
            seen += page.items.len();
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => token = Some(c),
                None => break,
            }
        }
        count = seen;
        runs.push(t.elapsed());
    }
    let paged = median(runs);
    println!(
        "  paginated list, limit={PAGE}, typed       {:>9.0} items/s   {:>8.1} ms for all {pages} pages ({:.2} ms per page, {count} items)",
        rate(count, paged),
        ms(paged),
        ms(paged) / f64::from(pages.max(1)),
    );
    Ok(())
}

/// A watch from resourceVersion 0: the server sends every object as a synthetic ADDED, the
/// way an informer without a prior list starts.
async fn initial_watch(client: &Client, cms: &Api<ConfigMap>, n: usize) -> Result<()> {
    let t = Instant::now();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(290), "0")
        .await?
        .boxed();
    let (mut added, mut first) = (0, None);
    while let Some(event) = stream.try_next().await? {
        if let WatchEvent::Added(cm) = event {
            first.get_or_insert_with(|| t.elapsed());
            if cm
                .metadata
                .name
                .as_deref()
                .is_some_and(|name| name.starts_with("bench-"))
            {
                added += 1;
                if added == n {
                    break;
                }
            }
        }
    }
    let wall = t.elapsed();
    println!(
        "  watch from RV 0, ADDED events          {:>9.0} events/s  ({added} in {:.2} s; first event after {:.1} ms)",
        rate(added, wall),
        wall.as_secs_f64(),
        ms(first.unwrap_or_default()),
    );

    // Raw: the server's share, with the client only splitting lines.
    let t = Instant::now();
    let request = kube::core::Request::new(format!("/api/v1/namespaces/{NS}/configmaps"))
        .watch(&WatchParams::default().timeout(290), "0")?;
    let mut lines = std::pin::pin!(client.request_stream(request).await?.lines());
    let mut raw = 0;
    while let Some(line) = lines.as_mut().try_next().await? {
        if line.contains(r#""type":"ADDED""#) {
            raw += 1;
            if raw == n {
                break;
            }
        }
    }
    let wall = t.elapsed();
    println!(
        "  watch from RV 0, raw lines             {:>9.0} events/s  ({raw} in {:.2} s)",
        rate(raw, wall),
        wall.as_secs_f64(),
    );
    Ok(())
}

/// A live watch while `mods` merge patches land: how fast events reach a watcher under write
/// load, and how far the watcher trails the writers.
async fn live_watch(cms: &Api<ConfigMap>, mods: usize, concurrency: usize) -> Result<()> {
    let rv = cms
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let stream = cms
        .watch(&WatchParams::default().timeout(290), &rv)
        .await?
        .boxed();
    let watcher = tokio::spawn(async move {
        let mut stream = stream;
        let mut seen = 0usize;
        let mut last = Instant::now();
        // A stream that ends early (the server closes watchers that fall too far behind)
        // shows up as fewer events than modifications.
        while let Some(Ok(event)) = stream.next().await {
            if let WatchEvent::Modified(_) = event {
                seen += 1;
                last = Instant::now();
                if seen == mods {
                    break;
                }
            }
        }
        (seen, last)
    });
    let api = cms.clone();
    let started = Instant::now();
    let patched = concurrently(mods, concurrency, move |i| {
        let api = api.clone();
        async move {
            let patch = json!({"data": {"modified": i.to_string()}});
            api.patch(
                &format!("bench-{i:06}"),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
            Ok(())
        }
    })
    .await?;
    let writes_done = Instant::now();
    let (seen, last) = tokio::time::timeout(Duration::from_secs(120), watcher).await??;
    patched.report("merge patches (PATCH) under a watch");
    let span = last.saturating_duration_since(started);
    println!(
        "  live watch, MODIFIED events            {:>9.0} events/s  ({seen} of {mods} in {:.2} s; last event {:.1} ms after the last write)",
        rate(seen, span),
        span.as_secs_f64(),
        ms(last.saturating_duration_since(writes_done)),
    );
    Ok(())
}

async fn cf_apps(running: &Running, client: &Client, s: &Settings, configmaps: &Batch) -> Result<()> {
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/cfapp.yaml"))?;
    let crd: CustomResourceDefinition = serde_yaml::from_str(&yaml)?;
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await?;
    // The sim serves a CRD's kind as part of the write; wait anyway rather than depend on it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while running
        .cluster
        .registry
        .get("kubefoundry.dev", "v1alpha1", "cfapps")
        .is_none()
    {
        if Instant::now() > deadline {
            return Err("the CFApp CRD was not served within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubefoundry.dev", "v1alpha1", "CFApp"),
        "cfapps",
    );
    let apps: Api<DynamicObject> = Api::namespaced_with(client.clone(), CF_NS, &ar);

    let api = apps.clone();
    let ar2 = ar.clone();
    let created = concurrently(s.crd_n, s.concurrency, move |i| {
        let (api, ar) = (api.clone(), ar2.clone());
        async move {
            api.create(&PostParams::default(), &cf_app(&ar, i)).await?;
            Ok(())
        }
    })
    .await?;
    created.report("CFApps created");
    let per_cm = 1e6 / rate(configmaps.latencies.len(), configmaps.wall);
    let per_app = 1e6 / rate(created.latencies.len(), created.wall);
    println!(
        "  wall time per write                    {per_app:>9.1} µs per CFApp vs {per_cm:.1} µs per ConfigMap ({:+.1} µs)",
        per_app - per_cm
    );

    // The schema alone, in process and single-threaded: prune, default and validate (with the
    // CEL rules) the objects as a create does, without HTTP, JSON decoding or the store.
    let rt = running
        .cluster
        .registry
        .get("kubefoundry.dev", "v1alpha1", "cfapps")
        .ok_or("the CFApp type is not served")?;
    let schema = rt.schema.clone().ok_or("the CFApp type has no schema")?;
    let objects: Vec<Value> = (0..s.crd_n)
        .map(|i| serde_json::to_value(cf_app(&ar, i)))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    let mut causes = 0;
    for mut object in objects {
        schema.prune(&mut object);
        schema.default(&mut object);
        causes += schema.validate(&object, None).len();
    }
    let schema_wall = t.elapsed();
    println!(
        "  schema prune+default+validate (CEL)    {:>9.1} µs per object, in process, one thread ({causes} causes)",
        schema_wall.as_secs_f64() * 1e6 / s.crd_n as f64
    );

    let t = Instant::now();
    let listed = apps.list(&ListParams::default()).await?.items.len();
    let list_wall = t.elapsed();
    println!(
        "  full list of CFApps, typed             {:>9.0} items/s   {:>8.1} ms per list ({listed} items)",
        rate(listed, list_wall),
        ms(list_wall)
    );
    Ok(())
}
