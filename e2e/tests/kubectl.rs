//! kubectl against the simulated cluster: apply (client- and server-side), get, watch, the three
//! patch types, finalizers, selectors, CRDs with their schemas and CEL rules, RBAC with
//! impersonation, namespace teardown, ServiceAccount tokens over TLS, and workloads. Each
//! assertion is what kubectl prints against a real kube-apiserver.

// A test fails loudly: a broken precondition must stop it, not be handled.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use kubefoundry_e2e::{TestCluster, eventually, fast_config};
use kubefoundry_sim::Options;
use serde_json::Value;

/// The CA bundle ConfigMap kube-controller-manager publishes into every namespace of a real
/// cluster; tests that list everything in a namespace look past it.
const ROOT_CA: &str = "kube-root-ca.crt";

/// Generous bound for anything that settles asynchronously; the sim settles in well under it.
const SETTLE: Duration = Duration::from_secs(15);

fn parse(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("kubectl printed invalid JSON ({e}): {out}"))
}

/// `kubectl get ARGS -o json`, parsed.
fn get_json(tc: &TestCluster, args: &[&str]) -> Value {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    parse(&tc.kubectl_ok(&full))
}

/// Applies `yaml`, asserting success, and returns what kubectl printed.
fn apply_ok(tc: &TestCluster, yaml: &str, extra: &[&str]) -> String {
    let out = tc.apply(yaml, extra);
    assert!(
        out.status.success(),
        "apply {extra:?} failed: {}\n{yaml}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Applies `yaml` expecting a rejection, and returns kubectl's stderr, trimmed.
fn apply_err(tc: &TestCluster, yaml: &str, extra: &[&str]) -> String {
    let out = tc.apply(yaml, extra);
    assert!(
        !out.status.success(),
        "apply {extra:?} should fail, printed {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

fn rv(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion is a string")
        .to_owned()
}

fn crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds")
}

/// Registers kubefoundry's CRDs the way an operator would: `kubectl apply -f crds/`, then
/// waits until every one is Established.
fn apply_crds(tc: &TestCluster) {
    let dir = crds_dir();
    let out = tc.kubectl_ok(&["apply", "-f", dir.to_str().unwrap()]);
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" created")).count(),
        files,
        "every CRD created: {out}"
    );
    tc.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=10s",
    ]);
}

/// A kubectl left running in the background (a watch), its stdout collected in a file.
struct Background {
    child: Child,
    out: PathBuf,
}

impl Background {
    fn spawn(tc: &TestCluster, name: &str, args: &[&str]) -> Self {
        let out = tc.dir.join(format!("{name}.out"));
        let stdout = std::fs::File::create(&out).unwrap();
        let stderr = std::fs::File::create(tc.dir.join(format!("{name}.err"))).unwrap();
        let child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &tc.kubeconfig)
            .env("KUBECACHEDIR", tc.dir.join("cache"))
            .env("HOME", &tc.dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("kubectl starts");
        Self { child, out }
    }

