//! kube-rs clients and kube-runtime controllers against the simulated cluster, unchanged: the
//! behaviours they depend on (quiet no-op writes, server-side apply ownership, 410 and dropped
//! watch recovery, optimistic concurrency, subresources, garbage collection, persistence) are
//! asserted the way kube-apiserver exhibits them, so a regression in the sim fails here.

// Test helpers fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeMap,
    fmt::Debug,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::SeqCst},
    },
    time::Duration,
};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    core::{Status, params::Preconditions},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        reflector::{self, Store},
        watcher,
    },
};
use kubefoundry::{crd::CFApp, crd::CFProcess, fixtures};
use kubefoundry_e2e::{TestCluster, eventually};
use kubefoundry_sim::{Fault, Options};
use serde_json::{Value, json};

const NS: &str = "t";
const WAIT: Duration = Duration::from_secs(10);

async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: meta(name),
        ..Namespace::default()
    };
    api.create(&PostParams::default(), &ns).await.unwrap();
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(name),
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

/// A started cluster with namespace [`NS`] and a ConfigMap API in it.
async fn cluster_with_ns() -> (TestCluster, Api<ConfigMap>) {
    let tc = TestCluster::start().await;
    namespace(&tc.client, NS).await;
    let api = Api::namespaced(tc.client.clone(), NS);
    (tc, api)
}

/// A started cluster with kubefoundry's CRDs and the fixture space namespace.
async fn cluster_with_crds() -> TestCluster {
    let tc = TestCluster::start().await;
    tc.install_crds().await;
    namespace(&tc.client, fixtures::SPACE).await;
    tc
}

/// The Status of a failed call; the test fails if the call succeeded or failed otherwise.
fn api_error<T: Debug>(result: Result<T, kube::Error>) -> Box<Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rv<K: kube::Resource>(object: &K) -> String {
    object.meta().resource_version.clone().unwrap()
}

fn data_of(object: &ConfigMap) -> BTreeMap<String, String> {
    object.data.clone().unwrap_or_default()
}

fn apply_cm(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

// --- 1. Controllers and watchers settle -------------------------------------------------------

const SETTLED: &str = "kubefoundry.dev/settled";

struct SettleCtx {
    api: Api<ConfigMap>,
    reconciles: AtomicUsize,
    errors: AtomicUsize,
}

/// What the controller writes: a digest of the data, so the annotation is a pure function of
/// the object and rewriting it is a no-op unless the data changed.
fn digest(data: &BTreeMap<String, String>) -> String {
    data.iter().map(|(k, v)| format!("{k}={v};")).collect()
}

/// Writes the annotation unconditionally, as many real controllers do: only the server's
/// no-op detection keeps this from re-triggering itself forever.
async fn settle_reconcile(object: Arc<ConfigMap>, ctx: Arc<SettleCtx>) -> Result<Action, kube::Error> {
    ctx.reconciles.fetch_add(1, SeqCst);
    let name = object.name_any();
    let patch = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "annotations": {SETTLED: digest(&data_of(&object))}},
    });
    ctx.api
        .patch(
            &name,
            &PatchParams::apply("settle-ctl").force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(Action::await_change())
}

fn settle_error(_: Arc<ConfigMap>, _: &kube::Error, ctx: Arc<SettleCtx>) -> Action {
    ctx.errors.fetch_add(1, SeqCst);
    Action::requeue(Duration::from_millis(100))
}

async fn all_settled(api: &Api<ConfigMap>, expected: usize) -> Option<()> {
    let list = api.list(&ListParams::default()).await.ok()?;
    let settled = list
        .items
        .iter()
        .filter(|c| c.annotations().get(SETTLED) == Some(&digest(&data_of(c))))
        .count();
    (list.items.len() == expected && settled == expected).then_some(())
}

/// Counts reconciles, store writes and watch events over a quiet period; all must stay put.
async fn assert_quiet(tc: &TestCluster, reconciles: &AtomicUsize, events: &AtomicUsize, what: &str) {
    // Let reconciles triggered by the controller's own last write finish first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (r0, rev0, e0) = (
        reconciles.load(SeqCst),
        tc.sim.cluster.store.revision(),
        events.load(SeqCst),
    );
    // Longer than the 1 s bookmark interval, so bookmarks flow through the watches meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        reconciles.load(SeqCst),
        r0,
        "{what}: a converged object was reconciled again"
    );
    assert_eq!(
        tc.sim.cluster.store.revision(),
        rev0,
        "{what}: the store was written while converged"
    );
    assert_eq!(
        events.load(SeqCst),
        e0,
        "{what}: a watcher saw events while converged"
    );
}

/// Spawns a plain `watcher` counting the Apply/Delete events it yields after its initial list.
fn count_watch_events<K>(api: Api<K>) -> Arc<AtomicUsize>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + Debug + Send + 'static,
{
    let events = Arc::new(AtomicUsize::new(0));
    let counter = events.clone();
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            if matches!(event, Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_))) {
                counter.fetch_add(1, SeqCst);
            }
        }
    });
    events
}

#[tokio::test]
async fn configmap_controller_converges_then_stays_quiet() {
    let (tc, api) = cluster_with_ns().await;
    for (name, v) in [("c1", "1"), ("c2", "2"), ("c3", "3")] {
        api.create(&PostParams::default(), &cm(name, &[("v", v)]))
            .await
            .unwrap();
    }
    let ctx = Arc::new(SettleCtx {
        api: api.clone(),
        reconciles: AtomicUsize::new(0),
        errors: AtomicUsize::new(0),
    });
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(settle_reconcile, settle_error, ctx.clone())
        .for_each(|_| async {});
    tokio::spawn(controller);
    let events = count_watch_events(api.clone());

    eventually("the controller annotates every ConfigMap", WAIT, || {
        all_settled(&api, 3)
    })
    .await;
    assert_quiet(&tc, &ctx.reconciles, &events, "after first convergence").await;

    // The controller is still live: a real change is reconciled, and then it is quiet again.
    let before = ctx.reconciles.load(SeqCst);
    let changed = json!({"data": {"v": "changed"}});
    api.patch("c2", &PatchParams::default(), &Patch::Merge(&changed))
        .await
        .unwrap();
    eventually("the changed ConfigMap is re-annotated", WAIT, || {
        all_settled(&api, 3)
    })
    .await;
    assert!(ctx.reconciles.load(SeqCst) > before, "the change was reconciled");
    assert_quiet(&tc, &ctx.reconciles, &events, "after the change").await;
    assert_eq!(ctx.errors.load(SeqCst), 0, "no reconcile failed");
}

