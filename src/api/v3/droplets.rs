//! `/v3/droplets`, an app's droplets and a package's droplets. Droplets are CFDroplets: made by
//! a build (or with kubectl), resolved by the controller into an image and process types.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, RawQuery, State},
    http::HeaderMap,
    response::Response,
    routing::get,
};
use kube::{ResourceExt, runtime::reflector::Store};
use serde_json::{Value, json};

use super::{
    jobs, metadata,
    resource::{self, Caller, CfKind, Cx, to_one},
    timestamps,
};
use crate::{
    api::{ApiState, Caches, CfError, CfResult, query::Query},
    crd::{CFApp, CFDroplet, CFPackage, DropletState, LifecycleType},
};

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/droplets", get(list))
        .route(
            "/v3/droplets/{guid}",
            get(resource::show::<CFDroplet>)
                .patch(resource::update_metadata::<CFDroplet>)
                .delete(destroy),
        )
        .route("/v3/droplets/{guid}/download", get(download))
        .route("/v3/apps/{guid}/droplets", get(app_droplets))
        .route("/v3/packages/{guid}/droplets", get(package_droplets))
}

/// A droplet's state as CF spells it; STAGING until the controller has resolved it.
pub fn state_name(droplet: &CFDroplet) -> &'static str {
    match droplet.status.as_ref().and_then(|s| s.state) {
        None => "STAGING",
        Some(DropletState::AwaitingUpload) => "AWAITING_UPLOAD",
        Some(DropletState::ProcessingUpload) => "PROCESSING_UPLOAD",
        Some(DropletState::Staged) => "STAGED",
        Some(DropletState::Copying) => "COPYING",
        Some(DropletState::Failed) => "FAILED",
        Some(DropletState::Expired) => "EXPIRED",
    }
}

fn lifecycle_name(l: LifecycleType) -> &'static str {
    match l {
        LifecycleType::Buildpack => "buildpack",
        LifecycleType::Docker => "docker",
        LifecycleType::Cnb => "cnb",
    }
}

/// Whether `droplet` is its app's current droplet.
fn is_current(droplet: &CFDroplet, caches: &Caches) -> bool {
    let name = droplet.name_any();
    caches
        .apps
        .find(|a| {
            a.metadata.name.as_deref() == Some(droplet.spec.app_guid.as_str())
                && a.metadata.namespace == droplet.metadata.namespace
        })
        .is_some_and(|a| a.spec.current_droplet_guid.as_deref() == Some(name.as_str()))
}

