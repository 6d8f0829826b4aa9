//! The pure half of the CFBuild reconciler: what staging a build comes to (a droplet, a final
//! failure, or waiting), the droplet a docker build makes, and the build's status.

use std::collections::BTreeMap;

use kube::{Resource, ResourceExt, api::ObjectMeta};

use crate::{
    controller::{Error, Result, apply::stamp, names, status},
    crd::{
        BuildState, CFApp, CFBuild, CFBuildStatus, CFDroplet, CFDropletSpec, CFPackage, CommonStatus,
        LifecycleType, PackageState, PackageType, READY,
    },
    labels::{APP_GUID, BUILD_GUID, MANAGED_BY, MANAGED_BY_VALUE, PACKAGE_GUID, SPACE_GUID},
};

/// The condition a finished build reports success or failure in.
pub const SUCCEEDED: &str = "Succeeded";

/// What staging a build comes to, when it is not waiting.
#[derive(Debug)]
pub enum Plan {
    /// Create this droplet; the build is then STAGED.
    Stage(Box<CFDroplet>),
    /// The build can never stage; final.
    Fail {
        /// CamelCase reason for the conditions.
        reason: &'static str,
        /// `status.error`, in CF's words.
        error: String,
    },
}

/// How a reconcile of a build ended, when it did not fail transiently.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The droplet exists.
    Staged {
        /// Its GUID.
        droplet: String,
    },
    /// Final failure.
    Failed {
        /// CamelCase reason.
        reason: &'static str,
        /// `status.error`.
        error: String,
    },
}

/// The labels a build is adopted with.
pub fn labels(build: &CFBuild) -> Vec<(&'static str, String)> {
    vec![
        (APP_GUID, build.spec.app_guid.clone()),
        (PACKAGE_GUID, build.spec.package_guid.clone()),
    ]
}

/// Whether the build is STAGED or FAILED: then it never changes again.
pub fn is_final(build: &CFBuild) -> bool {
    matches!(
        build.status.as_ref().and_then(|s| s.state),
        Some(BuildState::Staged | BuildState::Failed)
    )
}

fn not_supported(lifecycle: LifecycleType) -> Plan {
    let name = if lifecycle == LifecycleType::Cnb {
        "cnb"
    } else {
        "buildpack"
    };
    Plan::Fail {
        reason: "StagingNotSupported",
        error: format!(
            "StagingError - {name} staging is not supported yet: push a docker image (cf push --docker-image)"
        ),
    }
}

/// Decides what staging `build` comes to, from its package, its app and the droplet already
/// holding its droplet's name. Errors are waits: the build stays STAGING.
pub fn plan(
    build: &CFBuild,
    package: Option<&CFPackage>,
    app: Option<&CFApp>,
    existing: Option<&CFDroplet>,
) -> Result<Plan> {
    let lifecycle = build.spec.lifecycle.as_ref().map(|l| l.type_);
    // Only docker images stage; a build asking for buildpacks fails now rather than hang.
    if let Some(l @ (LifecycleType::Buildpack | LifecycleType::Cnb)) = lifecycle {
        return Ok(not_supported(l));
    }
    let package_guid = &build.spec.package_guid;
    let Some(package) = package else {
        return Err(Error::Waiting {
            reason: "PackageNotFound",
            message: format!(
                "CFPackage {package_guid:?} does not exist in this space; staging starts when it does"
            ),
        });
    };
    if package.spec.app_guid != build.spec.app_guid {
        return Ok(Plan::Fail {
            reason: "PackageOfAnotherApp",
            error: format!(
                "StagingError - package {package_guid} belongs to app {}, not to app {}",
                package.spec.app_guid, build.spec.app_guid
            ),
        });
    }
    if package.spec.type_ == PackageType::Bits {
        let app_lifecycle = app
            .map(|a| a.spec.lifecycle.type_)
            .filter(|l| *l != LifecycleType::Docker);
        return Ok(not_supported(app_lifecycle.unwrap_or(LifecycleType::Buildpack)));
    }
    let state = package.status.as_ref().and_then(|s| s.state);
    if state != Some(PackageState::Ready) {
        // The state as CF spells it (`AWAITING_UPLOAD`), which is how the CRD serializes it.
        let state = state
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_str().map(str::to_owned));
        let message = match state {
            Some(state) => format!("CFPackage {package_guid:?} is {state}, not READY"),
            None => format!("CFPackage {package_guid:?} is not READY yet"),
        };
        return Err(Error::Waiting {
            reason: "PackageNotReady",
            message,
        });
    }
    let Some(app) = app else {
        return Err(Error::Waiting {
            reason: "AppNotFound",
            message: format!("CFApp {:?} does not exist in this space", build.spec.app_guid),
        });
    };
    let name = names::droplet_of_build(&build.name_any());
    if let Some(other) = existing
        && other.spec.build_guid.as_deref() != Some(build.name_any().as_str())
    {
        return Ok(Plan::Fail {
            reason: "DropletExists",
            error: format!("StagingError - droplet {name} already exists and was not staged by this build"),
        });
    }
    Ok(Plan::Stage(Box::new(droplet(build, package, app))))
}