struct AppCtx {
    api: Api<CFApp>,
    reconciles: AtomicUsize,
    errors: AtomicUsize,
}

/// Reports status through the status subresource with server-side apply, every time.
async fn app_reconcile(app: Arc<CFApp>, ctx: Arc<AppCtx>) -> Result<Action, kube::Error> {
    ctx.reconciles.fetch_add(1, SeqCst);
    let generation = app.metadata.generation.unwrap_or_default();
    let status = json!({
        "apiVersion": "kubefoundry.dev/v1alpha1",
        "kind": "CFApp",
        "status": {
            "observedGeneration": generation,
            "state": app.spec.desired_state,
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "Reconciled",
                "message": "",
                "observedGeneration": generation,
                // Fixed, so a repeat write is identical; real controllers keep the old time.
                "lastTransitionTime": "2024-01-01T00:00:00Z",
            }],
        },
    });
    let params = PatchParams::apply("app-ctl").force();
    ctx.api
        .patch_status(&app.name_any(), &params, &Patch::Apply(&status))
        .await?;
    Ok(Action::await_change())
}

fn app_error(_: Arc<CFApp>, err: &kube::Error, ctx: Arc<AppCtx>) -> Action {
    eprintln!("CFApp reconcile failed: {err}");
    ctx.errors.fetch_add(1, SeqCst);
    Action::requeue(Duration::from_millis(100))
}

async fn apps_observed(api: &Api<CFApp>) -> Option<()> {
    let list = api.list(&ListParams::default()).await.ok()?;
    list.items
        .iter()
        .all(|a| {
            let status = a.status.as_ref();
            status.and_then(|s| s.common.observed_generation) == a.metadata.generation
                && status.and_then(|s| s.state) == Some(a.spec.desired_state)
        })
        .then_some(())
}

#[tokio::test]
async fn cfapp_status_controller_converges_then_stays_quiet() {
    let tc = cluster_with_crds().await;
    let api: Api<CFApp> = Api::namespaced(tc.client.clone(), fixtures::SPACE);
    for (guid, name) in [("a1", "one"), ("a2", "two")] {
        api.create(&PostParams::default(), &fixtures::app(guid, name))
            .await
            .unwrap();
    }
    let ctx = Arc::new(AppCtx {
        api: api.clone(),
        reconciles: AtomicUsize::new(0),
        errors: AtomicUsize::new(0),
    });
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(app_reconcile, app_error, ctx.clone())
        .for_each(|_| async {});
    tokio::spawn(controller);
    let events = count_watch_events(api.clone());

    eventually("every CFApp reports its generation", WAIT, || apps_observed(&api)).await;
    assert_quiet(&tc, &ctx.reconciles, &events, "CFApps converged").await;
    // A status write never moves generation; otherwise the controller would chase itself.
    assert_eq!(api.get("a1").await.unwrap().metadata.generation, Some(1));

    let started = json!({"spec": {"desiredState": "STARTED"}});
    api.patch("a1", &PatchParams::default(), &Patch::Merge(&started))
        .await
        .unwrap();
    eventually("the spec change is observed", WAIT, || apps_observed(&api)).await;
    let a1 = api.get("a1").await.unwrap();
    assert_eq!(a1.metadata.generation, Some(2));
    assert_eq!(a1.status.unwrap().common.observed_generation, Some(2));
    assert_quiet(&tc, &ctx.reconciles, &events, "CFApps re-converged").await;
    assert_eq!(ctx.errors.load(SeqCst), 0, "no status write failed");
}

