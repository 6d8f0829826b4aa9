//! `/v3/builds`: staging a package into a droplet. A build is a CFBuild the controller stages:
//! a docker package's build is STAGED at once with its droplet; buildpack staging is not
//! supported yet, so such a build ends FAILED with the controller's error, never stuck STAGING.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use kube::{ResourceExt, runtime::reflector::Store};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    apps::lifecycle_json,
    metadata,
    packages::current_state,
    resource::{self, Caller, CfKind, Cx, to_one},
    timestamps,
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        body::{Guid, MetadataBody, parse},
    },
    controller::podspec::{DEFAULT_DISK_MB, DEFAULT_MEMORY_MB},
    crd::{
        BuildState, CFApp, CFBuild, CFBuildSpec, CFPackage, Lifecycle, LifecycleType, PackageState,
        PackageType,
    },
};

/// Who asked for a build (CC's `created_by`), recorded at creation.
const CREATED_BY: &str = "kubefoundry.dev/created-by";

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/v3/builds", get(list).post(create)).route(
        "/v3/builds/{guid}",
        get(resource::show::<CFBuild>).patch(resource::update_metadata::<CFBuild>),
    )
}

fn state_name(state: Option<BuildState>) -> &'static str {
    match state {
        None | Some(BuildState::Staging) => "STAGING",
        Some(BuildState::Staged) => "STAGED",
        Some(BuildState::Failed) => "FAILED",
    }
}

/// The lifecycle a build stages with: its own, else a docker package's, else its app's.
fn lifecycle(build: &CFBuild, caches: &Caches) -> Lifecycle {
    if let Some(l) = &build.spec.lifecycle {
        return l.clone();
    }
    let ns = build.namespace();
    let in_space = |name: &str, o_name: Option<&String>, o_ns: Option<&String>| {
        o_name.map(String::as_str) == Some(name) && o_ns == ns.as_ref()
    };
    let docker = caches
        .packages
        .find(|p| {
            in_space(
                &build.spec.package_guid,
                p.metadata.name.as_ref(),
                p.metadata.namespace.as_ref(),
            )
        })
        .is_some_and(|p| p.spec.type_ == PackageType::Docker);
    if docker {
        return Lifecycle {
            type_: LifecycleType::Docker,
            ..Lifecycle::default()
        };
    }
    caches
        .apps
        .find(|a| {
            in_space(
                &build.spec.app_guid,
                a.metadata.name.as_ref(),
                a.metadata.namespace.as_ref(),
            )
        })
        .map(|a| a.spec.lifecycle.clone())
        .unwrap_or_default()
}

impl CfKind for CFBuild {
    const KIND: &'static str = "Build";
    const FILTERS: &'static [&'static str] = &["app_guids", "package_guids", "states"];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.builds
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let (created_at, updated_at) = timestamps(&self.metadata);
        let status = self.status.clone().unwrap_or_default();
        let app = &self.spec.app_guid;
        let user = self.annotations().get(CREATED_BY).cloned().unwrap_or_default();
        let mut links = json!({
            "self": cx.link(&format!("/v3/builds/{guid}")),
            "app": cx.link(&format!("/v3/apps/{app}")),
        });
        if let Some(d) = &status.droplet_guid {
            links["droplet"] = cx.link(&format!("/v3/droplets/{d}"));
        }
        json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "created_by": {"guid": user, "name": user, "email": ""},
            "state": state_name(status.state),
            "staging_memory_in_mb": self.spec.staging_memory_in_mb.unwrap_or(DEFAULT_MEMORY_MB),
            "staging_disk_in_mb": self.spec.staging_disk_in_mb.unwrap_or(DEFAULT_DISK_MB),
            "staging_log_rate_limit_bytes_per_second":
                self.spec.staging_log_rate_limit_bytes_per_second.unwrap_or(-1),
            "error": status.error,
            "lifecycle": lifecycle_json(&lifecycle(self, cx.caches)),
            "package": {"guid": self.spec.package_guid},
            "droplet": status.droplet_guid.as_ref().map(|d| json!({"guid": d})),
            "relationships": {"app": to_one(Some(app))},
            "metadata": metadata(&self.metadata),
            "links": links,
        })
    }

    fn filter(&self, key: &str, values: &[String], _cx: &Cx<'_>) -> bool {
        match key {
            "app_guids" => values.contains(&self.spec.app_guid),
            "package_guids" => values.contains(&self.spec.package_guid),
            "states" => values
                .iter()
                .any(|v| v == state_name(self.status.as_ref().and_then(|s| s.state))),
            _ => true,
        }
    }
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    resource::list::<CFBuild>(&state, &caller, raw.as_deref(), "/v3/builds", |_| true)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    package: Guid,
    #[serde(default)]
    lifecycle: Option<LifecycleBody>,
    #[serde(default)]
    staging_memory_in_mb: Option<i64>,
    #[serde(default)]
    staging_disk_in_mb: Option<i64>,
    #[serde(default)]
    staging_log_rate_limit_bytes_per_second: Option<i64>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleBody {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default)]
    data: Option<LifecycleData>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LifecycleData {
    #[serde(default)]
    buildpacks: Option<Vec<String>>,
    #[serde(default)]
    stack: Option<String>,
    /// Registry credentials for buildpacks; accepted and unused (no buildpack staging yet).
    #[serde(default)]
    #[allow(dead_code)]
    credentials: Option<Value>,
}