/// The droplet a docker build makes: the package's image and credentials, owned by the app (the
/// droplet outlives a deleted build, as CF droplets do), labelled with its whole lineage.
pub fn droplet(build: &CFBuild, package: &CFPackage, app: &CFApp) -> CFDroplet {
    let namespace = build.namespace().unwrap_or_default();
    let labels = BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (APP_GUID.to_owned(), build.spec.app_guid.clone()),
        (BUILD_GUID.to_owned(), build.name_any()),
        (PACKAGE_GUID.to_owned(), package.name_any()),
        (SPACE_GUID.to_owned(), namespace.clone()),
    ]);
    stamp(CFDroplet {
        metadata: ObjectMeta {
            name: Some(names::droplet_of_build(&build.name_any())),
            namespace: Some(namespace),
            labels: Some(labels),
            owner_references: app.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: CFDropletSpec {
            app_guid: build.spec.app_guid.clone(),
            build_guid: Some(build.name_any()),
            package_guid: Some(package.name_any()),
            lifecycle: LifecycleType::Docker,
            image: package.spec.image.clone(),
            process_types: BTreeMap::new(),
            credentials: package.spec.credentials.clone(),
        },
        status: None,
    })
}

/// The build's status for an outcome: STAGED with the droplet, FAILED with the error (both with
/// `Succeeded` and `Ready`), or STAGING with `Ready=False` saying what it waits for.
pub fn status(build: &CFBuild, outcome: &Result<Outcome>) -> CFBuildStatus {
    let current = build.status.clone().unwrap_or_default();
    let generation = build.metadata.generation;
    let want = |type_, ok, reason, message| status::Want {
        type_,
        ok,
        reason,
        message,
    };
    let (state, error, droplet_guid, wanted) = match outcome {
        Ok(Outcome::Staged { droplet }) => (
            BuildState::Staged,
            None,
            Some(droplet.clone()),
            vec![
                want(SUCCEEDED, true, "Staged", String::new()),
                want(READY, true, "Staged", String::new()),
            ],
        ),
        Ok(Outcome::Failed { reason, error }) => (
            BuildState::Failed,
            Some(error.clone()),
            None,
            vec![
                want(SUCCEEDED, false, reason, error.clone()),
                want(READY, false, reason, error.clone()),
            ],
        ),
        Err(e) => {
            let (reason, message) = e.condition();
            (
                BuildState::Staging,
                None,
                None,
                vec![want(READY, false, reason, message)],
            )
        }
    };
    CFBuildStatus {
        common: CommonStatus {
            observed_generation: generation,
            conditions: status::merge(&current.common.conditions, &wanted, generation),
        },
        state: Some(state),
        error,
        droplet_guid,
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::{Value, json};

    use super::*;
    use crate::{
        crd::{CFPackageStatus, Lifecycle, SecretRef},
        fixtures,
    };

    fn app() -> CFApp {
        let mut app = fixtures::app("app-1", "web").docker();
        app.metadata.uid = Some("uid-app-1".to_owned());
        app
    }

    fn ready(mut package: CFPackage) -> CFPackage {
        package.status = Some(CFPackageStatus {
            state: Some(PackageState::Ready),
            ..CFPackageStatus::default()
        });
        package
    }

    fn build() -> CFBuild {
        let mut build = fixtures::build("build-1", "app-1", "pkg-1");
        build.metadata.generation = Some(1);
        build
    }

    fn without_time(value: &mut Value) {
        for c in value["conditions"].as_array_mut().unwrap() {
            c.as_object_mut().unwrap().remove("lastTransitionTime");
        }
    }

    fn fail_error(plan: Result<Plan>) -> (&'static str, String) {
        match plan {
            Ok(Plan::Fail { reason, error }) => (reason, error),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    fn wait_reason(plan: Result<Plan>) -> (&'static str, String) {
        match plan {
            Err(e) => e.condition(),
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn a_docker_build_makes_the_droplet_of_the_package_image() {
        let mut package = ready(fixtures::docker_package(
            "pkg-1",
            "app-1",
            "registry.example/team/app:v2",
        ));
        package.spec.credentials = Some(SecretRef {
            name: "creds".to_owned(),
        });
        let Ok(Plan::Stage(droplet)) = plan(&build(), Some(&package), Some(&app()), None) else {
            panic!("expected a droplet");
        };
        let mut value = serde_json::to_value(&droplet).unwrap();
        value["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("kubefoundry.dev/applied-hash");
        assert_eq!(
            value,
            json!({
                "apiVersion": "kubefoundry.dev/v1alpha1",
                "kind": "CFDroplet",
                "metadata": {
                    "name": "build-1",
                    "namespace": "space-1",
                    "annotations": {},
                    "labels": {
                        "app.kubernetes.io/managed-by": "kubefoundry",
                        "kubefoundry.dev/app-guid": "app-1",
                        "kubefoundry.dev/build-guid": "build-1",
                        "kubefoundry.dev/package-guid": "pkg-1",
                        "kubefoundry.dev/space-guid": "space-1",
                    },
                    "ownerReferences": [{
                        "apiVersion": "kubefoundry.dev/v1alpha1",
                        "kind": "CFApp",
                        "name": "app-1",
                        "uid": "uid-app-1",
                        "controller": true,
                    }],
                },
                "spec": {
                    "appGuid": "app-1",
                    "buildGuid": "build-1",
                    "packageGuid": "pkg-1",
                    "lifecycle": "docker",
                    "image": "registry.example/team/app:v2",
                    "credentials": {"name": "creds"},
                },
            })
        );
    }

    #[test]
    fn a_bits_build_fails_at_once_in_cfs_words() {
        let package = fixtures::bits_package("pkg-1", "app-1");
        assert_eq!(
            fail_error(plan(&build(), Some(&package), None, None)),
            (
                "StagingNotSupported",
                "StagingError - buildpack staging is not supported yet: push a docker image (cf push --docker-image)"
                    .to_owned()
            )
        );
        let mut cnb = build();
        cnb.spec.lifecycle = Some(Lifecycle {
            type_: LifecycleType::Cnb,
            ..Lifecycle::default()
        });
        let (reason, error) = fail_error(plan(&cnb, None, None, None));
        assert_eq!(reason, "StagingNotSupported");
        assert!(
            error.starts_with("StagingError - cnb staging is not supported yet"),
            "{error}"
        );
    }

    #[test]
    fn a_package_of_another_app_fails_the_build() {
        let package = ready(fixtures::docker_package("pkg-1", "app-2", "nginx"));
        assert_eq!(
            fail_error(plan(&build(), Some(&package), Some(&app()), None)),
            (
                "PackageOfAnotherApp",
                "StagingError - package pkg-1 belongs to app app-2, not to app app-1".to_owned()
            )
        );
    }

    #[test]
    fn a_build_waits_for_its_package_and_app() {
        assert_eq!(
            wait_reason(plan(&build(), None, Some(&app()), None)),
            (
                "PackageNotFound",
                "CFPackage \"pkg-1\" does not exist in this space; staging starts when it does".to_owned()
            )
        );
        let fresh = fixtures::docker_package("pkg-1", "app-1", "nginx");
        assert_eq!(
            wait_reason(plan(&build(), Some(&fresh), Some(&app()), None)),
            (
                "PackageNotReady",
                "CFPackage \"pkg-1\" is not READY yet".to_owned()
            )
        );
        assert_eq!(
            wait_reason(plan(&build(), Some(&ready(fresh)), None, None)),
            (
                "AppNotFound",
                "CFApp \"app-1\" does not exist in this space".to_owned()
            )
        );
    }

    #[test]
    fn a_droplet_of_someone_else_is_never_taken_over() {
        let package = ready(fixtures::docker_package("pkg-1", "app-1", "nginx"));
        let squatter = fixtures::droplet("build-1", "app-1", "other");
        assert_eq!(
            fail_error(plan(&build(), Some(&package), Some(&app()), Some(&squatter))).0,
            "DropletExists"
        );
        let Ok(Plan::Stage(ours)) = plan(&build(), Some(&package), Some(&app()), None) else {
            panic!()
        };
        assert!(matches!(
            plan(&build(), Some(&package), Some(&app()), Some(&ours)),
            Ok(Plan::Stage(_))
        ));
    }

    #[test]
    fn status_of_a_staged_build() {
        let mut value = serde_json::to_value(status(
            &build(),
            &Ok(Outcome::Staged {
                droplet: "build-1".to_owned(),
            }),
        ))
        .unwrap();
        without_time(&mut value);
        assert_eq!(
            value,
            json!({
                "observedGeneration": 1,
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Staged", "message": "", "observedGeneration": 1},
                    {"type": "Succeeded", "status": "True", "reason": "Staged", "message": "", "observedGeneration": 1},
                ],
                "state": "STAGED",
                "dropletGuid": "build-1",
            })
        );
    }

    #[test]
    fn status_of_a_failed_build() {
        let error = "StagingError - no".to_owned();
        let mut value = serde_json::to_value(status(
            &build(),
            &Ok(Outcome::Failed {
                reason: "StagingNotSupported",
                error: error.clone(),
            }),
        ))
        .unwrap();
        without_time(&mut value);
        assert_eq!(
            value,
            json!({
                "observedGeneration": 1,
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "StagingNotSupported", "message": error, "observedGeneration": 1},
                    {"type": "Succeeded", "status": "False", "reason": "StagingNotSupported", "message": error, "observedGeneration": 1},
                ],
                "state": "FAILED",
                "error": error,
            })
        );
    }

    #[test]
    fn status_of_a_waiting_build() {
        let waiting = Err(Error::Waiting {
            reason: "PackageNotFound",
            message: "where".to_owned(),
        });
        let mut value = serde_json::to_value(status(&build(), &waiting)).unwrap();
        without_time(&mut value);
        assert_eq!(
            value,
            json!({
                "observedGeneration": 1,
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "PackageNotFound", "message": "where", "observedGeneration": 1},
                ],
                "state": "STAGING",
            })
        );
    }

    #[test]
    fn staged_and_failed_builds_are_final() {
        let mut b = build();
        assert!(!is_final(&b));
        b.status = Some(status(
            &b,
            &Err(Error::Waiting {
                reason: "X",
                message: String::new(),
            }),
        ));
        assert!(!is_final(&b));
        b.status = Some(status(
            &b,
            &Ok(Outcome::Staged {
                droplet: "d".to_owned(),
            }),
        ));
        assert!(is_final(&b));
        assert_eq!(
            labels(&b),
            vec![
                ("kubefoundry.dev/app-guid", "app-1".to_owned()),
                ("kubefoundry.dev/package-guid", "pkg-1".to_owned())
            ]
        );
    }
}