#[tokio::test]
async fn noop_writes_keep_resource_version_and_emit_no_event() {
    let (tc, api) = cluster_with_ns().await;
    let created = api
        .create(&PostParams::default(), &cm("c", &[("a", "1")]))
        .await
        .unwrap();
    let applied = api
        .patch(
            "c",
            &PatchParams::apply("m"),
            &Patch::Apply(apply_cm("c", json!({"a": "1"}))),
        )
        .await
        .unwrap();
    let start = rv(&applied);
    assert_ne!(
        start,
        rv(&created),
        "the first apply adds a managedFields entry, a real change"
    );
    let revision = tc.sim.cluster.store.revision();
    let mut watch = api
        .watch(&WatchParams::default().disable_bookmarks(), &start)
        .await
        .unwrap()
        .boxed();

    let same = api.get("c").await.unwrap();
    let replaced = api.replace("c", &PostParams::default(), &same).await.unwrap();
    assert_eq!(
        rv(&replaced),
        start,
        "an identical update keeps the resourceVersion"
    );
    let merged = api
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        rv(&merged),
        start,
        "a merge patch changing nothing keeps the resourceVersion"
    );
    let test_only = serde_json::from_value(json!([{"op": "test", "path": "/data/a", "value": "1"}])).unwrap();
    let tested = api
        .patch("c", &PatchParams::default(), &Patch::Json::<()>(test_only))
        .await
        .unwrap();
    assert_eq!(
        rv(&tested),
        start,
        "a JSON patch of only `test` keeps the resourceVersion"
    );
    let reapplied = api
        .patch(
            "c",
            &PatchParams::apply("m"),
            &Patch::Apply(apply_cm("c", json!({"a": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        rv(&reapplied),
        start,
        "re-applying the same configuration keeps the resourceVersion"
    );
    assert_eq!(
        tc.sim.cluster.store.revision(),
        revision,
        "no-op writes do not write the store"
    );

    // The first event the watch sees is the real change after all those no-ops.
    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .unwrap();
    let first = tokio::time::timeout(WAIT, watch.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        WatchEvent::Modified(c) => assert_eq!(data_of(&c)["a"], "2"),
        other => panic!("expected the MODIFIED of the real change, got {other:?}"),
    }
}

// --- 2. Server-side apply field ownership -----------------------------------------------------

fn fields_of(object: &ConfigMap, manager: &str) -> Option<(String, Value)> {
    let entry = object
        .metadata
        .managed_fields
        .as_ref()?
        .iter()
        .find(|e| e.manager.as_deref() == Some(manager))?;
    Some((entry.operation.clone()?, entry.fields_v1.as_ref()?.0.clone()))
}

#[tokio::test]
async fn server_side_apply_tracks_field_ownership() {
    let (_tc, api) = cluster_with_ns().await;
    let m1 = PatchParams::apply("m1");
    let m2 = PatchParams::apply("m2");

    let first = api
        .patch(
            "s",
            &m1,
            &Patch::Apply(apply_cm("s", json!({"a": "1", "b": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        fields_of(&first, "m1"),
        Some(("Apply".to_owned(), json!({"f:data": {"f:a": {}, "f:b": {}}})))
    );
    let entry = &first.metadata.managed_fields.as_ref().unwrap()[0];
    assert_eq!(entry.api_version.as_deref(), Some("v1"));
    assert_eq!(entry.fields_type.as_deref(), Some("FieldsV1"));
    assert!(entry.time.is_some());

    // A second manager setting a field m1 owns, to another value, conflicts.
    let err = api_error(
        api.patch("s", &m2, &Patch::Apply(apply_cm("s", json!({"a": "2"}))))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"m1\": .data.a"
    );
    let causes = err.details.unwrap().causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason, "FieldManagerConflict");
    assert_eq!(causes[0].field, ".data.a");
    assert_eq!(causes[0].message, "conflict with \"m1\"");
    assert_eq!(
        data_of(&api.get("s").await.unwrap())["a"],
        "1",
        "a conflicting apply changes nothing"
    );

    // Agreeing on a value is no conflict: both managers then share the field.
    let shared = api
        .patch(
            "s",
            &m2,
            &Patch::Apply(apply_cm("s", json!({"b": "1", "c": "x"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        fields_of(&shared, "m2").unwrap().1,
        json!({"f:data": {"f:b": {}, "f:c": {}}})
    );
    assert_eq!(
        fields_of(&shared, "m1").unwrap().1,
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );

    // Forcing takes the field over from m1.
    let forced = api
        .patch(
            "s",
            &m2.clone().force(),
            &Patch::Apply(apply_cm("s", json!({"a": "2", "b": "1", "c": "x"}))),
        )
        .await
        .unwrap();
    assert_eq!(data_of(&forced)["a"], "2");
    assert_eq!(
        fields_of(&forced, "m1").unwrap().1,
        json!({"f:data": {"f:b": {}}})
    );
    assert_eq!(
        fields_of(&forced, "m2").unwrap().1,
        json!({"f:data": {"f:a": {}, "f:b": {}, "f:c": {}}})
    );

    // A field m2 stops applying, and nobody else owns, is removed; a shared one stays.
    let dropped = api
        .patch("s", &m2, &Patch::Apply(apply_cm("s", json!({"a": "2"}))))
        .await
        .unwrap();
    assert_eq!(
        data_of(&dropped),
        BTreeMap::from([("a".into(), "2".into()), ("b".into(), "1".into())])
    );
    assert_eq!(
        fields_of(&dropped, "m2").unwrap().1,
        json!({"f:data": {"f:a": {}}})
    );

    // An Update manager's fields conflict too, named with the API version it wrote.
    let update = PatchParams {
        field_manager: Some("m3".into()),
        ..PatchParams::default()
    };
    let updated = api
        .patch("s", &update, &Patch::Merge(json!({"data": {"d": "y"}})))
        .await
        .unwrap();
    assert_eq!(
        fields_of(&updated, "m3"),
        Some(("Update".to_owned(), json!({"f:data": {"f:d": {}}})))
    );
    let err = api_error(
        api.patch(
            "s",
            &m1,
            &Patch::Apply(apply_cm("s", json!({"b": "1", "d": "z"}))),
        )
        .await,
    );
    assert_eq!(err.code, 409);
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"m3\" using v1: .data.d"
    );

    // m1 applying nothing but b gives up a (already m2's) and keeps b.
    let last = api
        .patch("s", &m1, &Patch::Apply(apply_cm("s", json!({"b": "1"}))))
        .await
        .unwrap();
    let managers: Vec<_> = last
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .map(|e| e.manager.clone().unwrap())
        .collect();
    assert_eq!(managers.len(), 3, "one entry per manager: {managers:?}");
}

// --- 3. Recovery from 410 and dropped watches -------------------------------------------------

/// A reflector over ConfigMaps in [`NS`], counting relists (Init events), the 410s the
/// watcher surfaces before relisting, and any other error.
struct Reflected {
    store: Store<ConfigMap>,
    inits: Arc<AtomicUsize>,
    gone: Arc<AtomicUsize>,
    errors: Arc<AtomicUsize>,
}

fn reflect(api: Api<ConfigMap>, config: watcher::Config) -> Reflected {
    let (store, writer) = reflector::store::<ConfigMap>();
    let counter = || Arc::new(AtomicUsize::new(0));
    let r = Reflected {
        store,
        inits: counter(),
        gone: counter(),
        errors: counter(),
    };
    let (inits, gone, errors) = (r.inits.clone(), r.gone.clone(), r.errors.clone());
    let stream = watcher(api, config).default_backoff().reflect(writer);
    tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(event) = stream.next().await {
            let counter = match event {
                Ok(watcher::Event::Init) => &inits,
                Ok(_) => continue,
                Err(watcher::Error::WatchError(status)) if status.code == 410 => &gone,
                Err(_) => &errors,
            };
            counter.fetch_add(1, SeqCst);
        }
    });
    r
}

fn cached(store: &Store<ConfigMap>) -> BTreeMap<String, BTreeMap<String, String>> {
    store.state().iter().map(|c| (c.name_any(), data_of(c))).collect()
}

async fn converges(store: &Store<ConfigMap>, expected: &[(&str, &str)], what: &str, timeout: Duration) {
    let expected: BTreeMap<String, BTreeMap<String, String>> = expected
        .iter()
        .map(|(n, v)| {
            (
                (*n).to_owned(),
                BTreeMap::from([("v".to_owned(), (*v).to_owned())]),
            )
        })
        .collect();
    eventually(what, timeout, || {
        let ok = cached(store) == expected;
        async move { ok.then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn watcher_recovers_from_compaction_and_dropped_watches() {
    let (tc, api) = cluster_with_ns().await;
    for name in ["a", "b", "c"] {
        api.create(&PostParams::default(), &cm(name, &[("v", "1")]))
            .await
            .unwrap();
    }
    let r = reflect(api.clone(), watcher::Config::default());
    converges(
        &r.store,
        &[("a", "1"), ("b", "1"), ("c", "1")],
        "the initial list",
        WAIT,
    )
    .await;
    assert_eq!(r.inits.load(SeqCst), 1);

    // Dropped watches alone: the watcher resumes from its resourceVersion, without relisting.
    tc.sim.cluster.drop_watches();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &cm("d", &[("v", "1")]))
        .await
        .unwrap();
    converges(
        &r.store,
        &[("a", "2"), ("b", "1"), ("c", "1"), ("d", "1")],
        "resume after a drop",
        WAIT,
    )
    .await;
    assert_eq!(
        r.inits.load(SeqCst),
        1,
        "history was intact, so no relist was needed"
    );
    assert_eq!(
        r.gone.load(SeqCst) + r.errors.load(SeqCst),
        0,
        "resuming raised no error"
    );

    // A write elsewhere moves the store past the watcher's last event; compaction then puts
    // that resourceVersion out of reach, so re-watching gets 410 and the watcher relists.
    let secrets: Api<Secret> = Api::namespaced(tc.client.clone(), NS);
    let secret = Secret {
        metadata: meta("elsewhere"),
        ..Secret::default()
    };
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    tc.sim.cluster.store.compact();
    tc.sim.cluster.drop_watches();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "3"}})),
    )
    .await
    .unwrap();
    api.delete("b", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &cm("e", &[("v", "1")]))
        .await
        .unwrap();
    converges(
        &r.store,
        &[("a", "3"), ("c", "1"), ("d", "1"), ("e", "1")],
        "recovery after 410",
        WAIT,
    )
    .await;
    assert_eq!(
        r.gone.load(SeqCst),
        1,
        "re-watching from a compacted resourceVersion got 410"
    );
    assert_eq!(
        r.inits.load(SeqCst),
        2,
        "the 410 made the watcher relist exactly once"
    );
    assert_eq!(r.errors.load(SeqCst), 0);

    // And it keeps following live changes afterwards.
    api.delete("c", &DeleteParams::default()).await.unwrap();
    converges(
        &r.store,
        &[("a", "3"), ("d", "1"), ("e", "1")],
        "live after recovery",
        WAIT,
    )
    .await;
}

#[tokio::test]
async fn streaming_list_watcher_converges_and_recovers_from_410() {
    let (tc, api) = cluster_with_ns().await;
    for name in ["a", "b"] {
        api.create(&PostParams::default(), &cm(name, &[("v", "1")]))
            .await
            .unwrap();
    }
    // sendInitialEvents: the initial state arrives as watch events ended by a bookmark.
    let r = reflect(api.clone(), watcher::Config::default().streaming_lists());
    converges(
        &r.store,
        &[("a", "1"), ("b", "1")],
        "the streamed initial state",
        WAIT,
    )
    .await;
    assert_eq!(r.inits.load(SeqCst), 1);

    let secrets: Api<Secret> = Api::namespaced(tc.client.clone(), NS);
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: meta("elsewhere"),
                ..Secret::default()
            },
        )
        .await
        .unwrap();
    tc.sim.cluster.store.compact();
    tc.sim.cluster.drop_watches();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &cm("c", &[("v", "1")]))
        .await
        .unwrap();
    converges(
        &r.store,
        &[("b", "1"), ("c", "1")],
        "the re-streamed state after 410",
        WAIT,
    )
    .await;
    assert_eq!(
        r.gone.load(SeqCst),
        1,
        "re-watching from a compacted resourceVersion got 410"
    );
    assert_eq!(
        r.inits.load(SeqCst),
        2,
        "the 410 made the watcher stream the state again"
    );
    assert_eq!(r.errors.load(SeqCst), 0);
}

#[tokio::test]
async fn watcher_recovers_from_list_and_watch_500s() {
    let (tc, api) = cluster_with_ns().await;
    api.create(&PostParams::default(), &cm("a", &[("v", "1")]))
        .await
        .unwrap();
    let fault = |verb: &str| Fault {
        verb: verb.into(),
        resource: "configmaps".into(),
        remaining: 2,
        code: 500,
    };
    tc.sim.cluster.faults.inject(fault("list"));
    let r = reflect(api.clone(), watcher::Config::default());
    converges(
        &r.store,
        &[("a", "1")],
        "the list after two failures",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        r.errors.load(SeqCst),
        2,
        "both injected list failures reached the watcher"
    );

    tc.sim.cluster.faults.inject(fault("watch"));
    tc.sim.cluster.drop_watches();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &cm("b", &[("v", "1")]))
        .await
        .unwrap();
    converges(
        &r.store,
        &[("a", "2"), ("b", "1")],
        "the watch after two failures",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        r.errors.load(SeqCst),
        4,
        "both injected watch failures reached the watcher"
    );
}

#[tokio::test]
async fn watch_from_compacted_resource_version_is_410_expired() {
    let (tc, api) = cluster_with_ns().await;
    let old = rv(&api
        .create(&PostParams::default(), &cm("c", &[("v", "1")]))
        .await
        .unwrap());
    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    // Before compaction the same resourceVersion replays the change.
    let mut replay = api.watch(&WatchParams::default(), &old).await.unwrap().boxed();
    match tokio::time::timeout(WAIT, replay.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Modified(c)) => assert_eq!(data_of(&c)["v"], "2"),
        other => panic!("expected the replayed MODIFIED, got {other:?}"),
    }

    tc.sim.cluster.store.compact();
    let oldest = tc.sim.cluster.store.compacted_revision();
    let mut stream = api.watch(&WatchParams::default(), &old).await.unwrap().boxed();
    match tokio::time::timeout(WAIT, stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert_eq!(
                status.message,
                format!("too old resource version: {old} ({oldest})")
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // A list continue token from before the compaction has expired too.
    api.create(&PostParams::default(), &cm("d", &[("v", "1")]))
        .await
        .unwrap();
    let page = api.list(&ListParams::default().limit(1)).await.unwrap();
    let token = page.metadata.continue_.clone().unwrap();
    api.create(&PostParams::default(), &cm("e", &[("v", "1")]))
        .await
        .unwrap();
    tc.sim.cluster.store.compact();
    let err = api_error(
        api.list(&ListParams::default().limit(1).continue_token(&token))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));
}

// --- 4. Basic semantics -----------------------------------------------------------------------

#[tokio::test]
async fn create_get_list_update_delete() {
    let (tc, api) = cluster_with_ns().await;
    let created = api
        .create(&PostParams::default(), &cm("c", &[("a", "1")]))
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some(NS));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    assert_eq!(rv(&created), tc.sim.cluster.store.revision().to_string());

    let dup = api_error(api.create(&PostParams::default(), &cm("c", &[])).await);
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(dup.message, "configmaps \"c\" already exists");

    let got = api.get("c").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(data_of(&got)["a"], "1");
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.items.iter().map(ResourceExt::name_any).collect::<Vec<_>>(),
        ["c"]
    );
    assert!(list.metadata.resource_version.is_some());

    let mut fresh = got.clone();
    fresh.data = Some(BTreeMap::from([("a".into(), "2".into())]));
    let updated = api.replace("c", &PostParams::default(), &fresh).await.unwrap();
    assert!(rv(&updated).parse::<u64>().unwrap() > rv(&got).parse::<u64>().unwrap());
    assert_eq!(data_of(&updated)["a"], "2");

    // Writing from the old copy again is a stale write.
    let mut stale = got.clone();
    stale.data = Some(BTreeMap::from([("a".into(), "3".into())]));
    let err = api_error(api.replace("c", &PostParams::default(), &stale).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(data_of(&api.get("c").await.unwrap())["a"], "2");

    // A delete precondition on a stale resourceVersion fails the same way.
    let pre = DeleteParams::default().preconditions(Preconditions {
        resource_version: Some(rv(&got)),
        uid: None,
    });
    let err = api_error(api.delete("c", &pre).await);
    assert_eq!(err.code, 409);

    let deleted = api.delete("c", &DeleteParams::default()).await.unwrap();
    assert!(
        deleted.is_right(),
        "a ConfigMap delete answers with a Success Status"
    );
    let err = api_error(api.get("c").await);
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "configmaps \"c\" not found");
    let err = api_error(api.replace("c", &PostParams::default(), &updated).await);
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn merge_and_json_patches() {
    let (_tc, api) = cluster_with_ns().await;
    api.create(&PostParams::default(), &cm("p", &[("a", "1"), ("b", "1")]))
        .await
        .unwrap();
    let pp = PatchParams::default();

    // Merge patch: null removes, a value sets.
    let merged = api
        .patch("p", &pp, &Patch::Merge(json!({"data": {"a": null, "c": "3"}})))
        .await
        .unwrap();
    assert_eq!(
        data_of(&merged),
        BTreeMap::from([("b".into(), "1".into()), ("c".into(), "3".into())])
    );

    // JSON patch guarded by `test`: applied when the test holds.
    let guarded = |expect: &str, value: &str| -> Patch<()> {
        Patch::Json(
            serde_json::from_value(json!([
                {"op": "test", "path": "/data/b", "value": expect},
                {"op": "replace", "path": "/data/b", "value": value},
                {"op": "add", "path": "/metadata/labels", "value": {"patched": "yes"}},
            ]))
            .unwrap(),
        )
    };
    let patched = api.patch("p", &pp, &guarded("1", "2")).await.unwrap();
    assert_eq!(data_of(&patched)["b"], "2");
    assert_eq!(patched.labels()["patched"], "yes");

    // A failed `test` rejects the whole patch.
    let err = api_error(api.patch("p", &pp, &guarded("1", "9")).await);
    assert_eq!(err.code, 422);
    let now = api.get("p").await.unwrap();
    assert_eq!(data_of(&now)["b"], "2");
    assert_eq!(rv(&now), rv(&patched));

    // Patching what does not exist is 404, not a create.
    let err = api_error(
        api.patch("missing", &pp, &Patch::Merge(json!({"data": {"a": "1"}})))
            .await,
    );
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn list_pagination_with_limit_and_continue() {
    let (tc, api) = cluster_with_ns().await;
    for i in 0..7 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), &[]))
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut pages = Vec::new();
    let mut params = ListParams::default().limit(3);
    loop {
        let page = api.list(&params).await.unwrap();
        names.extend(page.items.iter().map(ResourceExt::name_any));
        pages.push((
            page.items.len(),
            page.metadata.remaining_item_count,
            page.metadata.resource_version.clone(),
        ));
        // A write between pages does not leak into a consistent paginated list.
        api.create(&PostParams::default(), &cm(&format!("late{}", pages.len()), &[]))
            .await
            .unwrap();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = ListParams::default().limit(3).continue_token(&token),
            None => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>());
    assert_eq!(
        pages.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(),
        [(3, Some(4)), (3, Some(1)), (1, None)]
    );
    assert!(
        pages.iter().all(|p| p.2 == pages[0].2),
        "every page is served at the first page's resourceVersion"
    );
    assert!(tc.sim.cluster.store.revision() > pages[0].2.as_deref().unwrap().parse().unwrap());
}

