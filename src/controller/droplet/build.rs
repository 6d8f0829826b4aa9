//! The pure half of the CFDroplet reconciler: where a droplet's image comes from, the image pull
//! Secret made from its registry credentials, and its status.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{Resource, ResourceExt, api::ObjectMeta};
use serde_json::json;

use crate::{
    controller::{Error, Result, apply::stamp, names, status},
    crd::{
        BuildState, CFBuild, CFDroplet, CFDropletStatus, CommonStatus, DropletState, LifecycleType, READY,
    },
    labels::{APP_GUID, BUILD_GUID, MANAGED_BY, MANAGED_BY_VALUE, PACKAGE_GUID, SPACE_GUID},
};

/// The port a droplet's processes listen on unless told otherwise (CF's `PORT`).
pub const DEFAULT_PORT: i32 = 8080;

/// The `auths` key of images on Docker Hub, as `docker login` writes it.
pub const DOCKER_HUB: &str = "https://index.docker.io/v1/";

/// Where a droplet's image comes from, when it does not have to wait.
#[derive(Debug, PartialEq)]
pub enum Source {
    /// Run this image.
    Image(String),
    /// The droplet will never have an image; final for its (immutable) spec.
    Failed {
        /// CamelCase reason.
        reason: &'static str,
        /// `status.error`.
        error: String,
    },
}

/// How a droplet's reconcile ended, when it did not wait.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Runnable: this image, pulled with this Secret if any.
    Staged {
        /// The image.
        image: String,
        /// The image pull Secret, when the droplet has credentials.
        pull_secret: Option<String>,
    },
    /// Unusable.
    Failed {
        /// CamelCase reason.
        reason: &'static str,
        /// `status.error`.
        error: String,
    },
}

/// The labels a droplet is adopted with: its app and, where known, its build and package.
pub fn labels(droplet: &CFDroplet) -> Vec<(&'static str, String)> {
    let mut labels = vec![(APP_GUID, droplet.spec.app_guid.clone())];
    labels.extend(droplet.spec.build_guid.clone().map(|b| (BUILD_GUID, b)));
    labels.extend(droplet.spec.package_guid.clone().map(|p| (PACKAGE_GUID, p)));
    labels
}

/// The droplet's image: its own, else its build's result. Only docker builds stage, and they
/// make droplets with an image, so a droplet without one can only wait for its build or fail
/// with it.
pub fn source(droplet: &CFDroplet, build: Option<&CFBuild>) -> Result<Source> {
    if let Some(image) = &droplet.spec.image {
        return Ok(Source::Image(image.clone()));
    }
    let build_guid = droplet.spec.build_guid.clone().unwrap_or_default();
    let status = build.and_then(|b| b.status.as_ref());
    match status.and_then(|s| s.state) {
        Some(BuildState::Failed) => Ok(Source::Failed {
            reason: "BuildFailed",
            error: status
                .and_then(|s| s.error.clone())
                .unwrap_or_else(|| format!("build {build_guid} failed")),
        }),
        Some(BuildState::Staged) => Ok(Source::Failed {
            reason: "NoImage",
            error: format!("StagingError - build {build_guid} staged, but this droplet names no image"),
        }),
        _ => Err(Error::Waiting {
            reason: "BuildNotStaged",
            message: format!("waiting for CFBuild {build_guid:?} to stage this droplet's image"),
        }),
    }
}

/// The registry an image reference names, as a key of a docker config's `auths`. Follows
/// docker's own rule (`splitDockerDomain`): the first path component is a registry only when it
/// has a `.` or `:` or is `localhost`; otherwise the image is on Docker Hub.
pub fn registry_host(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            if matches!(first, "docker.io" | "index.docker.io" | "registry-1.docker.io") {
                DOCKER_HUB.to_owned()
            } else {
                first.to_owned()
            }
        }
        _ => DOCKER_HUB.to_owned(),
    }
}

/// The `username` and `password` of a credentials Secret.
pub fn credentials(secret: &Secret) -> Result<(String, String)> {
    let name = secret.name_any();
    let key = |k: &str| {
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .ok_or_else(|| Error::Invalid {
                reason: "InvalidCredentials",
                message: format!(
                    "Secret {name:?} has no {k:?} key; registry credentials need `username` and `password`"
                ),
            })?;
        String::from_utf8(value.0.clone()).map_err(|_| Error::Invalid {
            reason: "InvalidCredentials",
            message: format!("the {k:?} of Secret {name:?} is not UTF-8"),
        })
    };
    Ok((key("username")?, key("password")?))
}