fn lifecycle_of(body: LifecycleBody) -> CfResult<Lifecycle> {
    let type_ = match body.type_.as_str() {
        "buildpack" => LifecycleType::Buildpack,
        "cnb" => LifecycleType::Cnb,
        "docker" => LifecycleType::Docker,
        _ => {
            return Err(CfError::Unprocessable(
                "Lifecycle type is not included in the list: buildpack, docker, cnb".into(),
            ));
        }
    };
    let data = body.data.unwrap_or_default();
    if type_ == LifecycleType::Docker && (data.buildpacks.is_some() || data.stack.is_some()) {
        return Err(CfError::Unprocessable(
            "Lifecycle data must be empty for docker".into(),
        ));
    }
    Ok(Lifecycle {
        type_,
        buildpacks: data.buildpacks.unwrap_or_default(),
        stack: data.stack,
    })
}

fn positive(value: Option<i64>, field: &str) -> CfResult<()> {
    match value {
        Some(v) if v < 1 => Err(CfError::Unprocessable(format!("{field} must be greater than 0"))),
        _ => Ok(()),
    }
}

async fn create(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: CreateBody = parse(&body)?;
    if let Some(m) = &body.metadata {
        m.check()?;
    }
    positive(body.staging_memory_in_mb, "Staging memory in mb")?;
    positive(body.staging_disk_in_mb, "Staging disk in mb")?;
    if body
        .staging_log_rate_limit_bytes_per_second
        .is_some_and(|v| v < -1)
    {
        return Err(CfError::Unprocessable(
            "Staging log rate limit bytes per second must be greater than or equal to -1".into(),
        ));
    }
    let lifecycle = body.lifecycle.map(lifecycle_of).transpose()?;
    let package = resource::find::<CFPackage>(&state, &caller, &body.package.guid).map_err(|_| {
        CfError::Unprocessable(
            "Unable to use package. Ensure that the package exists and you have access to it.".into(),
        )
    })?;
    if current_state(&package) != PackageState::Ready {
        // The exact text the cf CLI turns into its InvalidStateError.
        return Err(CfError::BadRequest(
            "Cannot stage package whose state is not ready.".into(),
        ));
    }
    let namespace = package.namespace().unwrap_or_default();
    if resource::lookup::<CFApp>(&state.caches, &package.spec.app_guid)
        .is_none_or(|a| a.namespace().as_deref() != Some(namespace.as_str()))
    {
        return Err(CfError::Unprocessable(
            "Unable to use package. Ensure that the package exists and you have access to it.".into(),
        ));
    }
    let guid = resource::new_guid();
    let mut build = CFBuild::new(
        &guid,
        CFBuildSpec {
            app_guid: package.spec.app_guid.clone(),
            package_guid: package.name_any(),
            lifecycle,
            staging_memory_in_mb: body.staging_memory_in_mb,
            staging_disk_in_mb: body.staging_disk_in_mb,
            staging_log_rate_limit_bytes_per_second: body.staging_log_rate_limit_bytes_per_second,
        },
    );
    build.metadata.namespace = Some(namespace);
    if let Some(m) = &body.metadata {
        m.apply_to(&mut build.metadata);
    }
    build
        .annotations_mut()
        .insert(CREATED_BY.to_owned(), caller.who.name.clone());
    let created = resource::create(&state, &caller, &build).await?;
    Ok((StatusCode::CREATED, Json(created.present(&Cx::new(&state)))).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use pretty_assertions::assert_eq;

    use super::*;
    use crate::{
        api::v3::packages::testing,
        crd::{CFBuildStatus, CFPackageStatus},
        fixtures,
    };

    fn ready_docker_package() -> CFPackage {
        let mut p = fixtures::docker_package("pkg-1", "app-1", "nginx");
        p.status = Some(CFPackageStatus {
            state: Some(PackageState::Ready),
            ..CFPackageStatus::default()
        });
        p
    }

    #[test]
    fn a_staging_build_of_a_docker_package() {
        let caches = testing::caches(vec![], vec![], vec![ready_docker_package()], vec![]);
        let mut build = fixtures::build("b-1", "app-1", "pkg-1");
        build.annotations_mut().insert(CREATED_BY.into(), "alice".into());
        let v = testing::with_cx(&caches, |cx| build.present(cx));
        assert_eq!(v["state"], "STAGING");
        assert_eq!(v["droplet"], Value::Null);
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["package"], json!({"guid": "pkg-1"}));
        assert_eq!(v["lifecycle"], json!({"type": "docker", "data": {}}));
        assert_eq!(
            v["created_by"],
            json!({"guid": "alice", "name": "alice", "email": ""})
        );
        assert_eq!(v["relationships"]["app"], json!({"data": {"guid": "app-1"}}));
        assert_eq!(v["staging_memory_in_mb"], 1024);
        assert_eq!(v["staging_log_rate_limit_bytes_per_second"], -1);
        assert_eq!(v["metadata"]["annotations"], json!({}));
        assert_eq!(
            v["links"],
            json!({
                "self": {"href": "https://api.example.org/v3/builds/b-1"},
                "app": {"href": "https://api.example.org/v3/apps/app-1"},
            })
        );
    }

    #[test]
    fn staged_and_failed_builds() {
        let caches = testing::caches(vec![], vec![], vec![], vec![]);
        let mut build = fixtures::build("b-1", "app-1", "pkg-1");
        build.status = Some(CFBuildStatus {
            state: Some(BuildState::Staged),
            droplet_guid: Some("b-1".into()),
            ..CFBuildStatus::default()
        });
        let v = testing::with_cx(&caches, |cx| build.present(cx));
        assert_eq!(v["state"], "STAGED");
        assert_eq!(v["droplet"], json!({"guid": "b-1"}));
        assert_eq!(
            v["links"]["droplet"],
            json!({"href": "https://api.example.org/v3/droplets/b-1"})
        );
        assert!(testing::with_cx(&caches, |cx| build.filter(
            "states",
            &["STAGED".into()],
            cx
        )));
        build.status = Some(CFBuildStatus {
            state: Some(BuildState::Failed),
            error: Some("StagingError - no".into()),
            ..CFBuildStatus::default()
        });
        let v = testing::with_cx(&caches, |cx| build.present(cx));
        assert_eq!(v["state"], "FAILED");
        assert_eq!(v["error"], "StagingError - no");
        assert_eq!(v["droplet"], Value::Null);
    }

    #[test]
    fn lifecycles_in_bodies_are_checked() {
        let body = |t: &str, data: Option<LifecycleData>| LifecycleBody {
            type_: t.into(),
            data,
        };
        assert_eq!(
            lifecycle_of(body("docker", None)).unwrap().type_,
            LifecycleType::Docker
        );
        let bp = lifecycle_of(body(
            "buildpack",
            Some(LifecycleData {
                buildpacks: Some(vec!["ruby".into()]),
                stack: Some("cflinuxfs4".into()),
                credentials: None,
            }),
        ))
        .unwrap();
        assert_eq!(bp.buildpacks, vec!["ruby".to_owned()]);
        assert!(lifecycle_of(body("kpack", None)).is_err());
        assert!(
            lifecycle_of(body(
                "docker",
                Some(LifecycleData {
                    stack: Some("x".into()),
                    ..LifecycleData::default()
                })
            ))
            .is_err()
        );
    }
}
