//! The pure half of the CFApp reconciler: which CFProcesses an app needs, the labels and
//! owner reference its children carry, and the app status summed from its processes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt, api::ObjectMeta};

use crate::{
    controller::{
        Result, names,
        podspec::AppDefaults,
        status::{Want, merge},
    },
    crd::{
        AppState, CFApp, CFAppStatus, CFDroplet, CFProcess, CFProcessSpec, CommonStatus, HealthCheck,
        HealthCheckType,
    },
    labels::{APP_GUID, MANAGED_BY, MANAGED_BY_VALUE, PROCESS_TYPE, SPACE_GUID},
};

/// Whether `t` is a valid CFProcess type (the CRD's pattern), so creating it cannot be rejected.
fn valid_type(t: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    t.len() <= 63 && t.starts_with(ok) && t.ends_with(ok) && t.chars().all(|c| ok(c) || c == '-' || c == '_')
}

/// The process types an app has: `web` always (CF apps have one from creation), plus every
/// type the droplet declares. Types that are not valid names are left out.
pub fn process_types(droplet: Option<&CFDroplet>) -> BTreeSet<String> {
    let mut types = BTreeSet::from(["web".to_owned()]);
    if let Some(d) = droplet {
        let status = d
            .status
            .as_ref()
            .map(|s| &s.process_types)
            .filter(|t| !t.is_empty());
        types.extend(
            status
                .unwrap_or(&d.spec.process_types)
                .keys()
                .filter(|t| valid_type(t))
                .cloned(),
        );
    }
    types
}

/// A new process of `app`: one `web` instance, none of other types (CF's defaults), which the
/// user then scales, with the operator's default limits; it is created once and never
/// overwritten.
pub fn new_process(app: &CFApp, process_type: &str, defaults: &AppDefaults) -> CFProcess {
    let mut labels: BTreeMap<String, String> = relationship_labels(app, Some(process_type))
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    labels.insert(MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned());
    let web = process_type == "web";
    CFProcess {
        metadata: ObjectMeta {
            name: Some(names::process(&app.name_any(), process_type)),
            namespace: app.namespace(),
            labels: Some(labels),
            // Blocking, like adopted children: foreground deletion of the app waits for it.
            owner_references: app.controller_owner_ref(&()).map(|r| {
                vec![OwnerReference {
                    block_owner_deletion: Some(true),
                    ..r
                }]
            }),
            ..ObjectMeta::default()
        },
        spec: CFProcessSpec {
            app_guid: app.name_any(),
            process_type: process_type.to_owned(),
            command: None,
            instances: i32::from(web),
            memory_in_mb: Some(defaults.memory_mb),
            disk_in_mb: Some(defaults.disk_mb),
            log_rate_limit_in_bytes_per_second: Some(defaults.log_rate_limit),
            // Only web processes listen; others are healthy while they run.
            health_check: HealthCheck {
                type_: if web {
                    HealthCheckType::Port
                } else {
                    HealthCheckType::Process
                },
                ..HealthCheck::default()
            },
            readiness_health_check: None,
        },
        status: None,
    }
}

/// The relationship labels adoption puts on a child of `app` (plus its process type, if any).
pub fn relationship_labels(app: &CFApp, process_type: Option<&str>) -> Vec<(&'static str, String)> {
    let mut labels = vec![
        (APP_GUID, app.name_any()),
        (SPACE_GUID, app.namespace().unwrap_or_default()),
    ];
    labels.extend(process_type.map(|t| (PROCESS_TYPE, t.to_owned())));
    labels
}