/// `username:password` in base64, the `auth` of a docker config entry; k8s-openapi's
/// `ByteString` serializes bytes as exactly that.
fn basic_auth(username: &str, password: &str) -> String {
    match serde_json::to_value(ByteString(format!("{username}:{password}").into_bytes())) {
        Ok(serde_json::Value::String(encoded)) => encoded,
        _ => String::new(),
    }
}

/// The `kubernetes.io/dockerconfigjson` Secret pods of the droplet pull its image with, in the
/// layout `kubectl create secret docker-registry` writes; owned by the droplet.
pub fn pull_secret(droplet: &CFDroplet, image: &str, username: &str, password: &str) -> Secret {
    let config = json!({
        "auths": {
            registry_host(image): {
                "username": username,
                "password": password,
                "auth": basic_auth(username, password),
            },
        },
    });
    let namespace = droplet.namespace().unwrap_or_default();
    let labels = BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (APP_GUID.to_owned(), droplet.spec.app_guid.clone()),
        (SPACE_GUID.to_owned(), namespace.clone()),
    ]);
    stamp(Secret {
        metadata: ObjectMeta {
            name: Some(names::image_pull_secret(&droplet.name_any())),
            namespace: Some(namespace),
            labels: Some(labels),
            owner_references: droplet.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_owned(),
            ByteString(config.to_string().into_bytes()),
        )])),
        ..Secret::default()
    })
}

/// The process types a droplet runs: its own, over `web` with the image's entrypoint (`""`) for
/// docker droplets, whose images declare no Procfile.
pub fn process_types(droplet: &CFDroplet) -> BTreeMap<String, String> {
    let mut types = BTreeMap::new();
    if droplet.spec.lifecycle == LifecycleType::Docker {
        types.insert("web".to_owned(), String::new());
    }
    types.extend(droplet.spec.process_types.clone());
    types
}

