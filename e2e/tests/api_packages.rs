//! The façade's packages, builds, droplets and tasks against a whole kubefoundry (simulated
//! cluster, controller, HTTP): the tail of `cf push --docker-image` (package READY at once,
//! build STAGED, droplet), bits uploads (streamed, checksummed, downloadable, capped with
//! nothing left behind), a bits build FAILED with the controller's error, and `cf run-task`,
//! `cf tasks` and cancel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kubefoundry::api;
use kubefoundry_e2e::{
    cf::{CfStack, Resp},
    eventually,
};
use serde_json::{Value, json};

const BOUNDARY: &str = "kubefoundry-e2e-boundary";

/// An org, a space and docker app `app-1` (plus `app-2`, with no droplet), made with kubectl.
async fn space_with_apps(s: &CfStack) {
    s.tc.apply(
        "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFOrg\nmetadata: {name: org-1, namespace: cf}\nspec: {displayName: o}\n",
        &[],
    );
    s.wait_namespace("org-1").await;
    s.tc.apply(
        "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFSpace\nmetadata: {name: space-1, namespace: org-1}\nspec: {displayName: s}\n",
        &[],
    );
    s.wait_namespace("space-1").await;
    s.tc.apply(
        "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFApp\nmetadata: {name: app-1, namespace: space-1}\nspec: {displayName: web, lifecycle: {type: docker}}\n---\napiVersion: kubefoundry.dev/v1alpha1\nkind: CFApp\nmetadata: {name: app-2, namespace: space-1}\nspec: {displayName: other, lifecycle: {type: docker}}\n",
        &[],
    );
    let admin = s.admin();
    for app in ["app-1", "app-2"] {
        eventually(
            &format!("{app} in the façade"),
            Duration::from_secs(20),
            || async {
                let r = s
                    .call("GET", &format!("/v3/apps/{app}/packages"), Some(&admin), None)
                    .await;
                (r.status == 200).then_some(())
            },
        )
        .await;
    }
}