#[tokio::test]
async fn label_and_field_selectors() {
    let tc = cluster_with_crds().await;
    namespace(&tc.client, NS).await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), NS);
    for (name, tier) in [
        ("web-1", Some("web")),
        ("web-2", Some("web")),
        ("db-1", Some("db")),
        ("plain", None),
    ] {
        let mut c = cm(name, &[]);
        if let Some(tier) = tier {
            c.metadata.labels = Some(BTreeMap::from([("tier".into(), tier.into())]));
        }
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    let names = |lp: ListParams| {
        let api = api.clone();
        async move {
            api.list(&lp)
                .await
                .unwrap()
                .items
                .iter()
                .map(ResourceExt::name_any)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        names(ListParams::default().labels("tier=web")).await,
        ["web-1", "web-2"]
    );
    assert_eq!(
        names(ListParams::default().labels("tier in (db,web),tier!=web")).await,
        ["db-1"]
    );
    assert_eq!(names(ListParams::default().labels("!tier")).await, ["plain"]);
    assert_eq!(
        names(ListParams::default().labels("tier")).await,
        ["db-1", "web-1", "web-2"]
    );
    assert_eq!(
        names(ListParams::default().fields("metadata.name=web-2")).await,
        ["web-2"]
    );
    assert_eq!(
        names(
            ListParams::default()
                .fields("metadata.name!=web-2")
                .labels("tier=web")
        )
        .await,
        ["web-1"]
    );
    assert_eq!(
        names(ListParams::default().fields(&format!("metadata.namespace={NS}")))
            .await
            .len(),
        4
    );
    let err = api_error(api.list(&ListParams::default().fields("data.x=1")).await);
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
    assert_eq!(err.message, "field label not supported: data.x");

    // A CRD's selectableFields select on spec.
    let procs: Api<CFProcess> = Api::namespaced(tc.client.clone(), fixtures::SPACE);
    for (guid, app, kind) in [
        ("p1", "app-1", "web"),
        ("p2", "app-1", "worker"),
        ("p3", "app-2", "web"),
    ] {
        procs
            .create(&PostParams::default(), &fixtures::process(guid, app, kind))
            .await
            .unwrap();
    }
    let proc_names = |lp: ListParams| {
        let procs = procs.clone();
        async move {
            procs
                .list(&lp)
                .await
                .unwrap()
                .items
                .iter()
                .map(ResourceExt::name_any)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        proc_names(ListParams::default().fields("spec.appGuid=app-1")).await,
        ["p1", "p2"]
    );
    assert_eq!(
        proc_names(ListParams::default().fields("spec.appGuid!=app-1")).await,
        ["p3"]
    );
    assert_eq!(
        proc_names(ListParams::default().fields("spec.appGuid=app-1,spec.processType=web")).await,
        ["p1"]
    );
    let err = api_error(procs.list(&ListParams::default().fields("spec.command=x")).await);
    assert_eq!(err.code, 400);

    // A filtered watch sees only matching objects.
    let wp = WatchParams::default()
        .fields("spec.appGuid=app-2")
        .disable_bookmarks();
    let mut watch = procs.watch(&wp, "0").await.unwrap().boxed();
    match tokio::time::timeout(WAIT, watch.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Added(p)) => assert_eq!(p.name_any(), "p3"),
        other => panic!("expected p3 only, got {other:?}"),
    }
    procs
        .create(&PostParams::default(), &fixtures::process("p4", "app-1", "web"))
        .await
        .unwrap();
    procs
        .create(
            &PostParams::default(),
            &fixtures::process("p5", "app-2", "worker"),
        )
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, watch.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Added(p)) => assert_eq!(p.name_any(), "p5", "p4 does not match the selector"),
        other => panic!("expected p5, got {other:?}"),
    }
}