/// The app status: `STARTED` while it should run and some instance is ready, ready instances
/// summed over its processes, `Ready` from the reconcile and `Running` from the instances.
pub fn status(app: &CFApp, processes: &[&CFProcess], outcome: &Result<()>) -> CFAppStatus {
    let current = app.status.clone().unwrap_or_default();
    let generation = app.metadata.generation;
    let common = crate::controller::ready_status(&current.common, generation, outcome, "ProcessesReady");
    let ready: i32 = processes
        .iter()
        .filter_map(|p| p.status.as_ref())
        .map(|s| s.ready_instances)
        .sum();
    let wanted: i32 = processes.iter().map(|p| p.spec.instances).sum();
    let started = app.spec.desired_state == AppState::Started;
    let running = started && ready > 0;
    let message = format!("{ready}/{wanted} instances ready");
    let reason = match (started, ready > 0) {
        (false, _) => "Stopped",
        (true, true) => "InstancesReady",
        (true, false) => "NoReadyInstances",
    };
    let want = Want {
        type_: "Running",
        ok: running,
        reason,
        message,
    };
    CFAppStatus {
        common: CommonStatus {
            observed_generation: common.observed_generation,
            conditions: merge(&common.conditions, &[want], generation),
        },
        state: Some(if running {
            AppState::Started
        } else {
            AppState::Stopped
        }),
        ready_instances: Some(ready),
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::{controller::Error, crd::CFProcessStatus, fixtures};

    fn with_uid(mut app: CFApp) -> CFApp {
        app.metadata.uid = Some("uid-a1".into());
        app
    }

    /// Docker droplets always declare `web`; worker types come from Procfiles or the droplet spec.
    #[test]
    fn every_droplet_type_gets_a_process_plus_web() {
        let mut droplet = fixtures::droplet("d1", "a1", "img");
        droplet.spec.process_types = [
            ("worker".to_owned(), "w".to_owned()),
            ("Bad Type".to_owned(), "x".to_owned()),
        ]
        .into();
        let types: Vec<String> = process_types(Some(&droplet)).into_iter().collect();
        assert_eq!(types, ["web", "worker"]);
        assert_eq!(process_types(None).into_iter().collect::<Vec<_>>(), ["web"]);
    }

    /// CF defaults: web runs one port-checked instance; other types start at zero instances;
    /// limits are the operator's.
    #[test]
    fn new_processes_carry_cf_defaults_labels_and_owner() {
        let app = with_uid(fixtures::app("a1", "my-app"));
        let defaults = AppDefaults {
            memory_mb: 256,
            disk_mb: 512,
            log_rate_limit: 4096,
        };
        let value = serde_json::to_value(new_process(&app, "worker", &defaults)).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "kubefoundry.dev/v1alpha1",
                "kind": "CFProcess",
                "metadata": {
                    "name": "a1-worker",
                    "namespace": "space-1",
                    "labels": {
                        "app.kubernetes.io/managed-by": "kubefoundry",
                        "kubefoundry.dev/app-guid": "a1",
                        "kubefoundry.dev/process-type": "worker",
                        "kubefoundry.dev/space-guid": "space-1",
                    },
                    "ownerReferences": [{
                        "apiVersion": "kubefoundry.dev/v1alpha1",
                        "kind": "CFApp",
                        "name": "a1",
                        "uid": "uid-a1",
                        "controller": true,
                        "blockOwnerDeletion": true,
                    }],
                },
                "spec": {
                    "appGuid": "a1",
                    "processType": "worker",
                    "instances": 0,
                    "memoryInMb": 256,
                    "diskInMb": 512,
                    "logRateLimitInBytesPerSecond": 4096,
                    "healthCheck": {"type": "process"},
                },
            })
        );
        assert_eq!(
            new_process(&app, "web", &AppDefaults::default()).spec.instances,
            1
        );
    }

    #[test]
    fn children_are_labelled_with_their_relationships() {
        let app = fixtures::app("a1", "my-app");
        assert_eq!(
            relationship_labels(&app, Some("web")),
            [
                ("kubefoundry.dev/app-guid", "a1".to_owned()),
                ("kubefoundry.dev/space-guid", "space-1".to_owned()),
                ("kubefoundry.dev/process-type", "web".to_owned()),
            ]
        );
    }

    #[test]
    fn app_is_started_only_with_ready_instances() {
        let process = |ready| {
            let mut p = fixtures::process("a1-web", "a1", "web").instances(2);
            p.status = Some(CFProcessStatus {
                ready_instances: ready,
                ..CFProcessStatus::default()
            });
            p
        };
        let (none, two) = (process(0), process(2));
        let app = fixtures::app("a1", "my-app").started();
        let s = status(&app, &[&two], &Ok(()));
        assert_eq!((s.state, s.ready_instances), (Some(AppState::Started), Some(2)));
        assert_eq!(
            s.common.condition("Running").unwrap().message,
            "2/2 instances ready"
        );
        let s = status(&app, &[&none], &Ok(()));
        assert_eq!(s.state, Some(AppState::Stopped));
        assert_eq!(s.common.condition("Running").unwrap().reason, "NoReadyInstances");
        let s = status(&fixtures::app("a1", "my-app"), &[&two], &Ok(()));
        assert_eq!(s.state, Some(AppState::Stopped));
        let no_droplet = Err(Error::Invalid {
            reason: "NoDroplet",
            message: "the app has no current droplet".into(),
        });
        let s = status(&app, &[], &no_droplet);
        let ready = s.common.condition("Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "NoDroplet")
        );
    }
}
