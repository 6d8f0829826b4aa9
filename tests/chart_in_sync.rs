//! The Helm chart ships copies of generated files: its `crds/` must equal `crds/`, its CF
//! ClusterRoles must equal what `kubefoundry rbac` prints (what the controller applies), and its
//! `appVersion` must be this crate's version. `deploy/` is checked against the chart by the
//! Python suite (it needs Helm to render).

#![allow(clippy::unwrap_used, clippy::panic)]

use std::{collections::BTreeSet, path::Path};

const REGENERATE: &str = "run `scripts/render-deploy.sh` (or `just deploy`) and commit the result";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn file_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{} is missing ({e}); {REGENERATE}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn chart_crds_are_the_crds_dir() {
    let (source, chart) = (repo().join("crds"), repo().join("charts/kubefoundry/crds"));
    let expected = file_names(&source);
    assert_eq!(
        file_names(&chart),
        expected,
        "charts/kubefoundry/crds/ lists other files than crds/; {REGENERATE}"
    );
    for file in &expected {
        let want = std::fs::read_to_string(source.join(file)).unwrap();
        let got = std::fs::read_to_string(chart.join(file)).unwrap();
        assert!(
            got == want,
            "charts/kubefoundry/crds/{file} differs from crds/{file}; {REGENERATE}"
        );
    }
}

#[test]
fn chart_cf_cluster_roles_are_what_the_controller_applies() {
    let path = repo().join("charts/kubefoundry/files/cf-cluster-roles.yaml");
    let shipped = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is missing ({e}); {REGENERATE}", path.display()));
    let generated = kubefoundry::controller::role::cluster_roles::all_yaml().unwrap();
    assert!(
        shipped == generated,
        "charts/kubefoundry/files/cf-cluster-roles.yaml differs from `kubefoundry rbac`; {REGENERATE}"
    );
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let chart = std::fs::read_to_string(repo().join("charts/kubefoundry/Chart.yaml")).unwrap();
    let chart: serde_yaml::Value = serde_yaml::from_str(&chart).unwrap();
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "Chart.yaml appVersion must be the kubefoundry version (the default image tag)"
    );
}
