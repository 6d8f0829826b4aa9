//! The e2e harness: a simulated cluster per test, with a kubeconfig on disk for kubectl and
//! Helm, a kube-rs client, and a fresh namespace, so suites run in parallel without sharing state.

// A test harness fails loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod cf;

use std::{path::PathBuf, process::Output, time::Duration};

use kubefoundry_sim::{Config, Options, Running};

/// A simulated cluster for one test, plus the files real clients need.
pub struct TestCluster {
    /// The running server.
    pub sim: Running,
    /// Admin kubeconfig path.
    pub kubeconfig: PathBuf,
    /// Scratch directory (kubeconfig, kubectl cache, manifests).
    pub dir: PathBuf,
    /// An admin kube-rs client.
    pub client: kube::Client,
}

/// Fast timings so workloads settle in well under a second.
pub fn fast_config() -> Config {
    Config {
        pod_start_delay: Duration::from_millis(50),
        job_run_time: Duration::from_millis(200),
        bookmark_interval: Duration::from_secs(1),
        ..Config::default()
    }
}

impl TestCluster {
    /// Starts a plain-HTTP simulated cluster on an ephemeral port.
    pub async fn start() -> Self {
        Self::start_with(Options {
            config: fast_config(),
            ..Options::default()
        })
        .await
    }

    /// Starts a simulated cluster with `options`.
    pub async fn start_with(options: Options) -> Self {
        let sim = kubefoundry_sim::start(options)
            .await
            .expect("simulated cluster starts");
        let dir = std::env::temp_dir().join(format!("kf-e2e-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let kubeconfig = dir.join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig).expect("kubeconfig written");
        let client = sim.client().await.expect("kube client");
        Self {
            sim,
            kubeconfig,
            dir,
            client,
        }
    }

    /// Runs kubectl against this cluster (own discovery cache, so clusters never mix).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Runs kubectl with `stdin` piped in (for `apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write as _;
        let mut cmd = std::process::Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.join("cache"))
            .env("HOME", &self.dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("kubectl is installed (scripts/test installs it)");
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("kubectl runs")
    }

    /// Runs kubectl and returns stdout, failing the test with stderr if it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure, returning stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail, printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Applies YAML from a string with kubectl (`extra` adds flags such as `--server-side`).
    pub fn apply(&self, yaml: &str, extra: &[&str]) -> Output {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.kubectl_stdin(&args, Some(yaml))
    }

    /// Installs kubefoundry's CRDs and waits until they are served.
    pub async fn install_crds(&self) {
        use kube::api::{Api, PostParams};
        let crds: Api<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        > = Api::all(self.client.clone());
        for crd in kubefoundry::crd::all() {
            crds.create(&PostParams::default(), &crd)
                .await
                .expect("CRD accepted");
        }
    }

    /// A cluster with kubefoundry's CRDs and the root namespace `cf`.
    pub async fn with_cf(options: Options) -> Self {
        let tc = Self::start_with(options).await;
        tc.install_crds().await;
        tc.kubectl_ok(&["create", "namespace", "cf"]);
        tc
    }

    /// Runs `kubefoundry controller` in-process against this cluster until stopped.
    pub fn start_controller(&self, config: kubefoundry::controller::Config) -> RunningController {
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let client = self.client.clone();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            kubefoundry::controller::run(client, config, shutdown)
                .await
                .expect("controller runs");
        });
        RunningController { task, stop }
    }

    /// Applies YAML until every object is accepted, as GitOps tools re-apply: objects whose
    /// namespace the controller has not made yet are rejected until it has.
    pub async fn apply_until_accepted(&self, yaml: &str, extra: &[&str]) {
        eventually("the YAML to be accepted", Duration::from_secs(20), || async {
            self.apply(yaml, extra).status.success().then_some(())
        })
        .await;
    }

    /// Waits until a whole second passes with no write request other than Lease renewals (at
    /// most 20 s): a fixed pause before counting writes is too short on a loaded machine.
    pub async fn quiesce(&self) {
        let writes = || {
            self.sim
                .cluster
                .requests
                .writes_except(|resource| resource == "leases")
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let before = writes();
            tokio::time::sleep(Duration::from_secs(1)).await;
            if writes() == before || tokio::time::Instant::now() > deadline {
                return;
            }
        }
    }

    /// Creates a namespace with a random name and returns it.
    pub fn temp_namespace(&self) -> String {
        let name = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        self.kubectl_ok(&["create", "namespace", &name]);
        name
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A controller started by [`TestCluster::start_controller`].
pub struct RunningController {
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl RunningController {
    /// Shuts it down gracefully (it releases its Lease) and waits up to 10 s for it to end.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Controller settings for tests: this replica identity, and no periodic resync, so only
/// watches drive reconciles (a resync would hide missed events).
pub fn controller_config(identity: &str) -> kubefoundry::controller::Config {
    kubefoundry::controller::Config {
        identity: identity.to_owned(),
        resync: Duration::from_secs(3600),
        ..kubefoundry::controller::Config::default()
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