#[tokio::test]
async fn dry_run_all_persists_nothing() {
    let (tc, api) = cluster_with_ns().await;
    let real = api
        .create(&PostParams::default(), &cm("real", &[("a", "1")]))
        .await
        .unwrap();
    let revision = tc.sim.cluster.store.revision();

    let dry_post = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let dry = api.create(&dry_post, &cm("ghost", &[("a", "1")])).await.unwrap();
    assert_eq!(dry.name_any(), "ghost");
    assert_eq!(api_error(api.get("ghost").await).code, 404);

    let mut changed = real.clone();
    changed.data = Some(BTreeMap::from([("a".into(), "2".into())]));
    let dry_update = api.replace("real", &dry_post, &changed).await.unwrap();
    assert_eq!(
        data_of(&dry_update)["a"],
        "2",
        "a dry run answers with the would-be object"
    );
    let dry_patch = PatchParams::default().dry_run();
    api.patch("real", &dry_patch, &Patch::Merge(json!({"data": {"a": "3"}})))
        .await
        .unwrap();
    let dry_apply = PatchParams::apply("m").force().dry_run();
    api.patch(
        "real",
        &dry_apply,
        &Patch::Apply(apply_cm("real", json!({"a": "4"}))),
    )
    .await
    .unwrap();
    api.delete("real", &DeleteParams::default().dry_run())
        .await
        .unwrap();

    let now = api.get("real").await.unwrap();
    assert_eq!(data_of(&now)["a"], "1");
    assert_eq!(rv(&now), rv(&real));
    assert_eq!(
        tc.sim.cluster.store.revision(),
        revision,
        "dry runs never write the store"
    );
}

