//! e2e: log-cache over real HTTP as the cf CLI reads it (cf-cli-wire §6): the info probe,
//! `cf logs --recent` (descending, negative start_time) and the streaming reads (ascending,
//! inclusive start_time), with envelopes made from a running app's Pod logs and its staging.

// Tests fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use kubefoundry::{
    crd::{CFApp, CFDroplet},
    labels::APP_GUID,
};
use kubefoundry_e2e::{cf::CfStack, eventually};
use serde_json::{Value, json};

const RECENT: &str = "descending=true&envelope_types=LOG&limit=1000&start_time=-6795364578871345152";

/// Standard base64, decoded (test-side check of the payload encoding).
fn unbase64(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = u32::try_from(ALPHABET.iter().position(|a| *a == c).expect("base64 alphabet")).unwrap();
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push(u8::try_from((bits >> n) & 0xff).unwrap());
        }
    }
    String::from_utf8(out).unwrap()
}

/// (timestamp, source_type, line) of every envelope, checking each has exactly log-cache's
/// fields (the CLI's protojson rejects unknown ones).
fn lines(body: &Value, app: &str) -> Vec<(i64, String, String)> {
    body["envelopes"]["batch"]
        .as_array()
        .unwrap_or_else(|| panic!("no batch: {body}"))
        .iter()
        .map(|e| {
            let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                ["instance_id", "log", "source_id", "tags", "timestamp"],
                "{e}"
            );
            assert_eq!(e["source_id"], app);
            assert_eq!(e["tags"].as_object().unwrap().len(), 1, "{e}");
            assert!(e["log"]["type"] == "OUT" || e["log"]["type"] == "ERR", "{e}");
            assert!(e["instance_id"].is_string(), "{e}");
            (
                e["timestamp"].as_str().unwrap().parse().unwrap(),
                e["tags"]["source_type"].as_str().unwrap().to_owned(),
                unbase64(e["log"]["payload"].as_str().unwrap()),
            )
        })
        .collect()
}

