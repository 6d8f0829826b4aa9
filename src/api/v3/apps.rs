//! `/v3/apps`: CRUD, lifecycle actions, env, features, current droplet; and [`create_app`],
//! the one way an app comes into being (POST /v3/apps and manifests alike).

use std::{collections::BTreeMap, sync::Arc};

use axum::Router;
use kube::{ResourceExt, runtime::reflector::Store};
use serde_json::{Value, json};

use super::{
    metadata,
    resource::{self, Caller, CfKind, Cx, to_one},
    timestamps,
};
use crate::{
    api::{ApiState, Caches, CfError, CfResult, body::MetadataBody, body::check_name, claims::Claim},
    controller::app::build::new_process,
    crd::{AppState, CFApp, CFAppSpec, Lifecycle, LifecycleType},
};

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}

/// The stack CF reports for buildpack apps that name none.
const DEFAULT_STACK: &str = "cflinuxfs4";

/// The space of an app: its namespace.
pub fn space_of(app: &CFApp) -> String {
    app.namespace().unwrap_or_default()
}

/// The v3 `lifecycle` object.
pub fn lifecycle_json(lifecycle: &Lifecycle) -> Value {
    match lifecycle.type_ {
        LifecycleType::Docker => json!({"type": "docker", "data": {}}),
        LifecycleType::Buildpack => json!({
            "type": "buildpack",
            "data": {
                "buildpacks": lifecycle.buildpacks,
                "stack": lifecycle.stack.as_deref().unwrap_or(DEFAULT_STACK),
            },
        }),
        LifecycleType::Cnb => json!({
            "type": "cnb",
            "data": {
                "buildpacks": lifecycle.buildpacks,
                "stack": lifecycle.stack.as_deref().unwrap_or(DEFAULT_STACK),
            },
        }),
    }
}

fn state_name(s: AppState) -> &'static str {
    match s {
        AppState::Started => "STARTED",
        AppState::Stopped => "STOPPED",
    }
}

impl CfKind for CFApp {
    const KIND: &'static str = "App";
    const ORDERS: &'static [&'static str] = &["created_at", "updated_at", "name", "state"];
    const FILTERS: &'static [&'static str] = &[
        "names",
        "space_guids",
        "organization_guids",
        "stacks",
        "lifecycle_type",
    ];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.apps
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let space = space_of(self);
        let (created_at, updated_at) = timestamps(&self.metadata);
        let app = |p: &str| cx.link(&format!("/v3/apps/{guid}{p}"));
        let action = |p: &str| {
            let mut l = app(p);
            l["method"] = json!("POST");
            l
        };
        json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "name": self.spec.display_name,
            "state": state_name(self.spec.desired_state),
            "lifecycle": lifecycle_json(&self.spec.lifecycle),
            "relationships": {
                "space": to_one(Some(&space)),
                "current_droplet": to_one(self.spec.current_droplet_guid.as_deref()),
            },
            "metadata": metadata(&self.metadata),
            "links": {
                "self": app(""),
                "environment_variables": app("/environment_variables"),
                "space": cx.link(&format!("/v3/spaces/{space}")),
                "processes": app("/processes"),
                "packages": app("/packages"),
                "current_droplet": app("/droplets/current"),
                "droplets": app("/droplets"),
                "tasks": app("/tasks"),
                "start": action("/actions/start"),
                "stop": action("/actions/stop"),
                "revisions": app("/revisions"),
                "deployed_revisions": app("/revisions/deployed"),
                "features": app("/features"),
            },
        })
    }

    fn filter(&self, key: &str, values: &[String], cx: &Cx<'_>) -> bool {
        let space = space_of(self);
        match key {
            "names" => values.contains(&self.spec.display_name),
            "space_guids" => values.contains(&space),
            "organization_guids" => cx.org_of_space(&space).is_some_and(|o| values.contains(&o)),
            "stacks" => {
                let l = &self.spec.lifecycle;
                l.type_ != LifecycleType::Docker
                    && values
                        .iter()
                        .any(|v| v == l.stack.as_deref().unwrap_or(DEFAULT_STACK))
            }
            "lifecycle_type" => {
                let t = lifecycle_json(&self.spec.lifecycle);
                values.iter().any(|v| t["type"] == v.as_str())
            }
            _ => true,
        }
    }
}

/// The 422 for a space the caller cannot use.
fn invalid_space() -> CfError {
    CfError::Unprocessable("Invalid space. Ensure that the space exists and you have access to it.".into())
}

/// The claim of an app name in a space.
pub fn name_claim(space_guid: &str, name: &str) -> Claim {
    Claim::new("app", space_guid, name)
}

/// The 422 the cf CLI recognises for a taken app name.
pub fn name_taken(name: &str) -> CfError {
    CfError::Uniqueness(format!("App with the name '{name}' already exists."))
}

/// Creates an app as `caller`: the name claim in the space, the CFApp (STOPPED) and its `web`
/// CFProcess with CC's defaults. On any failure the claim is released and nothing stays
/// behind, so a retry with the same name succeeds.
pub async fn create_app(
    state: &ApiState,
    caller: &Caller,
    space_guid: &str,
    name: &str,
    lifecycle: Lifecycle,
    env: BTreeMap<String, String>,
    metadata: Option<&MetadataBody>,
) -> CfResult<CFApp> {
    check_name(name)?;
    if let Some(m) = metadata {
        m.check()?;
    }
    let space_known = state
        .caches
        .spaces
        .find(|s| s.metadata.name.as_deref() == Some(space_guid) && s.metadata.deletion_timestamp.is_none())
        .is_some();
    if !space_known || !caller.access.space(space_guid) {
        return Err(invalid_space());
    }
    let guid = resource::new_guid();
    let claim = name_claim(space_guid, name);
    claim
        .take(
            state,
            &guid,
            |holder| resource::lookup::<CFApp>(&state.caches, holder).is_some(),
            || name_taken(name),
        )
        .await?;
    let mut app = CFApp::new(
        &guid,
        CFAppSpec {
            display_name: name.to_owned(),
            desired_state: AppState::Stopped,
            lifecycle,
            env,
            current_droplet_guid: None,
            restarted_at: None,
        },
    );
    app.metadata.namespace = Some(space_guid.to_owned());
    if let Some(m) = metadata {
        m.apply_to(&mut app.metadata);
    }
    let created = match resource::create(state, caller, &app).await {
        Ok(a) => a,
        Err(e) => {
            claim.release(state).await;
            return Err(e);
        }
    };
    // The process needs the created app's UID for its owner reference.
    let web = new_process(&created, "web");
    if let Err(e) = resource::create(state, caller, &web).await {
        // A 409 means the controller made it first: that is the same process.
        if !matches!(e, CfError::Uniqueness(_)) {
            let _ = resource::delete(state, caller, &created).await;
            claim.release(state).await;
            return Err(e);
        }
    }
    Ok(created)
}