/// Polls `path` until `done` holds of its body.
async fn poll(s: &CfStack, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let admin = s.admin();
    eventually(what, Duration::from_secs(30), || async {
        let r = s.call("GET", path, Some(&admin), None).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        done(&r.body).then_some(r.body)
    })
    .await
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A zip archive holding one stored (uncompressed) file.
fn zip_of(name: &str, content: &[u8]) -> Vec<u8> {
    let (crc, len, name_len) = (
        crc32(content),
        u32::try_from(content.len()).unwrap(),
        u16::try_from(name.len()).unwrap(),
    );
    let mut out = Vec::new();
    out.extend(0x0403_4b50u32.to_le_bytes());
    for v in [20u16, 0, 0, 0, 0] {
        out.extend(v.to_le_bytes());
    }
    for v in [crc, len, len] {
        out.extend(v.to_le_bytes());
    }
    out.extend(name_len.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend(name.as_bytes());
    out.extend(content);
    let central = u32::try_from(out.len()).unwrap();
    out.extend(0x0201_4b50u32.to_le_bytes());
    for v in [20u16, 20, 0, 0, 0, 0] {
        out.extend(v.to_le_bytes());
    }
    for v in [crc, len, len] {
        out.extend(v.to_le_bytes());
    }
    for v in [name_len, 0, 0, 0, 0] {
        out.extend(v.to_le_bytes());
    }
    out.extend(0u32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(name.as_bytes());
    let central_size = u32::try_from(out.len()).unwrap() - central;
    out.extend(0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, 1, 1] {
        out.extend(v.to_le_bytes());
    }
    out.extend(central_size.to_le_bytes());
    out.extend(central.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// The multipart body the cf CLI sends: `resources` then the `bits` file `package.zip`.
fn multipart(zip: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"resources\"\r\n\r\n[]\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"bits\"; filename=\"package.zip\"\r\nContent-Type: application/zip\r\n\r\n"
    )
    .into_bytes();
    body.extend(zip);
    body.extend(format!("\r\n--{BOUNDARY}--\r\n").into_bytes());
    body
}

async fn upload(s: &CfStack, url: &str, zip: &[u8]) -> Resp {
    s.raw(
        "POST",
        url,
        Some(&s.admin()),
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        multipart(zip),
    )
    .await
}

fn sha256_of(bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("kf-sha-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&dir, bytes).unwrap();
    let out = std::process::Command::new("sha256sum")
        .arg(&dir)
        .output()
        .unwrap();
    std::fs::remove_file(&dir).unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn bits_package(app: &str) -> Value {
    json!({"type": "bits", "relationships": {"app": {"data": {"guid": app}}}})
}

/// `cf push --docker-image` after apply_manifest: package READY at once, build STAGED, the
/// droplet, its lists; then `cf run-task`, `cf tasks` and a cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_push_tail_and_tasks() {
    let s = CfStack::start().await;
    space_with_apps(&s).await;
    let admin = s.admin();

    // Someone who cannot see the app is told it is invalid, not that it exists.
    let r = s
        .call(
            "POST",
            "/v3/packages",
            Some(&CfStack::token("bob")),
            Some(json!({"type": "docker", "relationships": {"app": {"data": {"guid": "app-1"}}}, "data": {"image": "nginx:1.27"}})),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(
        r.body["errors"][0]["detail"],
        "App is invalid. Ensure it exists and you have access to it."
    );

    let r = s
        .call(
            "POST",
            "/v3/packages",
            Some(&admin),
            Some(json!({"type": "docker", "relationships": {"app": {"data": {"guid": "app-1"}}}, "data": {"image": "nginx:1.27", "username": "me", "password": "secret"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["state"], "READY");
    assert_eq!(r.body["data"]["password"], "***");
    let package = r.body["guid"].as_str().unwrap().to_owned();
    let secret = s.tc.kubectl_ok(&[
        "get",
        "secret",
        &format!("{package}-registry-credentials"),
        "-n",
        "space-1",
        "-o",
        "jsonpath={.data.username}",
    ]);
    assert_eq!(
        secret.trim(),
        "bWU=",
        "the credentials Secret holds the user name"
    );

    let r = s
        .call(
            "POST",
            "/v3/builds",
            Some(&admin),
            Some(json!({"package": {"guid": package}})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["package"]["guid"], package.as_str());
    let build = r.body["guid"].as_str().unwrap().to_owned();
    let staged = poll(&s, &format!("/v3/builds/{build}"), "the build to finish", |b| {
        b["state"] != "STAGING"
    })
    .await;
    assert_eq!(staged["state"], "STAGED", "{staged}");
    assert_eq!(staged["lifecycle"]["type"], "docker");
    let droplet = staged["droplet"]["guid"].as_str().unwrap().to_owned();

    let d = poll(
        &s,
        &format!("/v3/droplets/{droplet}"),
        "the droplet to resolve",
        |d| d["state"] == "STAGED",
    )
    .await;
    assert_eq!(d["image"], "nginx:1.27");
    assert_eq!(d["relationships"]["app"]["data"]["guid"], "app-1");
    assert_eq!(d["links"]["assign_current_droplet"]["method"], "PATCH");
    let listed = s
        .call(
            "GET",
            &format!("/v3/packages/{package}/droplets?states=STAGED&per_page=1&page=1"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        listed.body["resources"][0]["guid"],
        droplet.as_str(),
        "{:?}",
        listed.body
    );
    let r = s.call("GET", "/v3/droplets/not-there", Some(&admin), None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["errors"][0]["detail"], "Droplet not found");

    // Assign the droplet (the apps endpoint's job; kubectl stands in for it here).
    s.tc.kubectl_ok(&[
        "patch",
        "cfapp",
        "app-1",
        "-n",
        "space-1",
        "--type=merge",
        "-p",
        &json!({"spec": {"currentDropletGuid": droplet}}).to_string(),
    ]);
    poll(
        &s,
        "/v3/apps/app-1/droplets?current=true",
        "the current droplet",
        |l| l["resources"][0]["guid"] == droplet.as_str(),
    )
    .await;

    // cf run-task, twice: numbered 1 and 2 within the app.
    let mut tasks = Vec::new();
    for (i, name) in ["migrate", "seed"].iter().enumerate() {
        let r = s
            .call(
                "POST",
                "/v3/apps/app-1/tasks",
                Some(&admin),
                Some(json!({"command": "sleep 300", "name": name, "memory_in_mb": 256})),
            )
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        assert_eq!(r.body["name"], *name);
        assert_eq!(r.body["sequence_id"], i + 1, "{:?}", r.body);
        assert_eq!(r.body["droplet_guid"], droplet.as_str());
        assert_eq!(r.body["memory_in_mb"], 256);
        tasks.push(r.body["guid"].as_str().unwrap().to_owned());
    }
    let r = s
        .call("GET", "/v3/apps/app-1/tasks?per_page=5000", Some(&admin), None)
        .await;
    let mut ids: Vec<i64> = r.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["sequence_id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2]);
    let r = s
        .call(
            "GET",
            "/v3/tasks?sequence_ids=2&app_guids=app-1",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.body["resources"][0]["name"], "seed", "{:?}", r.body);

    // Simulated Jobs finish at once, and a finished task cannot be cancelled.
    let finished = poll(
        &s,
        &format!("/v3/tasks/{}", tasks[0]),
        "the first task to finish",
        |t| t["state"] == "SUCCEEDED",
    )
    .await;
    assert_eq!(finished["result"]["failure_reason"], Value::Null);
    let r = s
        .call(
            "POST",
            &format!("/v3/tasks/{}/actions/cancel", tasks[0]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(
        r.body["errors"][0]["detail"],
        "Task state is SUCCEEDED and therefore cannot be canceled"
    );

    // A task on a droplet still waiting for its build stays PENDING until cancelled.
    s.tc.apply(
        "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFDroplet\nmetadata: {name: droplet-waiting, namespace: space-1}\nspec: {appGuid: app-1, buildGuid: build-elsewhere, lifecycle: docker}\n",
        &[],
    );
    poll(&s, "/v3/apps/app-1/droplets", "the waiting droplet", |l| {
        l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["guid"] == "droplet-waiting")
    })
    .await;
    let r = s
        .call(
            "POST",
            "/v3/apps/app-1/tasks",
            Some(&admin),
            Some(json!({"command": "sleep 300", "droplet_guid": "droplet-waiting"})),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["state"], "PENDING");
    assert_eq!(r.body["name"].as_str().unwrap().len(), 8, "a generated name");
    let waiting = r.body["guid"].as_str().unwrap().to_owned();
    let r = s
        .call(
            "POST",
            &format!("/v3/tasks/{waiting}/actions/cancel"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert!(
        r.body["state"] == "CANCELING" || r.body["state"] == "FAILED",
        "{:?}",
        r.body
    );
    let cancelled = poll(
        &s,
        &format!("/v3/tasks/{waiting}"),
        "the task to be cancelled",
        |t| t["state"] == "FAILED",
    )
    .await;
    assert_eq!(cancelled["result"]["failure_reason"], "task was cancelled");

    // An app without a droplet cannot run tasks, in the words the cf CLI recognises.
    let r = s
        .call(
            "POST",
            "/v3/apps/app-2/tasks",
            Some(&admin),
            Some(json!({"command": "true"})),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body["errors"][0]["detail"],
        "Task must have a droplet. Assign current droplet to app."
    );
}

/// Bits: not stageable before the upload; the upload is READY with its checksum and
/// downloads byte for byte; a second upload is refused; a build of it FAILS with the
/// controller's error; an upload over the cap is 413 and leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bits_upload_download_cap_and_failed_build() {
    let s = CfStack::start().await;
    space_with_apps(&s).await;
    let admin = s.admin();

    let r = s.call("POST", "/v3/resource_matches", Some(&admin), Some(json!({"resources": [{"path": "a", "mode": "644", "checksum": {"value": "x"}, "size_in_bytes": 1}]}))).await;
    assert_eq!(r.body, json!({"resources": []}));

    let r = s
        .call("POST", "/v3/packages", Some(&admin), Some(bits_package("app-1")))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["state"], "AWAITING_UPLOAD");
    let package = r.body["guid"].as_str().unwrap().to_owned();

    let r = s
        .call(
            "POST",
            "/v3/builds",
            Some(&admin),
            Some(json!({"package": {"guid": package}})),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.body["errors"][0]["detail"],
        "Bad request: Cannot stage package whose state is not ready."
    );

    let zip = zip_of("index.html", b"<h1>hello from kubefoundry</h1>\n");
    let r = upload(&s, &format!("/v3/packages/{package}/upload"), &zip).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "READY");
    assert_eq!(r.body["data"]["checksum"]["value"], sha256_of(&zip).as_str());
    // The controller agrees and records it in status too.
    let ready = poll(&s, &format!("/v3/packages/{package}"), "the package READY", |p| {
        p["state"] == "READY"
    })
    .await;
    assert_eq!(ready["data"]["checksum"]["type"], "sha256");
    // The API shows READY from the recorded upload at once; the controller's status follows.
    let want = format!("READY {}", zip.len());
    let status = eventually(
        "the controller's status READY",
        Duration::from_secs(20),
        || async {
            let status = s.tc.kubectl_ok(&[
                "get",
                "cfpackage",
                &package,
                "-n",
                "space-1",
                "-o",
                "jsonpath={.status.state} {.status.size}",
            ]);
            (status.trim() == want).then_some(status)
        },
    )
    .await;
    assert_eq!(status.trim(), want);

    let r = s
        .raw(
            "GET",
            &format!("/v3/packages/{package}/download"),
            Some(&admin),
            "application/json",
            vec![],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("content-length").unwrap().to_str().unwrap(),
        zip.len().to_string()
    );
    // The harness hands non-JSON bodies back as (lossy) text.
    assert_eq!(
        r.body,
        Value::String(String::from_utf8_lossy(&zip).into_owned()),
        "the download is the upload"
    );

    let r = upload(&s, &format!("/v3/packages/{package}/upload"), &zip).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"][0]["title"], "CF-PackageBitsAlreadyUploaded");

    // Buildpack staging is not supported: the build FAILS with the controller's error.
    let r = s
        .call(
            "POST",
            "/v3/builds",
            Some(&admin),
            Some(json!({"package": {"guid": package}})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let build = r.body["guid"].as_str().unwrap().to_owned();
    let failed = poll(
        &s,
        &format!("/v3/builds/{build}"),
        "the bits build to finish",
        |b| b["state"] != "STAGING",
    )
    .await;
    assert_eq!(failed["state"], "FAILED");
    assert!(
        failed["error"].as_str().unwrap().starts_with("StagingError - "),
        "{failed}"
    );
    assert_eq!(failed["droplet"], Value::Null);

    // The same cluster behind a façade with a 1 KiB cap.
    let package_dir = s.state.config.package_dir.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let small_base = format!("http://{}", listener.local_addr().unwrap());
    let small = api::state(
        s.tc.client.clone(),
        api::Config {
            base_url: small_base.clone(),
            package_dir: package_dir.clone(),
            max_upload_bytes: 1024,
            ..api::Config::default()
        },
    )
    .await;
    let server = tokio::spawn(async move {
        axum::serve(listener, api::router(small)).await.unwrap();
    });
    let r = s
        .call("POST", "/v3/packages", Some(&admin), Some(bits_package("app-1")))
        .await;
    let big = r.body["guid"].as_str().unwrap().to_owned();
    let large = zip_of("big.bin", &vec![7u8; 4096]);
    let r = upload(&s, &format!("{small_base}/v3/packages/{big}/upload"), &large).await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    assert_eq!(r.body["errors"][0]["title"], "CF-RequestEntityTooLarge");
    assert!(
        !package_dir.join(&big).exists(),
        "no bits stored for the refused upload"
    );
    let incoming: Vec<_> = std::fs::read_dir(package_dir.join(".incoming"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(incoming.is_empty(), "no temporary files left: {incoming:?}");
    let r = s
        .call("GET", &format!("/v3/packages/{big}"), Some(&admin), None)
        .await;
    assert_eq!(r.body["state"], "AWAITING_UPLOAD");
    server.abort();

    let r = s
        .call("DELETE", &format!("/v3/packages/{package}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 202);
    s.wait_job(&r.location().unwrap(), &admin).await;
    assert!(
        !package_dir.join(&package).exists(),
        "deleting a package deletes its bits"
    );
}