#[tokio::test]
async fn generation_and_status_subresource() {
    let tc = cluster_with_crds().await;
    let api: Api<CFApp> = Api::namespaced(tc.client.clone(), fixtures::SPACE);
    let mut app = fixtures::app("g1", "gen");
    app.status = Some(kubefoundry::crd::CFAppStatus {
        ready_instances: Some(5),
        ..Default::default()
    });
    let created = api.create(&PostParams::default(), &app).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        created.status, None,
        "status is not settable on create with a status subresource"
    );

    // The status subresource ignores spec changes.
    let status_patch = json!({"spec": {"displayName": "ignored"}, "status": {"readyInstances": 2}});
    let after_status = api
        .patch_status("g1", &PatchParams::default(), &Patch::Merge(&status_patch))
        .await
        .unwrap();
    assert_eq!(after_status.spec.display_name, "gen");
    assert_eq!(after_status.status.as_ref().unwrap().ready_instances, Some(2));
    assert_eq!(
        after_status.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    // The main resource ignores status changes: nothing changes at all.
    let main_patch = json!({"status": {"readyInstances": 9}});
    let ignored = api
        .patch("g1", &PatchParams::default(), &Patch::Merge(&main_patch))
        .await
        .unwrap();
    assert_eq!(ignored.status.as_ref().unwrap().ready_instances, Some(2));
    assert_eq!(
        rv(&ignored),
        rv(&after_status),
        "a status change through the main resource is a no-op"
    );

    // Metadata changes do not bump generation; spec changes do.
    let labelled = api
        .patch(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await;
    assert_eq!(labelled.unwrap().metadata.generation, Some(1));
    let spec = json!({"spec": {"displayName": "renamed"}});
    let renamed = api
        .patch("g1", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(renamed.metadata.generation, Some(2));
    assert_eq!(
        renamed.status.as_ref().unwrap().ready_instances,
        Some(2),
        "spec writes keep status"
    );

    // A full replace through /status, with a stale resourceVersion, conflicts like the main one.
    let err = api_error(api.replace_status("g1", &PostParams::default(), &created).await);
    assert_eq!(err.code, 409);
}

#[tokio::test]
async fn finalizers_hold_deletion() {
    let (_tc, api) = cluster_with_ns().await;
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();

    let answer = api.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = answer
        .left()
        .expect("a delete held by finalizers answers with the object");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let got = api.get("held").await.unwrap();
    assert!(got.metadata.deletion_timestamp.is_some());
    assert_eq!(got.finalizers(), ["example.com/hold"]);

    // No new finalizers once deletion has started.
    let add = json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}});
    let err = api_error(
        api.patch("held", &PatchParams::default(), &Patch::Merge(&add))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "ConfigMap \"held\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/more\"}"
    );

    // Other edits still work while terminating; removing the last finalizer deletes.
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"still": "writable"}})),
    )
    .await
    .unwrap();
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(api.get("held").await).code, 404);
}