/// The droplet's status. Its fields come from `staged`; while it waits they keep their last
/// values (a droplet once STAGED stays runnable while, say, its credentials Secret is briefly
/// missing). `Ready` reports the first of `staged` and `adoption` that is not fine.
pub fn status(droplet: &CFDroplet, staged: &Result<Outcome>, adoption: &Result<()>) -> CFDropletStatus {
    let current = droplet.status.clone().unwrap_or_default();
    let generation = droplet.metadata.generation;
    let fields = match staged {
        Ok(Outcome::Staged { image, pull_secret }) => CFDropletStatus {
            state: Some(DropletState::Staged),
            image: Some(image.clone()),
            process_types: process_types(droplet),
            ports: vec![DEFAULT_PORT],
            stack: None,
            image_pull_secret_name: pull_secret.clone(),
            error: None,
            ..CFDropletStatus::default()
        },
        Ok(Outcome::Failed { error, .. }) => CFDropletStatus {
            state: Some(DropletState::Failed),
            error: Some(error.clone()),
            ..CFDropletStatus::default()
        },
        Err(_) => CFDropletStatus {
            common: CommonStatus::default(),
            ..current.clone()
        },
    };
    let (ok, reason, message) = match (staged, adoption) {
        (Err(e), _) | (Ok(_), Err(e)) => {
            let (reason, message) = e.condition();
            (false, reason, message)
        }
        (Ok(Outcome::Failed { reason, error }), Ok(())) => (false, *reason, error.clone()),
        (Ok(Outcome::Staged { .. }), Ok(())) => (true, "Staged", String::new()),
    };
    let want = status::Want {
        type_: READY,
        ok,
        reason,
        message,
    };
    CFDropletStatus {
        common: CommonStatus {
            observed_generation: generation,
            conditions: status::merge(&current.common.conditions, &[want], generation),
        },
        ..fields
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::Value;

    use super::*;
    use crate::{
        crd::{CFBuildStatus, SecretRef},
        fixtures,
    };

    fn droplet() -> CFDroplet {
        let mut droplet = fixtures::droplet("drop-1", "app-1", "nginx:1.27");
        droplet.spec.process_types.clear();
        droplet.metadata.generation = Some(1);
        droplet.metadata.uid = Some("uid-drop-1".to_owned());
        droplet
    }

    fn json_of(status: &CFDropletStatus) -> Value {
        let mut value = serde_json::to_value(status).unwrap();
        for c in value["conditions"].as_array_mut().unwrap() {
            c.as_object_mut().unwrap().remove("lastTransitionTime");
        }
        value
    }

    fn secret(data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("creds".to_owned()),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn registry_hosts_follow_dockers_rule() {
        for (image, host) in [
            ("nginx", DOCKER_HUB),
            ("nginx:1.27", DOCKER_HUB),
            ("library/nginx@sha256:abc", DOCKER_HUB),
            ("team/app:v1", DOCKER_HUB),
            ("docker.io/team/app", DOCKER_HUB),
            ("index.docker.io/team/app", DOCKER_HUB),
            ("ghcr.io/org/app:v1", "ghcr.io"),
            (
                "registry.example.com:5000/team/app:v2",
                "registry.example.com:5000",
            ),
            ("localhost/app", "localhost"),
            ("localhost:5000/app", "localhost:5000"),
        ] {
            assert_eq!(registry_host(image), host, "{image}");
        }
    }

    #[test]
    fn the_pull_secret_is_a_docker_config_for_the_images_registry() {
        let secret = pull_secret(
            &droplet(),
            "registry.example.com:5000/team/app:v2",
            "alice",
            "s3cret",
        );
        let mut value = serde_json::to_value(&secret).unwrap();
        value["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("kubefoundry.dev/applied-hash");
        let config: Value =
            serde_json::from_slice(&secret.data.as_ref().unwrap()[".dockerconfigjson"].0).unwrap();
        value["data"][".dockerconfigjson"] = config;
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "drop-1-image-pull",
                    "namespace": "space-1",
                    "annotations": {},
                    "labels": {
                        "app.kubernetes.io/managed-by": "kubefoundry",
                        "kubefoundry.dev/app-guid": "app-1",
                        "kubefoundry.dev/space-guid": "space-1",
                    },
                    "ownerReferences": [{
                        "apiVersion": "kubefoundry.dev/v1alpha1",
                        "kind": "CFDroplet",
                        "name": "drop-1",
                        "uid": "uid-drop-1",
                        "controller": true,
                    }],
                },
                "type": "kubernetes.io/dockerconfigjson",
                "data": {
                    ".dockerconfigjson": {
                        "auths": {
                            "registry.example.com:5000": {
                                "username": "alice",
                                "password": "s3cret",
                                "auth": "YWxpY2U6czNjcmV0",
                            },
                        },
                    },
                },
            })
        );
    }

    #[test]
    fn credentials_need_username_and_password() {
        assert_eq!(
            credentials(&secret(&[("username", "u"), ("password", "p")])).unwrap(),
            ("u".to_owned(), "p".to_owned())
        );
        let Err(e) = credentials(&secret(&[("username", "u")])) else {
            panic!()
        };
        assert!(e.is_permanent());
        assert_eq!(
            e.condition(),
            (
                "InvalidCredentials",
                "Secret \"creds\" has no \"password\" key; registry credentials need `username` and `password`"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_docker_droplet_is_staged_with_web_and_the_default_port() {
        let mut d = droplet();
        d.spec.credentials = Some(SecretRef {
            name: "creds".to_owned(),
        });
        d.spec
            .process_types
            .insert("worker".to_owned(), "bin/work".to_owned());
        let staged = Ok(Outcome::Staged {
            image: "nginx:1.27".to_owned(),
            pull_secret: Some("drop-1-image-pull".to_owned()),
        });
        assert_eq!(
            json_of(&status(&d, &staged, &Ok(()))),
            json!({
                "observedGeneration": 1,
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Staged", "message": "", "observedGeneration": 1},
                ],
                "state": "STAGED",
                "image": "nginx:1.27",
                "processTypes": {"web": "", "worker": "bin/work"},
                "ports": [8080],
                "imagePullSecretName": "drop-1-image-pull",
            })
        );
    }

    #[test]
    fn a_buildpack_droplet_keeps_only_its_own_process_types() {
        let mut d = droplet();
        d.spec.lifecycle = LifecycleType::Buildpack;
        d.spec
            .process_types
            .insert("web".to_owned(), "bundle exec rackup".to_owned());
        assert_eq!(
            process_types(&d),
            BTreeMap::from([("web".to_owned(), "bundle exec rackup".to_owned())])
        );
    }

    /// Waiting changes only `Ready`: a droplet that was STAGED keeps its fields.
    #[test]
    fn a_waiting_droplet_keeps_its_last_fields() {
        let mut d = droplet();
        let staged = Ok(Outcome::Staged {
            image: "nginx:1.27".to_owned(),
            pull_secret: None,
        });
        d.status = Some(status(&d, &staged, &Ok(())));
        let missing = Err(Error::Waiting {
            reason: "CredentialsNotFound",
            message: "no creds".to_owned(),
        });
        assert_eq!(
            json_of(&status(&d, &missing, &Ok(()))),
            json!({
                "observedGeneration": 1,
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "CredentialsNotFound", "message": "no creds", "observedGeneration": 1},
                ],
                "state": "STAGED",
                "image": "nginx:1.27",
                "processTypes": {"web": ""},
                "ports": [8080],
            })
        );
        // Without a past, a waiting droplet has no state yet.
        let fresh = droplet();
        let missing = Err(Error::Waiting {
            reason: "CredentialsNotFound",
            message: "no creds".to_owned(),
        });
        assert_eq!(json_of(&status(&fresh, &missing, &Ok(())))["state"], Value::Null);
    }

    #[test]
    fn a_droplet_without_its_app_is_staged_but_not_ready() {
        let staged = Ok(Outcome::Staged {
            image: "nginx:1.27".to_owned(),
            pull_secret: None,
        });
        let adoption = Err(Error::Waiting {
            reason: "AppNotFound",
            message: "no app".to_owned(),
        });
        let value = json_of(&status(&droplet(), &staged, &adoption));
        assert_eq!(value["state"], "STAGED");
        assert_eq!(
            value["conditions"],
            json!([{"type": "Ready", "status": "False", "reason": "AppNotFound", "message": "no app", "observedGeneration": 1}])
        );
    }

    #[test]
    fn a_droplet_without_an_image_follows_its_build() {
        let mut d = droplet();
        d.spec.image = None;
        d.spec.build_guid = Some("build-1".to_owned());
        let Err(e) = source(&d, None) else { panic!() };
        assert_eq!(
            e.condition(),
            (
                "BuildNotStaged",
                "waiting for CFBuild \"build-1\" to stage this droplet's image".to_owned()
            )
        );
        let mut build = fixtures::build("build-1", "app-1", "pkg-1");
        build.status = Some(CFBuildStatus {
            state: Some(BuildState::Failed),
            error: Some("StagingError - boom".to_owned()),
            ..CFBuildStatus::default()
        });
        let failed = source(&d, Some(&build)).unwrap();
        assert_eq!(
            failed,
            Source::Failed {
                reason: "BuildFailed",
                error: "StagingError - boom".to_owned()
            }
        );
        let outcome = Ok(Outcome::Failed {
            reason: "BuildFailed",
            error: "StagingError - boom".to_owned(),
        });
        assert_eq!(
            json_of(&status(&d, &outcome, &Ok(()))),
            json!({
                "observedGeneration": 1,
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "BuildFailed", "message": "StagingError - boom", "observedGeneration": 1},
                ],
                "state": "FAILED",
                "error": "StagingError - boom",
            })
        );
        assert_eq!(
            source(&droplet(), None).unwrap(),
            Source::Image("nginx:1.27".to_owned())
        );
    }

    #[test]
    fn droplets_are_labelled_with_their_lineage() {
        let mut d = droplet();
        assert_eq!(labels(&d), vec![("kubefoundry.dev/app-guid", "app-1".to_owned())]);
        d.spec.build_guid = Some("b".to_owned());
        d.spec.package_guid = Some("p".to_owned());
        assert_eq!(
            labels(&d),
            vec![
                ("kubefoundry.dev/app-guid", "app-1".to_owned()),
                ("kubefoundry.dev/build-guid", "b".to_owned()),
                ("kubefoundry.dev/package-guid", "p".to_owned()),
            ]
        );
    }
}