    /// The lines printed so far, except those about the cluster's own CA bundle ConfigMap.
    fn lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter(|l| !l.contains(ROOT_CA))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until at least `n` lines were printed, and returns them.
    async fn wait_lines(&self, n: usize, what: &str) -> Vec<String> {
        eventually(what, SETTLE, || async {
            Some(self.lines()).filter(|l| l.len() >= n)
        })
        .await
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Never outlive the test, whatever it asserted.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_is_a_three_way_merge() {
    let tc = TestCluster::start().await;
    let ns = tc.temp_namespace();
    let v1 = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\n  labels: {{tier: web}}\ndata:\n  k1: v1\n  k2: v2\n"
    );
    assert_eq!(apply_ok(&tc, &v1, &[]).trim(), "configmap/settings created");
    let created = get_json(&tc, &["cm", "settings", "-n", &ns]);
    let uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
    assert!(
        rv(&created).parse::<u64>().is_ok(),
        "resourceVersion is an opaque decimal string"
    );
    assert!(
        created["metadata"].get("generation").is_none(),
        "ConfigMaps carry no generation"
    );
    // kubectl hides managedFields unless asked.
    assert!(created["metadata"].get("managedFields").is_none());
    let last_applied: Value = parse(
        created["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(last_applied["data"]["k2"], "v2");

    // Re-applying the same manifest writes nothing.
    assert_eq!(apply_ok(&tc, &v1, &[]).trim(), "configmap/settings unchanged");
    assert_eq!(rv(&get_json(&tc, &["cm", "settings", "-n", &ns])), rv(&created));

    // A key someone else added is not in last-applied, so apply leaves it alone.
    tc.kubectl_ok(&[
        "patch",
        "cm",
        "settings",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"data":{"extra":"kept"}}"#,
    ]);
    let v2 = v1.replace("  k2: v2\n", "  k3: v3\n");
    assert_eq!(apply_ok(&tc, &v2, &[]).trim(), "configmap/settings configured");
    let after = get_json(&tc, &["cm", "settings", "-n", &ns, "--show-managed-fields"]);
    assert_eq!(
        after["data"],
        serde_json::json!({"k1": "v1", "k3": "v3", "extra": "kept"}),
        "k2 pruned, extra kept"
    );
    assert_eq!(
        after["metadata"]["uid"],
        uid.as_str(),
        "uid is stable across updates"
    );
    assert_ne!(rv(&after), rv(&created), "every write moves resourceVersion");
    assert_eq!(
        after["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );
    let managers: Vec<(&str, &str)> = after["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["manager"].as_str().unwrap(), e["operation"].as_str().unwrap()))
        .collect();
    assert!(
        managers.contains(&("kubectl-client-side-apply", "Update")),
        "{managers:?}"
    );
    assert!(managers.contains(&("kubectl-patch", "Update")), "{managers:?}");
    let csa = after["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kubectl-client-side-apply")
        .unwrap();
    assert!(
        csa["fieldsV1"]["f:data"].get("f:k3").is_some(),
        "the applier owns what it set: {csa}"
    );
    assert!(
        csa["fieldsV1"]["f:data"].get("f:extra").is_none(),
        "but not the patcher's key: {csa}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_conflicts_and_force() {
    let tc = TestCluster::start().await;
    let ns = tc.temp_namespace();
    let manifest = |color: &str, with_size: bool| {
        let size = if with_size { "  size: large\n" } else { "" };
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: paint\n  namespace: {ns}\ndata:\n  color: {color}\n{size}"
        )
    };
    assert_eq!(
        apply_ok(&tc, &manifest("red", true), &["--server-side"]).trim(),
        "configmap/paint serverside-applied"
    );
    let applied = get_json(&tc, &["cm", "paint", "-n", &ns, "--show-managed-fields"]);
    let entries = applied["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["manager"], "kubectl");
    assert_eq!(entries[0]["operation"], "Apply");
    assert!(
        applied["metadata"]["annotations"].is_null(),
        "server-side apply keeps no last-applied annotation"
    );

    // Another manager takes `color` with an ordinary update.
    tc.kubectl_ok(&[
        "patch",
        "cm",
        "paint",
        "-n",
        &ns,
        "--type=merge",
        "--field-manager=painter",
        "-p",
        r#"{"data":{"color":"blue"}}"#,
    ]);
    let before = get_json(&tc, &["cm", "paint", "-n", &ns]);
    let err = apply_err(&tc, &manifest("green", true), &["--server-side"]);
    assert!(
        err.starts_with(
            r#"error: Apply failed with 1 conflict: conflict with "painter" using v1: .data.color"#
        ),
        "{err}"
    );
    assert!(
        err.contains("--force-conflicts"),
        "kubectl explains the way out: {err}"
    );
    let unchanged = get_json(&tc, &["cm", "paint", "-n", &ns]);
    assert_eq!(unchanged["data"]["color"], "blue");
    assert_eq!(rv(&unchanged), rv(&before), "a conflicting apply writes nothing");

    // Forcing takes the field over; the painter, left with nothing, drops out of managedFields.
    apply_ok(
        &tc,
        &manifest("green", true),
        &["--server-side", "--force-conflicts"],
    );
    let forced = get_json(&tc, &["cm", "paint", "-n", &ns, "--show-managed-fields"]);
    assert_eq!(forced["data"]["color"], "green");
    let managers: Vec<&str> = forced["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["kubectl"]);

    // A field dropped from the applied configuration is removed, since only this applier owned it.
    apply_ok(&tc, &manifest("green", false), &["--server-side"]);
    let pruned = get_json(&tc, &["cm", "paint", "-n", &ns]);
    assert_eq!(pruned["data"], serde_json::json!({"color": "green"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_moves_on_spec_changes_only() {
    let tc = TestCluster::start().await;
    apply_crds(&tc);
    let ns = tc.temp_namespace();
    let app = format!(
        "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFApp\nmetadata:\n  name: gen-app\n  namespace: {ns}\nspec:\n  displayName: first\n"
    );
    apply_ok(&tc, &app, &[]);
    let get = || get_json(&tc, &["cfapp", "gen-app", "-n", &ns]);
    let v1 = get();
    assert_eq!(v1["metadata"]["generation"], 1);
    assert_eq!(
        v1["spec"]["desiredState"], "STOPPED",
        "schema defaults are applied on create"
    );

    // A status write moves resourceVersion but not generation.
    tc.kubectl_ok(&[
        "patch",
        "cfapp",
        "gen-app",
        "-n",
        &ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"state":"STARTED"}}"#,
    ]);
    let v2 = get();
    assert_eq!(v2["status"]["state"], "STARTED");
    assert_eq!(v2["metadata"]["generation"], 1);
    assert_ne!(rv(&v2), rv(&v1));

    // Status sent to the main resource is ignored when status is a subresource.
    tc.kubectl_ok(&[
        "patch",
        "cfapp",
        "gen-app",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"status":{"state":"STOPPED"}}"#,
    ]);
    let v3 = get();
    assert_eq!(v3["status"]["state"], "STARTED");
    assert_eq!(rv(&v3), rv(&v2), "a patch that changes nothing writes nothing");

    // Metadata changes do not move generation either.
    tc.kubectl_ok(&["label", "cfapp", "gen-app", "-n", &ns, "team=core"]);
    let v4 = get();
    assert_eq!(v4["metadata"]["generation"], 1);
    assert_ne!(rv(&v4), rv(&v3));

    // A spec change does.
    tc.kubectl_ok(&[
        "patch",
        "cfapp",
        "gen-app",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"displayName":"second"}}"#,
    ]);
    let v5 = get();
    assert_eq!(v5["metadata"]["generation"], 2);
    assert_eq!(v5["metadata"]["uid"], v1["metadata"]["uid"]);

    let managed = get_json(&tc, &["cfapp", "gen-app", "-n", &ns, "--show-managed-fields"]);
    let status_entry = managed["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subresource"] == "status")
        .cloned()
        .expect("the status write is recorded against the status subresource");
    assert_eq!(status_entry["manager"], "kubectl-patch");
    assert!(
        status_entry["fieldsV1"]["f:status"].get("f:state").is_some(),
        "{status_entry}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_each_event() {
    let tc = TestCluster::start().await;
    let ns = tc.temp_namespace();
    tc.kubectl_ok(&["create", "configmap", "pre", "-n", &ns]);
    tc.kubectl_ok(&["label", "cm", "pre", "-n", &ns, "watched=yes"]);
    let names = Background::spawn(
        &tc,
        "watch-names",
        &[
            "get",
            "cm",
            "-n",
            &ns,
            "-w",
            "--output-watch-events",
            "-o",
            "name",
            "--request-timeout=60s",
        ],
    );
    let table = Background::spawn(
        &tc,
        "watch-table",
        &[
            "get",
            "cm",
            "-n",
            &ns,
            "-w",
            "--output-watch-events",
            "--request-timeout=60s",
        ],
    );
    let selected = Background::spawn(
        &tc,
        "watch-selected",
        &[
            "get",
            "cm",
            "-n",
            &ns,
            "-l",
            "watched=yes",
            "-w",
            "--output-watch-events",
            "--request-timeout=60s",
        ],
    );
    // The initial list is printed first; the watch then starts from its resourceVersion, so
    // nothing written after these lines appear can be missed.
    eventually("the -o name watch lists", SETTLE, || async {
        Some(()).filter(|()| names.lines().iter().any(|l| l == "configmap/pre"))
    })
    .await;
    eventually("the table watch lists", SETTLE, || async {
        Some(()).filter(|()| {
            table
                .lines()
                .iter()
                .any(|l| l.split_whitespace().nth(1) == Some("pre"))
        })
    })
    .await;
    selected.wait_lines(2, "the selector watch lists").await;

    tc.kubectl_ok(&["create", "configmap", "live", "-n", &ns]);
    tc.kubectl_ok(&["label", "cm", "live", "-n", &ns, "watched=yes"]);
    tc.kubectl_ok(&["label", "cm", "live", "-n", &ns, "watched=no", "--overwrite"]);
    tc.kubectl_ok(&["delete", "cm", "live", "-n", &ns]);

    let lines = names.wait_lines(5, "five objects printed").await;
    assert_eq!(
        lines,
        [
            "configmap/pre",
            "configmap/live",
            "configmap/live",
            "configmap/live",
            "configmap/live"
        ]
    );

    let rows = table.wait_lines(6, "five table rows").await;
    let events: Vec<(String, String)> = rows
        .iter()
        .map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next().unwrap().to_owned(), cols.next().unwrap().to_owned())
        })
        .collect();
    let expected = [
        ("EVENT", "NAME"),
        ("ADDED", "pre"),
        ("ADDED", "live"),
        ("MODIFIED", "live"),
        ("MODIFIED", "live"),
        ("DELETED", "live"),
    ];
    assert_eq!(
        events,
        expected.map(|(a, b)| (a.to_owned(), b.to_owned())),
        "{rows:?}"
    );

    // Through a selector, entering it is ADDED and leaving it is DELETED.
    let rows = selected
        .wait_lines(4, "the selector watch sees live come and go")
        .await;
    let events: Vec<(&str, &str)> = rows
        .iter()
        .map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next().unwrap(), cols.next().unwrap())
        })
        .collect();
    assert_eq!(
        events,
        [
            ("EVENT", "NAME"),
            ("ADDED", "pre"),
            ("ADDED", "live"),
            ("DELETED", "live")
        ],
        "{rows:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        selected.lines().len(),
        4,
        "the delete of an object outside the selector is invisible"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_merge_json_and_strategic() {
    let tc = TestCluster::start().await;
    let ns = tc.temp_namespace();
    tc.kubectl_ok(&[
        "create",
        "configmap",
        "p",
        "-n",
        &ns,
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);

    // JSON merge patch: null deletes a key.
    let out = tc.kubectl_ok(&[
        "patch",
        "cm",
        "p",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"data":{"a":null,"c":"3"}}"#,
    ]);
    assert_eq!(out.trim(), "configmap/p patched");
    assert_eq!(
        get_json(&tc, &["cm", "p", "-n", &ns])["data"],
        serde_json::json!({"b": "2", "c": "3"})
    );

    // JSON patch: a passing test op lets the rest apply...
    tc.kubectl_ok(&[
        "patch",
        "cm",
        "p",
        "-n",
        &ns,
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/data/b","value":"2"},{"op":"replace","path":"/data/b","value":"22"}]"#,
    ]);
    let patched = get_json(&tc, &["cm", "p", "-n", &ns]);
    assert_eq!(patched["data"]["b"], "22");
    // ...and a failing one rejects the whole patch.
    let err = tc.kubectl_err(&[
        "patch",
        "cm",
        "p",
        "-n",
        &ns,
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/data/c","value":"x"},{"op":"test","path":"/data/b","value":"2"}]"#,
    ]);
    assert_eq!(
        err.trim(),
        "The request is invalid: the server rejected our request due to an error in our request"
    );
    let after = get_json(&tc, &["cm", "p", "-n", &ns]);
    assert_eq!(after["data"], serde_json::json!({"b": "22", "c": "3"}));
    assert_eq!(rv(&after), rv(&patched));

    // Strategic merge patch (kubectl's default) merges containers by name.
    let deploy = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.27\n      - name: sidecar\n        image: busybox:1.36\n"
    );
    apply_ok(&tc, &deploy, &[]);
    let images = |tc: &TestCluster| -> Vec<(String, String)> {
        get_json(tc, &["deploy", "web", "-n", &ns])["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["image"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let out = tc.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "-n",
        &ns,
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"nginx:1.28"}]}}}}"#,
    ]);
    assert_eq!(out.trim(), "deployment.apps/web patched");
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        images(&tc),
        pairs(&[("app", "nginx:1.28"), ("sidecar", "busybox:1.36")])
    );
    let d = get_json(&tc, &["deploy", "web", "-n", &ns]);
    assert_eq!(d["metadata"]["generation"], 2);
    // Defaulted fields of the merged container survive the patch.
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );

    // The same body as a JSON merge patch replaces the list wholesale.
    tc.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"nginx:1.29"}]}}}}"#,
    ]);
    assert_eq!(images(&tc), pairs(&[("app", "nginx:1.29")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_for_finalizers() {
    let tc = TestCluster::start().await;
    let ns = tc.temp_namespace();
    tc.kubectl_ok(&["create", "configmap", "held", "-n", &ns]);
    tc.kubectl_ok(&[
        "patch",
        "cm",
        "held",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    let out = tc.kubectl_ok(&["delete", "cm", "held", "-n", &ns, "--wait=false"]);
    assert_eq!(out.trim(), r#"configmap "held" deleted"#);

    let marked = get_json(&tc, &["cm", "held", "-n", &ns]);
    assert!(marked["metadata"]["deletionTimestamp"].is_string(), "{marked}");
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(
        marked["metadata"]["finalizers"],
        serde_json::json!(["example.com/hold"])
    );

    // Deleting again changes nothing; adding finalizers is refused.
    tc.kubectl_ok(&["delete", "cm", "held", "-n", &ns, "--wait=false"]);
    assert_eq!(rv(&get_json(&tc, &["cm", "held", "-n", &ns])), rv(&marked));
    let err = tc.kubectl_err(&[
        "patch",
        "cm",
        "held",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold","example.com/late"]}}"#,
    ]);
    assert_eq!(
        err.trim(),
        r#"The ConfigMap "held" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"example.com/late"}"#
    );
    // Other updates are still allowed while it waits.
    tc.kubectl_ok(&["label", "cm", "held", "-n", &ns, "state=draining"]);

    // Removing the last finalizer completes the deletion.
    tc.kubectl_ok(&[
        "patch",
        "cm",
        "held",
        "-n",
        &ns,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    tc.kubectl_ok(&["wait", "--for=delete", "cm/held", "-n", &ns, "--timeout=10s"]);
    let err = tc.kubectl_err(&["get", "cm", "held", "-n", &ns]);
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): configmaps "held" not found"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_selectors_filter_lists() {
    let tc = TestCluster::start().await;
    let ns = tc.temp_namespace();
    for (name, labels) in [
        ("x-plain", vec!["a=x"]),
        ("y-plain", vec!["a=y"]),
        ("z-plain", vec!["a=z"]),
        ("x-with-b", vec!["a=x", "b=1"]),
        ("no-a", vec!["c=1"]),
    ] {
        tc.kubectl_ok(&["create", "configmap", name, "-n", &ns]);
        let mut args = vec!["label", "cm", name, "-n", ns.as_str(), "suite=sel"];
        args.extend(labels);
        tc.kubectl_ok(&args);
    }
    let select = |selector: &str| -> Vec<String> {
        let scoped = format!("suite=sel,{selector}");
        let out = tc.kubectl_ok(&["get", "cm", "-n", &ns, "-l", &scoped, "-o", "name"]);
        let mut names: Vec<String> = out
            .lines()
            .map(|l| l.trim_start_matches("configmap/").to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(select("a in (x,y),!b"), ["x-plain", "y-plain"]);
    assert_eq!(select("a in (x,y)"), ["x-plain", "x-with-b", "y-plain"]);
    assert_eq!(select("a notin (x),a"), ["y-plain", "z-plain"]);
    // notin without the existence clause also matches objects lacking the key.
    assert_eq!(select("a notin (x)"), ["no-a", "y-plain", "z-plain"]);
    assert_eq!(select("a!=x"), ["no-a", "y-plain", "z-plain"]);
    assert_eq!(select("a=x,b==1"), ["x-with-b"]);
    assert_eq!(select("b"), ["x-with-b"]);
    assert_eq!(select("!a"), ["no-a"]);

    let out = tc.kubectl(&["get", "cm", "-n", &ns, "-l", "a=nothing"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("No resources found in {ns} namespace.")
    );

    let err = tc.kubectl_err(&["get", "cm", "-n", &ns, "-l", "a in (x"]);
    assert!(err.contains("unable to parse requirement"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_serve_categories_and_printer_columns() {
    let tc = TestCluster::start().await;
    apply_crds(&tc);
    let names: Vec<String> = tc
        .kubectl_ok(&["get", "crd", "-o", "name"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        names.contains(&"customresourcedefinition.apiextensions.k8s.io/cfapps.kubefoundry.dev".to_owned()),
        "{names:?}"
    );
    let apps_ns = tc.temp_namespace();
    let pkgs_ns = tc.temp_namespace();
    apply_ok(
        &tc,
        &format!(
            "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFApp\nmetadata:\n  name: app-1\n  namespace: {apps_ns}\nspec:\n  displayName: shop\n---\napiVersion: kubefoundry.dev/v1alpha1\nkind: CFPackage\nmetadata:\n  name: pkg-1\n  namespace: {pkgs_ns}\nspec:\n  appGuid: app-1\n  type: bits\n"
        ),
        &[],
    );

    // The `cf` category spans every kubefoundry kind; -A adds the namespace column and, with
    // several kinds, kubectl prefixes each name with its kind.
    let all = tc.kubectl_ok(&["get", "cf", "-A"]);
    let rows: Vec<Vec<&str>> = all.lines().map(|l| l.split_whitespace().collect()).collect();
    assert!(
        rows.iter()
            .any(|r| r.len() > 1 && r[0] == apps_ns && r[1] == "cfapp.kubefoundry.dev/app-1"),
        "{all}"
    );
    assert!(
        rows.iter()
            .any(|r| r.len() > 1 && r[0] == pkgs_ns && r[1] == "cfpackage.kubefoundry.dev/pkg-1"),
        "{all}"
    );
    assert!(
        all.lines().filter(|l| l.starts_with("NAMESPACE")).count() >= 2,
        "one header per kind: {all}"
    );

    // Printer columns: priority-0 columns by default, all of them with -o wide.
    let out = tc.kubectl_ok(&["get", "cfapps", "-n", &apps_ns]);
    let lines: Vec<&str> = out.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "DISPLAY", "NAME", "STATE", "READY", "AGE"],
        "{out}"
    );
    assert!(
        lines[1].starts_with("app-1") && lines[1].contains("shop"),
        "{out}"
    );
    let wide = tc.kubectl_ok(&["get", "cfapps", "-n", &apps_ns, "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "DISPLAY", "NAME", "STATE", "DESIRED", "DROPLET", "READY", "AGE"
        ],
        "{wide}"
    );
    assert!(
        wide.lines().nth(1).unwrap().contains("STOPPED"),
        "the defaulted desiredState shows: {wide}"
    );

    // Columns follow status, including a JSONPath filter on conditions.
    tc.kubectl_ok(&[
        "patch", "cfapp", "app-1", "-n", &apps_ns, "--subresource=status", "--type=merge", "-p",
        r#"{"status":{"state":"STARTED","conditions":[{"type":"Ready","status":"True","reason":"Running","message":"all good","lastTransitionTime":"2025-01-01T00:00:00Z"}]}}"#,
    ]);
    let out = tc.kubectl_ok(&["get", "cfapps", "-n", &apps_ns, "--no-headers"]);
    let row: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(&row[..4], ["app-1", "shop", "STARTED", "True"], "{out}");

    // Short names resolve too.
    let out = tc.kubectl_ok(&["get", "pkg", "-n", &pkgs_ns, "--no-headers"]);
    let row: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(&row[..3], ["pkg-1", "app-1", "bits"], "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_schema_and_cel_rejections() {
    let tc = TestCluster::start().await;
    apply_crds(&tc);
    let ns = tc.temp_namespace();
    let process = |instances: &str, extra: &str| {
        format!(
            "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFProcess\nmetadata:\n  name: proc-1\n  namespace: {ns}\nspec:\n  appGuid: app-1\n  processType: web\n  instances: {instances}\n{extra}"
        )
    };
    assert_eq!(
        apply_err(&tc, &process("-1", ""), &[]),
        r#"The CFProcess "proc-1" is invalid: spec.instances: Invalid value: -1: spec.instances in body should be greater than or equal to 0"#
    );
    assert_eq!(
        apply_err(&tc, &process(r#""two""#, ""), &[]),
        "The CFProcess \"proc-1\" is invalid: \n\
         * spec.instances: Invalid value: \"string\": spec.instances in body must be of type integer: \"string\"\n\
         * <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
    );
    assert_eq!(
        apply_err(&tc, &process("2", "  bogus: true\n"), &[]),
        r#"Error from server (BadRequest): error when creating "STDIN": CFProcess in version "v1alpha1" cannot be handled as a CFProcess: strict decoding error: unknown field "spec.bogus""#
    );
    let err = tc.kubectl_err(&["get", "cfprocess", "proc-1", "-n", &ns]);
    assert!(err.contains("not found"), "nothing was stored: {err}");

    // The valid object is accepted. Updating it with an unknown field is refused as well: apply
    // patches, and the patch handler reports the bare strict decoding error...
    apply_ok(&tc, &process("2", ""), &[]);
    let err = apply_err(&tc, &process("2", "  bogus: true\n"), &[]);
    assert!(
        err.starts_with("Error from server (BadRequest): error when applying patch:"),
        "{err}"
    );
    assert!(
        err.ends_with(
            r#"for: "STDIN": error when patching "STDIN": strict decoding error: unknown field "spec.bogus""#
        ),
        "{err}"
    );
    // ...while a replace goes through the decoder, like a create.
    let out = tc.kubectl_stdin(&["replace", "-f", "-"], Some(&process("2", "  bogus: true\n")));
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        r#"Error from server (BadRequest): error when replacing "STDIN": CFProcess in version "v1alpha1" cannot be handled as a CFProcess: strict decoding error: unknown field "spec.bogus""#
    );
    // kubectl patch asks for no validation level, so the server's default applies: the unknown
    // field is pruned and reported as a warning.
    let out = tc.kubectl(&[
        "patch",
        "cfprocess",
        "proc-1",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"bogus":1,"instances":3}}"#,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        r#"Warning: unknown field "spec.bogus""#
    );
    let stored = get_json(&tc, &["cfprocess", "proc-1", "-n", &ns]);
    assert_eq!(stored["spec"]["instances"], 3);
    assert!(stored["spec"].get("bogus").is_none(), "{stored}");

    // CEL: transition rules and cross-field rules, with the messages the CRD declares.
    let package = |name: &str, body: &str| {
        format!(
            "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFPackage\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  appGuid: app-1\n{body}"
        )
    };
    apply_ok(&tc, &package("pkg-bits", "  type: bits\n"), &[]);
    let err = tc.kubectl_err(&[
        "patch",
        "cfpackage",
        "pkg-bits",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"type":"docker","image":"nginx:1.27"}}"#,
    ]);
    assert_eq!(
        err.trim(),
        r#"The CFPackage "pkg-bits" is invalid: spec.type: Invalid value: "docker": a package's type cannot change"#
    );
    assert_eq!(
        apply_err(&tc, &package("pkg-docker", "  type: docker\n"), &[]),
        r#"The CFPackage "pkg-docker" is invalid: spec.image: Invalid value: a docker package needs an image"#
    );
    apply_ok(
        &tc,
        &package("pkg-docker", "  type: docker\n  image: nginx:1.27\n"),
        &[],
    );
    let err = tc.kubectl_err(&[
        "patch",
        "cfpackage",
        "pkg-docker",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"image":"nginx:1.28"}}"#,
    ]);
    assert_eq!(
        err.trim(),
        r#"The CFPackage "pkg-docker" is invalid: spec.image: Invalid value: "nginx:1.28": is immutable"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_can_i_follows_rbac_for_impersonated_users() {
    let tc = TestCluster::start().await;
    let ns = tc.temp_namespace();
    tc.kubectl_ok(&["create", "configmap", "visible", "-n", &ns]);
    let can_i = |args: &[&str]| -> (bool, String) {
        let mut full = vec!["auth", "can-i"];
        full.extend_from_slice(args);
        let out = tc.kubectl(&full);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
    };
    assert_eq!(
        can_i(&["list", "configmaps", "-n", &ns, "--as", "alice"]),
        (false, "no".to_owned())
    );

    tc.kubectl_ok(&[
        "create",
        "role",
        "cm-reader",
        "-n",
        &ns,
        "--verb=get,list,watch",
        "--resource=configmaps",
    ]);
    tc.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-reads",
        "-n",
        &ns,
        "--role=cm-reader",
        "--user=alice",
    ]);

    assert_eq!(
        can_i(&["list", "configmaps", "-n", &ns, "--as", "alice"]),
        (true, "yes".to_owned())
    );
    assert_eq!(
        can_i(&["get", "configmaps/visible", "-n", &ns, "--as", "alice"]),
        (true, "yes".to_owned())
    );
    assert_eq!(
        can_i(&["delete", "configmaps", "-n", &ns, "--as", "alice"]),
        (false, "no".to_owned())
    );
    assert_eq!(
        can_i(&["list", "configmaps", "-n", "default", "--as", "alice"]),
        (false, "no".to_owned())
    );
    assert_eq!(
        can_i(&["list", "secrets", "-n", &ns, "--as", "alice"]),
        (false, "no".to_owned())
    );
    assert_eq!(
        can_i(&["list", "configmaps", "-n", &ns, "--as", "bob"]),
        (false, "no".to_owned())
    );
    // A group binding works through --as-group.
    tc.kubectl_ok(&[
        "create",
        "rolebinding",
        "devs-read",
        "-n",
        &ns,
        "--role=cm-reader",
        "--group=devs",
    ]);
    assert_eq!(
        can_i(&[
            "list",
            "configmaps",
            "-n",
            &ns,
            "--as",
            "bob",
            "--as-group",
            "devs"
        ]),
        (true, "yes".to_owned())
    );

    // The answers match what the requests themselves get.
    let out = tc.kubectl_ok(&["get", "cm", "visible", "-n", &ns, "--as", "alice", "-o", "name"]);
    assert_eq!(out.trim(), "configmap/visible");
    let err = tc.kubectl_err(&["delete", "cm", "visible", "-n", &ns, "--as", "alice"]);
    assert_eq!(
        err.trim(),
        format!(
            r#"Error from server (Forbidden): configmaps "visible" is forbidden: User "alice" cannot delete resource "configmaps" in API group "" in the namespace "{ns}""#
        )
    );
    let whoami = tc.kubectl_ok(&["auth", "whoami", "--as", "alice", "-o", "json"]);
    let review = parse(&whoami);
    assert_eq!(review["status"]["userInfo"]["username"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_waits_for_finalized_content() {
    let tc = TestCluster::start().await;
    let ns = tc.temp_namespace();
    tc.kubectl_ok(&["create", "configmap", "plain", "-n", &ns]);
    tc.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        &ns,
        "--from-literal=k=v",
    ]);
    tc.kubectl_ok(&["create", "configmap", "held", "-n", &ns]);
    tc.kubectl_ok(&[
        "patch",
        "cm",
        "held",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);

    let out = tc.kubectl_ok(&["delete", "namespace", &ns, "--wait=false"]);
    assert_eq!(out.trim(), format!(r#"namespace "{ns}" deleted"#));

    // Content without finalizers goes; the held ConfigMap is only marked.
    let status = eventually("the namespace reports what remains", SETTLE, || async {
        let v = get_json(&tc, &["namespace", &ns]);
        let remaining = v["status"]["conditions"]
            .as_array()
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "NamespaceContentRemaining" && c["status"] == "True")
            })
            .and_then(|c| c["message"].as_str())
            .map(str::to_owned);
        remaining
            .filter(|m| m == "Some resources are remaining: configmaps. has 1 resource instances")
            .map(|_| v)
    })
    .await;
    assert_eq!(status["status"]["phase"], "Terminating");
    assert!(status["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(status["spec"]["finalizers"], serde_json::json!(["kubernetes"]));
    let conditions: Vec<(&str, &str, &str)> = status["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        conditions,
        [
            (
                "NamespaceDeletionDiscoveryFailure",
                "False",
                "ResourcesDiscovered"
            ),
            (
                "NamespaceDeletionGroupVersionParsingFailure",
                "False",
                "ParsedGroupVersions"
            ),
            ("NamespaceDeletionContentFailure", "False", "ContentDeleted"),
            ("NamespaceContentRemaining", "True", "SomeResourcesRemain"),
            ("NamespaceFinalizersRemaining", "True", "SomeFinalizersRemain"),
        ]
    );
    let held_by = status["status"]["conditions"][4]["message"].as_str().unwrap();
    assert_eq!(
        held_by,
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    );

    let names = tc.kubectl_ok(&["get", "cm,secret", "-n", &ns, "-o", "name"]);
    assert_eq!(names.trim(), "configmap/held");
    let held = get_json(&tc, &["cm", "held", "-n", &ns]);
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    let out = tc.kubectl_ok(&["get", "namespace", &ns, "--no-headers"]);
    assert_eq!(out.split_whitespace().nth(1), Some("Terminating"));

    // Nothing new may be created while it terminates.
    let err = tc.kubectl_err(&["create", "configmap", "late", "-n", &ns]);
    assert_eq!(
        err.trim(),
        format!(
            r#"error: failed to create configmap: configmaps "late" is forbidden: unable to create new content in namespace {ns} because it is being terminated"#
        )
    );

    // Releasing the finalizer lets the namespace finish.
    tc.kubectl_ok(&[
        "patch",
        "cm",
        "held",
        "-n",
        &ns,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    tc.kubectl_ok(&[
        "wait",
        "--for=delete",
        &format!("namespace/{ns}"),
        "--timeout=10s",
    ]);
    let err = tc.kubectl_err(&["get", "namespace", &ns]);
    assert_eq!(
        err.trim(),
        format!(r#"Error from server (NotFound): namespaces "{ns}" not found"#)
    );
    let all = tc.kubectl_ok(&[
        "get",
        "configmaps",
        "-A",
        "-o",
        "custom-columns=NS:.metadata.namespace",
        "--no-headers",
    ]);
    assert!(
        all.lines().all(|l| l.trim() != ns),
        "nothing of the namespace is left: {all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_and_client_certs_over_tls() {
    let tc = TestCluster::start_with(Options {
        tls: true,
        config: fast_config(),
        ..Options::default()
    })
    .await;
    assert!(tc.sim.url.starts_with("https://"));
    let ns = tc.temp_namespace();
    tc.kubectl_ok(&["create", "serviceaccount", "robot", "-n", &ns]);
    tc.kubectl_ok(&["create", "configmap", "cfg", "-n", &ns]);
    let token = tc
        .kubectl_ok(&["create", "token", "robot", "-n", &ns])
        .trim()
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    let as_robot = |args: &[&str]| {
        let mut full = vec!["--token", token.as_str()];
        full.extend_from_slice(args);
        tc.kubectl(&full)
    };
    let out = as_robot(&["auth", "whoami", "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let review = parse(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        review["status"]["userInfo"]["username"],
        format!("system:serviceaccount:{ns}:robot")
    );
    let groups = review["status"]["userInfo"]["groups"].as_array().unwrap();
    for g in [
        "system:serviceaccounts",
        &format!("system:serviceaccounts:{ns}"),
        "system:authenticated",
    ] {
        assert!(groups.iter().any(|x| x == g), "{groups:?}");
    }
    let sa = get_json(&tc, &["serviceaccount", "robot", "-n", &ns]);
    assert_eq!(review["status"]["userInfo"]["uid"], sa["metadata"]["uid"]);

    // The token authenticates; RBAC still decides.
    let out = as_robot(&["get", "cm", "-n", &ns]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            r#"Error from server (Forbidden): configmaps is forbidden: User "system:serviceaccount:{ns}:robot" cannot list resource "configmaps" in API group "" in the namespace "{ns}""#
        )
    );
    tc.kubectl_ok(&[
        "create",
        "rolebinding",
        "robot-view",
        "-n",
        &ns,
        "--clusterrole=view",
        &format!("--serviceaccount={ns}:robot"),
    ]);
    let out = as_robot(&["get", "cm", "cfg", "-n", &ns, "-o", "name"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "configmap/cfg");
    let out = as_robot(&["delete", "cm", "cfg", "-n", &ns]);
    assert!(!out.status.success(), "view does not allow deletes");

    // Deleting the ServiceAccount revokes its tokens.
    tc.kubectl_ok(&["delete", "serviceaccount", "robot", "-n", &ns]);
    let out = as_robot(&["get", "cm", "-n", &ns]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: You must be logged in to the server (Unauthorized)"
    );
    let out = tc.kubectl(&["--token", "not-a-token", "get", "cm", "-n", &ns]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: You must be logged in to the server (Unauthorized)"
    );

    // A client certificate from the cluster CA authenticates as CN, groups from O.
    let tls = tc.sim.tls.as_ref().expect("TLS material");
    let cert = tls.client_cert("carol", &["devs"]).unwrap();
    let (ca, crt, key) = (
        tc.dir.join("ca.pem"),
        tc.dir.join("carol.crt"),
        tc.dir.join("carol.key"),
    );
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    std::fs::write(&crt, &cert.cert_pem).unwrap();
    std::fs::write(&key, &cert.key_pem).unwrap();
    let kubeconfig = tc.dir.join("carol.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: carol\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: carol\n  context: {{cluster: sim, user: carol}}\ncurrent-context: carol\n",
            tc.sim.url,
            ca.display(),
            crt.display(),
            key.display()
        ),
    )
    .unwrap();
    let whoami = tc.kubectl_ok(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "auth",
        "whoami",
        "-o",
        "json",
    ]);
    let review = parse(&whoami);
    assert_eq!(review["status"]["userInfo"]["username"], "carol");
    let groups = review["status"]["userInfo"]["groups"].as_array().unwrap();
    assert!(groups.iter().any(|g| g == "devs"), "{groups:?}");
    let out = tc.kubectl(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "get",
        "cm",
        "-n",
        &ns,
    ]);
    assert!(!out.status.success(), "carol has no RBAC yet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_rolls_out_scales_and_logs() {
    let tc = TestCluster::start().await;
    let ns = tc.temp_namespace();
    // The container prints one line and idles; the sim is told the same line (a real cluster
    // ignores the annotation and runs the command).
    let deploy = |name: &str, image: &str, annotations: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n      annotations: {{sim.kubefoundry.dev/log: serving on 8080{annotations}}}\n    spec:\n      containers:\n      - name: app\n        image: {image}\n        command: [sh, -c, 'echo serving on 8080; exec sleep 3600']\n"
        )
    };
    apply_ok(&tc, &deploy("web", "busybox:1.36", ""), &[]);
    let out = tc.kubectl_ok(&["rollout", "status", "deployment/web", "-n", &ns, "--timeout=20s"]);
    assert!(
        out.contains(r#"deployment "web" successfully rolled out"#),
        "{out}"
    );

    // Deployment → ReplicaSet → Pods, all owned by their controller and all Ready.
    let d = get_json(&tc, &["deploy", "web", "-n", &ns]);
    assert_eq!(d["status"]["readyReplicas"], 2);
    assert_eq!(d["status"]["observedGeneration"], d["metadata"]["generation"]);
    let rss = get_json(&tc, &["rs", "-n", &ns, "-l", "app=web"]);
    let rss = rss["items"].as_array().unwrap();
    assert_eq!(rss.len(), 1);
    let owner = &rss[0]["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["controller"].as_bool()),
        (Some("Deployment"), Some(true))
    );
    assert_eq!(owner["uid"], d["metadata"]["uid"]);
    let hash = rss[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let pods = get_json(&tc, &["pods", "-n", &ns, "-l", "app=web"]);
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 2);
    for p in pods {
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["uid"],
            rss[0]["metadata"]["uid"]
        );
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash.as_str());
        assert_eq!(p["status"]["phase"], "Running");
        let ready = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        assert!(ready, "{p}");
    }
    let table = tc.kubectl_ok(&["get", "pods", "-n", &ns, "-l", "app=web", "--no-headers"]);
    for row in table.lines() {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cols[1..4], ["1/1", "Running", "0"], "{table}");
    }

    let logs = tc.kubectl_ok(&["logs", "deployment/web", "-n", &ns]);
    assert_eq!(logs, "serving on 8080\n");

    // Scaling goes through the scale subresource and the ReplicaSet follows.
    let out = tc.kubectl_ok(&["scale", "deployment/web", "-n", &ns, "--replicas=3"]);
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    tc.kubectl_ok(&["rollout", "status", "deployment/web", "-n", &ns, "--timeout=20s"]);
    assert_eq!(
        get_json(&tc, &["deploy", "web", "-n", &ns])["status"]["readyReplicas"],
        3
    );
    let err = tc.kubectl_err(&[
        "scale",
        "deployment/web",
        "-n",
        &ns,
        "--replicas=1",
        "--current-replicas=2",
    ]);
    assert_eq!(err.trim(), "error: Expected replicas to be 2, was 3");
    tc.kubectl_ok(&["scale", "deployment/web", "-n", &ns, "--replicas=1"]);
    // Pods being removed may linger while they shut down; only the ones that stay count.
    eventually("scaled down to one pod", SETTLE, || async {
        let pods = get_json(&tc, &["pods", "-n", &ns, "-l", "app=web"]);
        let staying = pods["items"]
            .as_array()?
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .count();
        Some(()).filter(|()| staying == 1)
    })
    .await;

    // A new template rolls out as a new ReplicaSet; the old one is scaled to zero.
    apply_ok(&tc, &deploy("web", "busybox:1.37", ""), &[]);
    tc.kubectl_ok(&["rollout", "status", "deployment/web", "-n", &ns, "--timeout=20s"]);
    let rss = get_json(&tc, &["rs", "-n", &ns, "-l", "app=web"]);
    let mut replicas: Vec<(String, i64)> = rss["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rs| {
            let image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_owned();
            (image, rs["spec"]["replicas"].as_i64().unwrap())
        })
        .collect();
    replicas.sort();
    assert_eq!(
        replicas,
        [("busybox:1.36".to_owned(), 0), ("busybox:1.37".to_owned(), 2)]
    );

    // rollout status really waits: Pods that never start keep it from succeeding.
    // The image does not exist (and the sim is told its pull fails).
    let stuck = deploy(
        "stuck",
        "registry.invalid/kubefoundry/missing:0",
        ", sim.kubefoundry.dev/fail: image-pull",
    );
    apply_ok(&tc, &stuck, &[]);
    let err = tc.kubectl_err(&["rollout", "status", "deployment/stuck", "-n", &ns, "--timeout=1s"]);
    assert!(err.contains("timed out waiting for the condition"), "{err}");
    let table = tc.kubectl_ok(&["get", "pods", "-n", &ns, "-l", "app=stuck", "--no-headers"]);
    assert_eq!(table.lines().count(), 2, "{table}");
    for row in table.lines() {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1], "0/1", "{table}");
        assert!(matches!(cols[2], "ErrImagePull" | "ImagePullBackOff"), "{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_runs_to_completion() {
    let tc = TestCluster::start().await;
    let ns = tc.temp_namespace();
    apply_ok(
        &tc,
        &format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: hello\n  namespace: {ns}\nspec:\n  template:\n    metadata:\n      annotations: {{sim.kubefoundry.dev/log: hi}}\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: hello\n        image: busybox:1.36\n        command: [echo, hi]\n"
        ),
        &[],
    );
    let out = tc.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/hello",
        "-n",
        &ns,
        "--timeout=20s",
    ]);
    assert_eq!(out.trim(), "job.batch/hello condition met");

    let job = get_json(&tc, &["job", "hello", "-n", &ns]);
    assert_eq!(job["status"]["succeeded"], 1);
    assert!(job["status"]["completionTime"].is_string(), "{job}");
    let complete = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Complete" && c["status"] == "True");
    assert!(complete, "{job}");

    let out = tc.kubectl_ok(&["get", "jobs", "-n", &ns, "--no-headers"]);
    let cols: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(&cols[..3], ["hello", "Complete", "1/1"], "{out}");

    // Its Pod ran and finished: kubectl shows the terminated container's reason.
    let pods = tc.kubectl_ok(&["get", "pods", "-n", &ns, "-l", "job-name=hello", "--no-headers"]);
    let rows: Vec<Vec<&str>> = pods.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 1, "{pods}");
    assert_eq!(&rows[0][1..4], ["0/1", "Completed", "0"], "{pods}");
    let pod = get_json(&tc, &["pods", "-n", &ns, "-l", "job-name=hello"]);
    assert_eq!(pod["items"][0]["status"]["phase"], "Succeeded");
    assert_eq!(
        pod["items"][0]["metadata"]["ownerReferences"][0]["uid"],
        job["metadata"]["uid"]
    );

    let logs = tc.kubectl_ok(&["logs", "job/hello", "-n", &ns]);
    assert_eq!(logs, "hi\n");
}

/// A Job Pod deleted while it runs (its namespace terminating, say) goes: the Job controller
/// drops its tracking finalizer, as kube-controller-manager does. Before, such a Pod kept its
/// finalizer and the namespace stayed Terminating for ever (a CF space deleted mid-task).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_job_pods_do_not_block_namespace_deletion() {
    let tc = TestCluster::start_with(Options {
        config: kubefoundry_sim::Config {
            job_run_time: Duration::from_secs(600),
            ..fast_config()
        },
        ..Default::default()
    })
    .await;
    let ns = tc.temp_namespace();
    apply_ok(
        &tc,
        &format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: long\n  namespace: {ns}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: long\n        image: busybox:1.36\n        command: [sleep, '3600']\n"
        ),
        &[],
    );
    let pod = eventually("the Job Pod to run", Duration::from_secs(20), || async {
        let pods = get_json(&tc, &["pods", "-n", &ns, "-l", "job-name=long"]);
        let pod = pods["items"].get(0)?.clone();
        (pod["status"]["phase"] == "Running").then_some(pod)
    })
    .await;
    assert_eq!(
        pod["metadata"]["finalizers"][0],
        "batch.kubernetes.io/job-tracking"
    );
    tc.kubectl_ok(&["delete", "namespace", &ns, "--wait=true", "--timeout=20s"]);
    let out = tc.kubectl(&["get", "namespace", &ns]);
    assert!(!out.status.success(), "namespace {ns} still exists");
}