fn owned_by(name: &str, owner: &ConfigMap, finalizers: &[&str]) -> ConfigMap {
    let mut c = cm(name, &[]);
    c.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: owner.name_any(),
            uid: owner.uid().unwrap(),
            block_owner_deletion: Some(true),
            controller: Some(true),
        },
    ]);
    if !finalizers.is_empty() {
        c.metadata.finalizers = Some(finalizers.iter().map(|f| (*f).to_owned()).collect());
    }
    c
}

async fn gone(api: &Api<ConfigMap>, name: &str) -> Option<()> {
    matches!(api.get(name).await, Err(kube::Error::Api(s)) if s.code == 404).then_some(())
}

#[tokio::test]
async fn owner_reference_garbage_collection() {
    let (_tc, api) = cluster_with_ns().await;
    let pp = PostParams::default();

    // Background: the owner goes at once, the dependent after it.
    let owner = api.create(&pp, &cm("bg-owner", &[])).await.unwrap();
    api.create(&pp, &owned_by("bg-dep", &owner, &[])).await.unwrap();
    assert!(
        api.delete("bg-owner", &DeleteParams::background())
            .await
            .unwrap()
            .is_right()
    );
    assert_eq!(api_error(api.get("bg-owner").await).code, 404);
    eventually("the background dependent is collected", WAIT, || {
        gone(&api, "bg-dep")
    })
    .await;

    // Foreground: the owner waits, marked, until its blocking dependent is gone.
    let owner = api.create(&pp, &cm("fg-owner", &[])).await.unwrap();
    api.create(&pp, &owned_by("fg-dep", &owner, &["example.com/hold"]))
        .await
        .unwrap();
    let marked = api
        .delete("fg-owner", &DeleteParams::foreground())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(marked.finalizers().iter().any(|f| f == "foregroundDeletion"));
    eventually("the foreground dependent is being deleted", WAIT, || {
        let api = api.clone();
        async move {
            api.get("fg-dep")
                .await
                .ok()?
                .metadata
                .deletion_timestamp
                .map(|_| ())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let owner_now = api.get("fg-owner").await.unwrap();
    assert!(
        owner_now.finalizers().iter().any(|f| f == "foregroundDeletion"),
        "the owner waits"
    );
    api.patch(
        "fg-dep",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("the foreground owner goes after its dependent", WAIT, || {
        gone(&api, "fg-owner")
    })
    .await;
    assert_eq!(api_error(api.get("fg-dep").await).code, 404);

    // Orphan: the owner goes, the dependent stays and loses its ownerReference.
    let owner = api.create(&pp, &cm("or-owner", &[])).await.unwrap();
    api.create(&pp, &owned_by("or-dep", &owner, &[])).await.unwrap();
    api.delete("or-owner", &DeleteParams::orphan()).await.unwrap();
    eventually("the orphaning owner goes", WAIT, || gone(&api, "or-owner")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let orphan = api.get("or-dep").await.unwrap();
    assert_eq!(
        orphan.metadata.owner_references.unwrap_or_default(),
        [],
        "the orphan is released"
    );
    assert!(orphan.metadata.deletion_timestamp.is_none());
}

#[tokio::test]
async fn custom_resources_failing_validation_get_422_with_causes() {
    let tc = cluster_with_crds().await;
    let apps: Api<CFApp> = Api::namespaced(tc.client.clone(), fixtures::SPACE);
    let pp = PostParams::default();

    // OpenAPI schema: minLength.
    let err = api_error(apps.create(&pp, &fixtures::app("v1", "")).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "CFApp.kubefoundry.dev \"v1\" is invalid: spec.displayName: Invalid value: \"\": spec.displayName in body should be at least 1 chars long"
    );
    let details = err.details.unwrap();
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("v1", "kubefoundry.dev", "CFApp")
    );
    assert_eq!(details.causes.len(), 1);
    assert_eq!(details.causes[0].field, "spec.displayName");
    assert_eq!(details.causes[0].reason, "FieldValueInvalid");

    // CEL rule on the env map; an object's value is left out of the message, as kube-apiserver
    // (field.OmitValueType) does for object and array nodes.
    let err = api_error(
        apps.create(&pp, &fixtures::app("v2", "ok").env("VCAP_SERVICES", "{}"))
            .await,
    );
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "CFApp.kubefoundry.dev \"v2\" is invalid: spec.env: Invalid value: environment variable names may not start with VCAP_ or VMC_, or be PORT"
    );
    let causes = err.details.unwrap().causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(
        (causes[0].field.as_str(), causes[0].reason.as_str()),
        ("spec.env", "FieldValueInvalid")
    );
    assert_eq!(
        apps.list(&ListParams::default()).await.unwrap().items.len(),
        0,
        "nothing was stored"
    );

    // A CEL transition rule (`self == oldSelf`) on update; a scalar's value is shown.
    let procs: Api<CFProcess> = Api::namespaced(tc.client.clone(), fixtures::SPACE);
    procs
        .create(&pp, &fixtures::process("p1", "app-1", "web"))
        .await
        .unwrap();
    let moved = json!({"spec": {"appGuid": "app-2"}});
    let err = api_error(
        procs
            .patch("p1", &PatchParams::default(), &Patch::Merge(&moved))
            .await,
    );
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "CFProcess.kubefoundry.dev \"p1\" is invalid: spec.appGuid: Invalid value: \"app-2\": is immutable"
    );
    assert_eq!(procs.get("p1").await.unwrap().spec.app_guid, "app-1");
}

// --- 5. Persistence ---------------------------------------------------------------------------

#[tokio::test]
async fn data_dir_survives_restart_with_resource_version_continuity() {
    let dir = std::env::temp_dir().join(format!("kf-kube-rs-{}", uuid::Uuid::new_v4().simple()));
    let options = || Options {
        data_dir: Some(dir.clone()),
        config: kubefoundry_e2e::fast_config(),
        ..Options::default()
    };
    let (uid, last) = {
        let tc = TestCluster::start_with(options()).await;
        namespace(&tc.client, NS).await;
        let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), NS);
        let kept = api
            .create(&PostParams::default(), &cm("kept", &[("a", "1")]))
            .await
            .unwrap();
        api.create(&PostParams::default(), &cm("removed", &[]))
            .await
            .unwrap();
        api.delete("removed", &DeleteParams::default()).await.unwrap();
        (kept.uid().unwrap(), tc.sim.cluster.store.revision())
    };

    let tc = TestCluster::start_with(options()).await;
    assert_eq!(
        tc.sim.cluster.store.revision(),
        last,
        "the resourceVersion counter survives"
    );
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), NS);
    let kept = api.get("kept").await.unwrap();
    assert_eq!(kept.uid().unwrap(), uid);
    assert_eq!(data_of(&kept)["a"], "1");
    assert_eq!(
        api_error(api.get("removed").await).code,
        404,
        "deletes survive too"
    );
    let default_ns: Api<Namespace> = Api::all(tc.client.clone());
    assert!(
        default_ns.get("default").await.is_ok(),
        "the seeded namespaces survive"
    );

    let next = api
        .create(&PostParams::default(), &cm("after", &[]))
        .await
        .unwrap();
    assert!(
        rv(&next).parse::<u64>().unwrap() > last,
        "new writes continue past the old resourceVersions"
    );
    let updated = api
        .patch(
            "kept",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "2"}})),
        )
        .await;
    assert!(rv(&updated.unwrap()).parse::<u64>().unwrap() > rv(&next).parse::<u64>().unwrap());
    drop(tc);
    let _ = std::fs::remove_dir_all(&dir);
}

// --- 6. In-process client ---------------------------------------------------------------------

#[tokio::test]
async fn in_process_client_lists_and_writes() {
    let (tc, api) = cluster_with_ns().await;
    api.create(&PostParams::default(), &cm("over-http", &[]))
        .await
        .unwrap();
    let client = kubefoundry_sim::server::in_process_client(tc.sim.cluster.clone(), &tc.sim.admin_token);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert!(
        names.contains(&"default".to_owned()) && names.contains(&NS.to_owned()),
        "{names:?}"
    );
    let local: Api<ConfigMap> = Api::namespaced(client, NS);
    assert_eq!(local.get("over-http").await.unwrap().name_any(), "over-http");
    local
        .create(&PostParams::default(), &cm("in-process", &[]))
        .await
        .unwrap();
    assert!(
        api.get("in-process").await.is_ok(),
        "a write in process is visible over HTTP"
    );
}