impl CfKind for CFDroplet {
    const KIND: &'static str = "Droplet";
    const FILTERS: &'static [&'static str] = &["app_guids", "space_guids", "organization_guids", "states"];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.droplets
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let (created_at, updated_at) = timestamps(&self.metadata);
        let status = self.status.clone().unwrap_or_default();
        let app = &self.spec.app_guid;
        let docker = self.spec.lifecycle == LifecycleType::Docker;
        // Resolved by the controller; the spec's own until then.
        let process_types = if status.process_types.is_empty() {
            &self.spec.process_types
        } else {
            &status.process_types
        };
        let image = status.image.clone().or_else(|| self.spec.image.clone());
        let mut assign = cx.link(&format!("/v3/apps/{app}/relationships/current_droplet"));
        assign["method"] = json!("PATCH");
        let mut links = json!({
            "self": cx.link(&format!("/v3/droplets/{guid}")),
            "app": cx.link(&format!("/v3/apps/{app}")),
            "assign_current_droplet": assign,
        });
        if let Some(p) = &self.spec.package_guid {
            links["package"] = cx.link(&format!("/v3/packages/{p}"));
        }
        if !docker {
            links["download"] = cx.link(&format!("/v3/droplets/{guid}/download"));
        }
        json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "state": state_name(self),
            "error": status.error,
            "lifecycle": {"type": lifecycle_name(self.spec.lifecycle), "data": {}},
            "execution_metadata": "",
            "process_types": process_types,
            // Droplets here are images: there is no droplet tarball to checksum.
            "checksum": null,
            "buildpacks": [],
            "stack": if docker { None } else { status.stack.clone() },
            "image": image,
            "relationships": {"app": to_one(Some(app))},
            "metadata": metadata(&self.metadata),
            "links": links,
        })
    }

    fn filter(&self, key: &str, values: &[String], cx: &Cx<'_>) -> bool {
        let space = self.namespace().unwrap_or_default();
        match key {
            "app_guids" => values.contains(&self.spec.app_guid),
            "space_guids" => values.contains(&space),
            "organization_guids" => cx.org_of_space(&space).is_some_and(|o| values.contains(&o)),
            "states" => values.iter().any(|v| v == state_name(self)),
            "current" => {
                let want = values.first().is_some_and(|v| v == "true");
                !want || is_current(self, cx.caches)
            }
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
    resource::list::<CFDroplet>(&state, &caller, raw.as_deref(), "/v3/droplets", |_| true)
}

async fn app_droplets(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    let app = resource::find::<CFApp>(&state, &caller, &guid)?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    if let Some(v) = q.get("current")
        && v != "true"
        && v != "false"
    {
        return Err(CfError::BadQuery("Current must be a boolean".into()));
    }
    let space = app.namespace();
    resource::list_with::<CFDroplet>(
        &state,
        &caller,
        &q,
        &format!("/v3/apps/{guid}/droplets"),
        |d| d.spec.app_guid == guid && d.namespace() == space,
        &["states", "current"],
    )
}

async fn package_droplets(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    let package = resource::find::<CFPackage>(&state, &caller, &guid)?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    let space = package.namespace();
    resource::list_with::<CFDroplet>(
        &state,
        &caller,
        &q,
        &format!("/v3/packages/{guid}/droplets"),
        |d| d.spec.package_guid.as_deref() == Some(guid.as_str()) && d.namespace() == space,
        &["states"],
    )
}

async fn destroy(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let current = resource::find::<CFDroplet>(&state, &caller, &guid)?;
    resource::delete(&state, &caller, &*current).await?;
    Ok(jobs::accepted(&state, "droplet.delete", &guid))
}

/// Droplets here are images in a registry, never tarballs, so there is nothing to download;
/// CC refuses docker droplets the same way.
async fn download(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let droplet = resource::find::<CFDroplet>(&state, &caller, &guid)?;
    let message = if droplet.spec.lifecycle == LifecycleType::Docker {
        "Cannot download droplets with 'docker' lifecycle.".to_owned()
    } else {
        "Cannot download this droplet: kubefoundry droplets are images, not droplet archives.".to_owned()
    };
    Err(CfError::Unprocessable(message))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use pretty_assertions::assert_eq;

    use super::*;
    use crate::{
        api::v3::packages::testing,
        crd::{CFDropletStatus, LifecycleType},
        fixtures,
    };

    fn staged_docker_droplet() -> CFDroplet {
        let mut d = fixtures::droplet("d-1", "app-1", "nginx:1.27");
        d.spec.lifecycle = LifecycleType::Docker;
        d.spec.package_guid = Some("pkg-1".into());
        d.status = Some(CFDropletStatus {
            state: Some(DropletState::Staged),
            image: Some("nginx:1.27".into()),
            process_types: [("web".to_owned(), String::new())].into(),
            ..CFDropletStatus::default()
        });
        d
    }

    #[test]
    fn a_docker_droplet_presents_as_cc_does() {
        let caches = testing::caches(vec![], vec![], vec![], vec![]);
        let d = staged_docker_droplet();
        let v = testing::with_cx(&caches, |cx| d.present(cx));
        assert_eq!(v["state"], "STAGED");
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["lifecycle"], json!({"type": "docker", "data": {}}));
        assert_eq!(v["image"], "nginx:1.27");
        assert_eq!(v["process_types"], json!({"web": ""}));
        assert_eq!(v["checksum"], Value::Null);
        assert_eq!(v["buildpacks"], json!([]));
        assert_eq!(v["stack"], Value::Null);
        assert_eq!(v["execution_metadata"], "");
        assert_eq!(v["relationships"]["app"], json!({"data": {"guid": "app-1"}}));
        assert_eq!(
            v["links"],
            json!({
                "self": {"href": "https://api.example.org/v3/droplets/d-1"},
                "app": {"href": "https://api.example.org/v3/apps/app-1"},
                "package": {"href": "https://api.example.org/v3/packages/pkg-1"},
                "assign_current_droplet": {
                    "href": "https://api.example.org/v3/apps/app-1/relationships/current_droplet",
                    "method": "PATCH",
                },
            })
        );
    }

    #[test]
    fn unresolved_and_current_droplets() {
        let mut d = fixtures::droplet("d-2", "app-1", "busybox");
        d.spec.lifecycle = LifecycleType::Buildpack;
        d.status = None;
        let app = fixtures::app("app-1", "web").droplet("d-2");
        let caches = testing::caches(vec![app], vec![], vec![], vec![]);
        let v = testing::with_cx(&caches, |cx| d.present(cx));
        assert_eq!(v["state"], "STAGING");
        assert_eq!(v["image"], "busybox");
        assert_eq!(
            v["links"]["download"],
            json!({"href": "https://api.example.org/v3/droplets/d-2/download"})
        );
        assert!(testing::with_cx(&caches, |cx| d.filter(
            "current",
            &["true".into()],
            cx
        )));
        assert!(testing::with_cx(&caches, |cx| d.filter(
            "states",
            &["STAGING".into()],
            cx
        )));
        let other = staged_docker_droplet();
        assert!(!testing::with_cx(&caches, |cx| other.filter(
            "current",
            &["true".into()],
            cx
        )));
        assert!(testing::with_cx(&caches, |cx| other.filter(
            "current",
            &["false".into()],
            cx
        )));
    }
}