/// A started docker app with one running instance whose container logs two declared lines.
async fn running_app(s: &CfStack) -> (String, String) {
    let admin = s.admin();
    let (_, space) = s.org_and_space("o", "s").await;
    let r = s
        .raw(
            "POST",
            &format!("/v3/spaces/{space}/actions/apply_manifest"),
            Some(&admin),
            "application/x-yaml",
            b"applications:\n- name: logger\n  no-route: true\n  docker:\n    image: nginx:1.27\n".to_vec(),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(
        s.wait_job(&r.location().unwrap(), &admin).await["state"],
        "COMPLETE"
    );
    let apps: Api<CFApp> = Api::namespaced(s.tc.client.clone(), &space);
    let guid = apps.list(&ListParams::default()).await.unwrap().items[0].name_any();
    s.tc.apply(
        &format!(
            "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFPackage\nmetadata: {{name: pkg-1, namespace: {space}}}\nspec: {{appGuid: {guid}, type: docker, image: \"nginx:1.27\"}}\n---\napiVersion: kubefoundry.dev/v1alpha1\nkind: CFBuild\nmetadata: {{name: build-1, namespace: {space}}}\nspec: {{appGuid: {guid}, packageGuid: pkg-1}}\n"
        ),
        &[],
    );
    let droplets: Api<CFDroplet> = Api::namespaced(s.tc.client.clone(), &space);
    eventually("droplet", Duration::from_secs(30), || async {
        droplets.get_opt("build-1").await.ok().flatten().map(|_| ())
    })
    .await;
    apps.patch(
        &guid,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"desiredState": "STARTED", "currentDropletGuid": "build-1"}})),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(s.tc.client.clone(), &space);
    let pod = eventually("a running instance", Duration::from_secs(60), || async {
        let list = pods
            .list(&ListParams::default().labels(&format!("{APP_GUID}={guid}")))
            .await
            .ok()?;
        list.items
            .into_iter()
            .find(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
                    })
            })
            .map(|p| p.name_any())
    })
    .await;
    pods.patch(
        &pod,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"sim.kubefoundry.dev/log": "hello from logger\nsecond line"}}})),
    )
    .await
    .unwrap();
    (space, guid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_logs_recent_and_streaming_reads() {
    let s = CfStack::start().await;
    let admin = s.admin();
    let (_, guid) = running_app(&s).await;

    let info = s.call("GET", "/api/v1/info", None, None).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.body["version"], "2.11.4");
    assert!(info.body["vm_uptime"].is_string());

    // `cf logs --recent`: newest first; both declared lines once the second one's time is past
    // (the simulated container logs a line every 5 s).
    let recent = eventually("both app lines", Duration::from_secs(30), || async {
        let r = s
            .call(
                "GET",
                &format!("/api/v1/read/{guid}?{RECENT}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let l = lines(&r.body, &guid);
        let app: Vec<&(i64, String, String)> = l.iter().filter(|(_, t, _)| t == "APP/PROC/WEB").collect();
        (app.len() == 2).then_some(l)
    })
    .await;
    assert!(
        recent.windows(2).all(|w| w[0].0 >= w[1].0),
        "descending: {recent:?}"
    );
    let app: Vec<&(i64, String, String)> = recent.iter().filter(|(_, t, _)| t == "APP/PROC/WEB").collect();
    assert_eq!(app[0].2, "second line");
    assert_eq!(app[1].2, "hello from logger");
    assert!(
        recent
            .iter()
            .any(|(_, t, l)| t == "STG" && l == "Staging docker image nginx:1.27"),
        "{recent:?}"
    );
    let first = app[1].0;

    // limit keeps the newest.
    let r = s
        .call(
            "GET",
            &format!("/api/v1/read/{guid}?descending=true&limit=1&start_time=-6795364578871345152"),
            Some(&admin),
            None,
        )
        .await;
    let one = lines(&r.body, &guid);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].0, recent[0].0);

    // Streaming: ascending from start_time, inclusive.
    let r = s
        .call(
            "GET",
            &format!("/api/v1/read/{guid}?envelope_types=LOG&start_time={first}"),
            Some(&admin),
            None,
        )
        .await;
    let from_first = lines(&r.body, &guid);
    assert!(
        from_first.windows(2).all(|w| w[0].0 <= w[1].0),
        "ascending: {from_first:?}"
    );
    assert!(from_first.iter().all(|(ts, _, _)| *ts >= first));
    let first_app = from_first.iter().find(|(_, t, _)| t == "APP/PROC/WEB").unwrap();
    assert_eq!(first_app.2, "hello from logger");
    let r = s
        .call(
            "GET",
            &format!("/api/v1/read/{guid}?envelope_types=LOG&start_time={}", first + 1),
            Some(&admin),
            None,
        )
        .await;
    let after_first = lines(&r.body, &guid);
    assert!(
        after_first.iter().all(|(_, _, l)| l != "hello from logger"),
        "{after_first:?}"
    );
    assert!(
        after_first.iter().any(|(_, _, l)| l == "second line"),
        "{after_first:?}"
    );
    // Nothing after the newest line; other envelope types are not emitted.
    let r = s
        .call(
            "GET",
            &format!("/api/v1/read/{guid}?start_time={}", recent[0].0 + 1),
            Some(&admin),
            None,
        )
        .await;
    assert!(lines(&r.body, &guid).is_empty(), "{:?}", r.body);
    let r = s
        .call(
            "GET",
            &format!("/api/v1/read/{guid}?envelope_types=GAUGE"),
            Some(&admin),
            None,
        )
        .await;
    assert!(lines(&r.body, &guid).is_empty());
    // end_time is exclusive.
    let r = s
        .call(
            "GET",
            &format!("/api/v1/read/{guid}?start_time={first}&end_time={first}"),
            Some(&admin),
            None,
        )
        .await;
    assert!(lines(&r.body, &guid).is_empty());

    // Invisible or unknown apps are CF 404s; no credentials is a 401; bad parameters a 400.
    let bob = CfStack::token("bob");
    let r = s
        .call("GET", &format!("/api/v1/read/{guid}?{RECENT}"), Some(&bob), None)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["errors"][0]["detail"], "App not found");
    let r = s
        .call("GET", "/api/v1/read/no-such-app", Some(&admin), None)
        .await;
    assert_eq!(r.status, 404);
    let r = s.call("GET", &format!("/api/v1/read/{guid}"), None, None).await;
    assert_eq!(r.status, 401);
    let r = s
        .call(
            "GET",
            &format!("/api/v1/read/{guid}?limit=5000"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 400);
}
