//! Tests for protobuf decoding: bodies captured from kubectl v1.32 next to the JSON kubectl
//! prints for the same command, and bodies built from `k8s-pb` messages.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::authentication::v1 as authn;
use k8s_pb::api::authorization::v1 as authz;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::events::v1 as events;
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use pretty_assertions::assert_eq;
use prost::Message as _;
use serde_json::{Value, json};

use super::{MAGIC, ProtobufError, decode, supports};

/// Wraps an encoded object the way client-go does: magic, then `runtime.Unknown`.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_owned()),
            kind: Some(kind.to_owned()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn body(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
    envelope(api_version, kind, object.encode_to_vec())
}

fn named(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: Some(name.to_owned()),
        ..Default::default()
    })
}

fn strings(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn quantity(s: &str) -> Quantity {
    Quantity {
        string: Some(s.to_owned()),
    }
}

// --- Bodies captured from kubectl v1.32.4 ---------------------------------------------------

/// kubectl 1.32 prints `creationTimestamp: null`; the current Go types mark the field
/// `omitzero`, so the server-side JSON (and this decoder) leaves it out.
fn without_null_creation_timestamps(mut value: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if map.get("creationTimestamp") == Some(&Value::Null) {
                    map.remove("creationTimestamp");
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

macro_rules! kubectl_fixture {
    ($test:ident, $name:literal) => {
        #[test]
        fn $test() {
            let body = include_bytes!(concat!("../../tests/fixtures/protobuf/", $name, ".pb"));
            let printed = include_str!(concat!("../../tests/fixtures/protobuf/", $name, ".json"));
            let expected: Value = serde_json::from_str(printed).expect("fixture JSON");
            assert_eq!(
                decode(body).expect("decodes"),
                without_null_creation_timestamps(expected)
            );
        }
    };
}

kubectl_fixture!(kubectl_create_configmap, "configmap");
kubectl_fixture!(kubectl_create_secret_generic_with_binary_file, "secret");
kubectl_fixture!(kubectl_create_secret_docker_registry, "secret_dockercfg");
kubectl_fixture!(kubectl_create_namespace, "namespace");
kubectl_fixture!(kubectl_create_deployment_with_zero_replicas, "deployment");
kubectl_fixture!(kubectl_create_service_with_int_and_string_target_ports, "service");
kubectl_fixture!(kubectl_create_clusterrolebinding, "clusterrolebinding");
kubectl_fixture!(kubectl_create_role, "role");
kubectl_fixture!(kubectl_create_clusterrole_with_aggregation_rule, "clusterrole");
kubectl_fixture!(kubectl_create_quota, "resourcequota");
kubectl_fixture!(kubectl_create_poddisruptionbudget, "poddisruptionbudget");
kubectl_fixture!(kubectl_create_cronjob, "cronjob");
kubectl_fixture!(kubectl_create_job, "job");
kubectl_fixture!(kubectl_create_ingress, "ingress");
kubectl_fixture!(kubectl_create_priorityclass, "priorityclass");
kubectl_fixture!(kubectl_create_serviceaccount, "serviceaccount");

#[test]
fn kubectl_auth_can_i() {
    let body = include_bytes!("../../tests/fixtures/protobuf/selfsubjectaccessreview.pb");
    assert_eq!(
        decode(body).expect("decodes"),
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {
                "resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}
            },
            "status": {"allowed": false}
        })
    );
}

#[test]
fn kubectl_auth_whoami() {
    let body = include_bytes!("../../tests/fixtures/protobuf/selfsubjectreview.pb");
    assert_eq!(
        decode(body).expect("decodes"),
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
            "metadata": {},
            "status": {"userInfo": {}}
        })
    );
}

#[test]
fn kubectl_create_token() {
    let body = include_bytes!("../../tests/fixtures/protobuf/tokenrequest.pb");
    assert_eq!(
        decode(body).expect("decodes"),
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {},
            "spec": {"audiences": ["api"], "expirationSeconds": 3600, "boundObjectRef": null},
            "status": {"token": "", "expirationTimestamp": null}
        })
    );
}

// --- Bodies built from k8s-pb messages ------------------------------------------------------

#[test]
fn configmap() {
    let cm = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: Some("settings".to_owned()),
            namespace: Some("apps".to_owned()),
            labels: strings(&[("app", "web")]),
            ..Default::default()
        }),
        data: strings(&[("a", "1"), ("empty", "")]),
        binary_data: [("blob".to_owned(), vec![0xde, 0xad])].into(),
        immutable: Some(false),
    };
    assert_eq!(
        decode(&body("v1", "ConfigMap", &cm)).expect("decodes"),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "apps", "labels": {"app": "web"}},
            "data": {"a": "1", "empty": ""},
            "binaryData": {"blob": "3q0="},
            // A pointer in Go, so an explicit false survives.
            "immutable": false
        })
    );
}

#[test]
fn secret_with_binary_data() {
    let secret = core::Secret {
        metadata: named("release.v1"),
        data: [
            ("release".to_owned(), vec![0x1f, 0x8b, 0x08, 0x00, 0xff]),
            ("empty".to_owned(), Vec::new()),
        ]
        .into(),
        r#type: Some("helm.sh/release.v1".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        decode(&body("v1", "Secret", &secret)).expect("decodes"),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "release.v1"},
            "data": {"release": "H4sIAP8=", "empty": ""},
            "type": "helm.sh/release.v1"
        })
    );
}

#[test]
fn namespace_gets_go_zero_structs() {
    let ns = core::Namespace {
        metadata: named("team-a"),
        ..Default::default()
    };
    assert_eq!(
        decode(&body("v1", "Namespace", &ns)).expect("decodes"),
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a"},
            "spec": {},
            "status": {}
        })
    );
}

#[test]
fn deployment_with_container_resources_and_port() {
    let container = core::Container {
        name: Some("web".to_owned()),
        image: Some("nginx:1.27".to_owned()),
        ports: vec![core::ContainerPort {
            container_port: Some(8080),
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }],
        resources: Some(core::ResourceRequirements {
            limits: [("memory".to_owned(), quantity("128Mi"))].into(),
            requests: [
                ("cpu".to_owned(), quantity("100m")),
                ("memory".to_owned(), quantity("64Mi")),
            ]
            .into(),
            ..Default::default()
        }),
        env: vec![core::EnvVar {
            name: Some("MODE".to_owned()),
            value: Some("prod".to_owned()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: Some("web".to_owned()),
            namespace: Some("default".to_owned()),
            // Go clients write every non-pointer scalar, zero or not.
            generate_name: Some(String::new()),
            generation: Some(0),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: strings(&[("app", "web")]),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: strings(&[("app", "web")]),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    automount_service_account_token: Some(false),
                    host_network: Some(false),
                    ..Default::default()
                }),
            }),
            min_ready_seconds: Some(0),
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        decode(&body("apps/v1", "Deployment", &deployment)).expect("decodes"),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "web",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [{"name": "MODE", "value": "prod"}],
                            "resources": {
                                "limits": {"memory": "128Mi"},
                                "requests": {"cpu": "100m", "memory": "64Mi"}
                            }
                        }],
                        "automountServiceAccountToken": false
                    }
                },
                "strategy": {}
            },
            "status": {}
        })
    );
}

#[test]
fn service_ports_with_int_or_string_target_port() {
    let port = |name: &str, number: i32, target: IntOrString| core::ServicePort {
        name: Some(name.to_owned()),
        protocol: Some("TCP".to_owned()),
        port: Some(number),
        target_port: Some(target),
        node_port: Some(0),
        ..Default::default()
    };
    let service = core::Service {
        metadata: named("web"),
        spec: Some(core::ServiceSpec {
            ports: vec![
                port(
                    "http",
                    80,
                    IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: Some(String::new()),
                    },
                ),
                port(
                    "https",
                    443,
                    IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: Some("https".to_owned()),
                    },
                ),
                // No targetPort at all: Go's zero IntOrString is the number 0.
                core::ServicePort {
                    port: Some(9090),
                    ..Default::default()
                },
            ],
            selector: strings(&[("app", "web")]),
            r#type: Some("ClusterIP".to_owned()),
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        decode(&body("v1", "Service", &service)).expect("decodes"),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "https", "protocol": "TCP", "port": 443, "targetPort": "https"},
                    {"port": 9090, "targetPort": 0}
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP"
            },
            "status": {"loadBalancer": {}}
        })
    );
}

#[test]
fn self_subject_access_review() {
    let review = authz::SelfSubjectAccessReview {
        metadata: Some(meta::ObjectMeta::default()),
        spec: Some(authz::SelfSubjectAccessReviewSpec {
            resource_attributes: Some(authz::ResourceAttributes {
                namespace: Some("default".to_owned()),
                verb: Some("create".to_owned()),
                group: Some("apps".to_owned()),
                resource: Some("deployments".to_owned()),
                subresource: Some("scale".to_owned()),
                ..Default::default()
            }),
            non_resource_attributes: None,
        }),
        status: Some(authz::SubjectAccessReviewStatus {
            allowed: Some(false),
            ..Default::default()
        }),
    };
    assert_eq!(
        decode(&body(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &review
        ))
        .expect("decodes"),
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {"resourceAttributes": {
                "namespace": "default",
                "verb": "create",
                "group": "apps",
                "resource": "deployments",
                "subresource": "scale"
            }},
            "status": {"allowed": false}
        })
    );
}

#[test]
fn subject_access_review_extra_values_are_string_lists() {
    let review = authz::SubjectAccessReview {
        spec: Some(authz::SubjectAccessReviewSpec {
            user: Some("alice".to_owned()),
            groups: vec!["devs".to_owned()],
            extra: [
                (
                    "scopes".to_owned(),
                    authz::ExtraValue {
                        items: vec!["a".to_owned(), "b".to_owned()],
                    },
                ),
                ("none".to_owned(), authz::ExtraValue::default()),
            ]
            .into(),
            non_resource_attributes: Some(authz::NonResourceAttributes {
                path: Some("/healthz".to_owned()),
                verb: Some("get".to_owned()),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        decode(&body("authorization.k8s.io/v1", "SubjectAccessReview", &review)).expect("decodes"),
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "metadata": {},
            "spec": {
                "nonResourceAttributes": {"path": "/healthz", "verb": "get"},
                "user": "alice",
                "groups": ["devs"],
                "extra": {"scopes": ["a", "b"], "none": null}
            },
            "status": {"allowed": false}
        })
    );
}

#[test]
fn token_review() {
    let review = authn::TokenReview {
        spec: Some(authn::TokenReviewSpec {
            token: Some("abc".to_owned()),
            audiences: vec!["api".to_owned()],
        }),
        ..Default::default()
    };
    assert_eq!(
        decode(&body("authentication.k8s.io/v1", "TokenReview", &review)).expect("decodes"),
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "metadata": {},
            "spec": {"token": "abc", "audiences": ["api"]},
            "status": {"user": {}}
        })
    );
}

#[test]
fn delete_options_with_propagation_policy() {
    let options = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: Some("Foreground".to_owned()),
        preconditions: Some(meta::Preconditions {
            uid: Some("1234".to_owned()),
            resource_version: None,
        }),
        dry_run: vec!["All".to_owned()],
        ..Default::default()
    };
    let expected = |api_version: &str| {
        json!({
            "apiVersion": api_version,
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "1234"},
            "propagationPolicy": "Foreground",
            "dryRun": ["All"]
        })
    };
    // client-go tags DeleteOptions with the group version of the resource being deleted.
    for api_version in ["meta.k8s.io/v1", "v1", "apps/v1"] {
        assert_eq!(
            decode(&body(api_version, "DeleteOptions", &options)).expect("decodes"),
            expected(api_version)
        );
    }
}

#[test]
fn pod_inlines_embedded_go_structs() {
    let pod = core::Pod {
        metadata: named("p"),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: Some("app".to_owned()),
                env_from: vec![core::EnvFromSource {
                    config_map_ref: Some(core::ConfigMapEnvSource {
                        local_object_reference: Some(core::LocalObjectReference {
                            name: Some("settings".to_owned()),
                        }),
                        optional: Some(true),
                    }),
                    ..Default::default()
                }],
                readiness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            path: Some("/ready".to_owned()),
                            port: Some(IntOrString {
                                r#type: Some(1),
                                int_val: None,
                                str_val: Some("http".to_owned()),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(5),
                    timeout_seconds: Some(0),
                    ..Default::default()
                }),
                volume_mounts: vec![core::VolumeMount {
                    name: Some("data".to_owned()),
                    mount_path: Some("/data".to_owned()),
                    read_only: Some(false),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            volumes: vec![core::Volume {
                name: Some("data".to_owned()),
                volume_source: Some(core::VolumeSource {
                    empty_dir: Some(core::EmptyDirVolumeSource {
                        size_limit: Some(quantity("1Gi")),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        decode(&body("v1", "Pod", &pod)).expect("decodes"),
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
                "containers": [{
                    "name": "app",
                    "envFrom": [{"configMapRef": {"name": "settings", "optional": true}}],
                    "resources": {},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5}
                }],
                "terminationGracePeriodSeconds": 0
            },
            "status": {}
        })
    );
}

#[test]
fn times_render_like_go() {
    let event = events::Event {
        metadata: named("e1"),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_700_000_000),
            nanos: Some(123_456_789),
        }),
        deprecated_first_timestamp: Some(meta::Time {
            seconds: Some(951_782_400),
            nanos: Some(999),
        }),
        reporting_controller: Some("kubefoundry".to_owned()),
        reason: Some("Synced".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        decode(&body("events.k8s.io/v1", "Event", &event)).expect("decodes"),
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "e1"},
            "eventTime": "2023-11-14T22:13:20.123456Z",
            "reportingController": "kubefoundry",
            "reason": "Synced",
            // Non-pointer Go structs are always written, omitempty or not.
            "regarding": {},
            "deprecatedSource": {},
            "deprecatedFirstTimestamp": "2000-02-29T00:00:00Z",
            "deprecatedLastTimestamp": null
        })
    );
}

#[test]
fn custom_resource_definition_schema() {
    let props = |ty: &str| apiext::JsonSchemaProps {
        r#type: Some(ty.to_owned()),
        ..Default::default()
    };
    let spec_schema = apiext::JsonSchemaProps {
        r#type: Some("object".to_owned()),
        required: vec!["size".to_owned()],
        properties: [
            (
                "size".to_owned(),
                apiext::JsonSchemaProps {
                    x_kubernetes_int_or_string: Some(true),
                    default: Some(apiext::Json {
                        raw: Some(br#""1Gi""#.to_vec()),
                    }),
                    ..Default::default()
                },
            ),
            (
                "tags".to_owned(),
                apiext::JsonSchemaProps {
                    r#type: Some("array".to_owned()),
                    items: Some(Box::new(apiext::JsonSchemaPropsOrArray {
                        schema: Some(Box::new(props("string"))),
                        j_son_schemas: Vec::new(),
                    })),
                    ..Default::default()
                },
            ),
            (
                "labels".to_owned(),
                apiext::JsonSchemaProps {
                    r#type: Some("object".to_owned()),
                    additional_properties: Some(Box::new(apiext::JsonSchemaPropsOrBool {
                        allows: Some(true),
                        schema: Some(Box::new(props("string"))),
                    })),
                    ..Default::default()
                },
            ),
            (
                "mode".to_owned(),
                apiext::JsonSchemaProps {
                    r#type: Some("string".to_owned()),
                    r#enum: vec![
                        apiext::Json {
                            raw: Some(br#""fast""#.to_vec()),
                        },
                        apiext::Json {
                            raw: Some(br#""slow""#.to_vec()),
                        },
                    ],
                    maximum: None,
                    ..Default::default()
                },
            ),
            (
                "ratio".to_owned(),
                apiext::JsonSchemaProps {
                    r#type: Some("number".to_owned()),
                    minimum: Some(0.0),
                    maximum: Some(1.5),
                    ..Default::default()
                },
            ),
        ]
        .into(),
        ..Default::default()
    };
    let crd = apiext::CustomResourceDefinition {
        metadata: named("widgets.example.com"),
        spec: Some(apiext::CustomResourceDefinitionSpec {
            group: Some("example.com".to_owned()),
            names: Some(apiext::CustomResourceDefinitionNames {
                plural: Some("widgets".to_owned()),
                kind: Some("Widget".to_owned()),
                ..Default::default()
            }),
            scope: Some("Namespaced".to_owned()),
            versions: vec![apiext::CustomResourceDefinitionVersion {
                name: Some("v1".to_owned()),
                served: Some(true),
                storage: Some(true),
                schema: Some(apiext::CustomResourceValidation {
                    open_apiv3_schema: Some(apiext::JsonSchemaProps {
                        r#type: Some("object".to_owned()),
                        properties: [("spec".to_owned(), spec_schema)].into(),
                        ..Default::default()
                    }),
                }),
                subresources: Some(apiext::CustomResourceSubresources {
                    status: Some(apiext::CustomResourceSubresourceStatus {}),
                    scale: None,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        decode(&body("apiextensions.k8s.io/v1", "CustomResourceDefinition", &crd)).expect("decodes"),
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"plural": "widgets", "kind": "Widget"},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1",
                    "served": true,
                    "storage": true,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {"spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"x-kubernetes-int-or-string": true, "default": "1Gi"},
                                "tags": {"type": "array", "items": {"type": "string"}},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "mode": {"type": "string", "enum": ["fast", "slow"]},
                                "ratio": {"type": "number", "minimum": 0, "maximum": 1.5}
                            }
                        }}
                    }},
                    "subresources": {"status": {}}
                }]
            },
            "status": {"conditions": null, "acceptedNames": {"plural": "", "kind": "", }, "storedVersions": null}
        })
    );
}

#[test]
fn additional_properties_false_and_array_items() {
    let schema = apiext::JsonSchemaProps {
        additional_properties: Some(Box::new(apiext::JsonSchemaPropsOrBool {
            allows: Some(false),
            schema: None,
        })),
        items: Some(Box::new(apiext::JsonSchemaPropsOrArray {
            schema: None,
            j_son_schemas: vec![apiext::JsonSchemaProps {
                r#type: Some("integer".to_owned()),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let crd = apiext::CustomResourceDefinition {
        spec: Some(apiext::CustomResourceDefinitionSpec {
            versions: vec![apiext::CustomResourceDefinitionVersion {
                schema: Some(apiext::CustomResourceValidation {
                    open_apiv3_schema: Some(schema),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let decoded =
        decode(&body("apiextensions.k8s.io/v1", "CustomResourceDefinition", &crd)).expect("decodes");
    assert_eq!(
        decoded["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        json!({"additionalProperties": false, "items": [{"type": "integer"}]})
    );
}

#[test]
fn raw_extension_holds_embedded_json() {
    let revision = apps::ControllerRevision {
        metadata: named("web-1"),
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"replicas":2}}"#.to_vec()),
        }),
        revision: Some(1),
    };
    assert_eq!(
        decode(&body("apps/v1", "ControllerRevision", &revision)).expect("decodes"),
        json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {"name": "web-1"},
            "data": {"spec": {"replicas": 2}},
            "revision": 1
        })
    );
}

#[test]
fn lease_times_and_managed_fields() {
    let lease = k8s_pb::api::coordination::v1::Lease {
        metadata: Some(meta::ObjectMeta {
            name: Some("leader".to_owned()),
            creation_timestamp: Some(meta::Time {
                seconds: Some(0),
                nanos: Some(0),
            }),
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: Some("kubectl".to_owned()),
                operation: Some("Update".to_owned()),
                fields_type: Some("FieldsV1".to_owned()),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:spec":{}}"#.to_vec()),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        spec: Some(k8s_pb::api::coordination::v1::LeaseSpec {
            holder_identity: Some("pod-a".to_owned()),
            lease_duration_seconds: Some(15),
            renew_time: Some(meta::MicroTime {
                seconds: Some(-1),
                nanos: Some(500_000),
            }),
            ..Default::default()
        }),
    };
    assert_eq!(
        decode(&body("coordination.k8s.io/v1", "Lease", &lease)).expect("decodes"),
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": "leader",
                // The Unix epoch is a real instant, unlike Go's zero time.
                "creationTimestamp": "1970-01-01T00:00:00Z",
                "managedFields": [{
                    "manager": "kubectl",
                    "operation": "Update",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {}}
                }]
            },
            "spec": {
                "holderIdentity": "pod-a",
                "leaseDurationSeconds": 15,
                "renewTime": "1969-12-31T23:59:59.000500Z"
            }
        })
    );
}

#[test]
fn packed_and_unpacked_numeric_lists_both_decode() {
    // PodFailurePolicyOnExitCodesRequirement.values is `repeated int32` (field 3).
    let unpacked = [0x12, 0x01, b'X', 0x18, 0x01, 0x18, 0x02];
    let packed = [0x12, 0x01, b'X', 0x1a, 0x02, 0x01, 0x02];
    for requirement in [&unpacked[..], &packed[..]] {
        let mut rule = vec![0x12, requirement.len() as u8];
        rule.extend_from_slice(requirement);
        let mut policy = vec![0x0a, rule.len() as u8];
        policy.extend_from_slice(&rule);
        let mut spec = vec![0x5a, policy.len() as u8];
        spec.extend_from_slice(&policy);
        let mut job = vec![0x12, spec.len() as u8];
        job.extend_from_slice(&spec);
        let decoded = decode(&envelope("batch/v1", "Job", job)).expect("decodes");
        assert_eq!(
            decoded["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"],
            json!({"operator": "X", "values": [1, 2]})
        );
    }
}

#[test]
fn unknown_fields_are_skipped_like_go() {
    let mut raw = core::Namespace {
        metadata: named("future"),
        ..Default::default()
    }
    .encode_to_vec();
    // Field 99, length-delimited: something a newer client knows and this schema does not.
    raw.extend_from_slice(&[0x9a, 0x06, 0x02, b'h', b'i']);
    let decoded = decode(&envelope("v1", "Namespace", raw)).expect("decodes");
    assert_eq!(decoded["metadata"], json!({"name": "future"}));
}

#[test]
fn rejects_bodies_it_cannot_decode() {
    assert_eq!(decode(b"{\"kind\":\"Pod\"}"), Err(ProtobufError::MissingMagic));
    assert_eq!(
        decode(&envelope("example.com/v1", "Widget", Vec::new())),
        Err(ProtobufError::UnsupportedKind {
            api_version: "example.com/v1".to_owned(),
            kind: "Widget".to_owned(),
        })
    );
    let message = decode(&envelope("v2", "Pod", Vec::new()))
        .expect_err("unknown version")
        .to_string();
    assert!(message.contains("Pod in v2"), "{message}");
    assert_eq!(
        decode(&envelope("", "", Vec::new())),
        Err(ProtobufError::MissingTypeMeta)
    );

    let mut truncated = body("v1", "ConfigMap", &core::ConfigMap::default());
    truncated.truncate(truncated.len() - 3);
    assert!(matches!(decode(&truncated), Err(ProtobufError::Malformed(_))));

    // metadata (field 1) must be length-delimited, not a varint.
    assert!(matches!(
        decode(&envelope("v1", "ConfigMap", vec![0x08, 0x01])),
        Err(ProtobufError::Malformed(_))
    ));

    let gzipped = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some("v1".to_owned()),
            kind: Some("ConfigMap".to_owned()),
        }),
        raw: Some(Vec::new()),
        content_encoding: Some("gzip".to_owned()),
        content_type: None,
    };
    let mut gz = MAGIC.to_vec();
    gz.extend(gzipped.encode_to_vec());
    assert_eq!(
        decode(&gz),
        Err(ProtobufError::UnsupportedContentEncoding("gzip".to_owned()))
    );
}

#[test]
fn deeply_nested_schemas_are_refused() {
    let mut schema = apiext::JsonSchemaProps::default();
    for _ in 0..300 {
        schema = apiext::JsonSchemaProps {
            not: Some(Box::new(schema)),
            ..Default::default()
        };
    }
    let crd = apiext::CustomResourceDefinition {
        spec: Some(apiext::CustomResourceDefinitionSpec {
            versions: vec![apiext::CustomResourceDefinitionVersion {
                schema: Some(apiext::CustomResourceValidation {
                    open_apiv3_schema: Some(schema),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let result = decode(&body("apiextensions.k8s.io/v1", "CustomResourceDefinition", &crd));
    assert!(
        matches!(result, Err(ProtobufError::Malformed(ref m)) if m.contains("too deep")),
        "{result:?}"
    );
}

#[test]
fn every_required_kind_is_supported() {
    let kinds = [
        ("v1", "Namespace"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "ServiceAccount"),
        ("v1", "Service"),
        ("v1", "Pod"),
        ("v1", "Event"),
        ("v1", "Endpoints"),
        ("v1", "ResourceQuota"),
        ("v1", "LimitRange"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("networking.k8s.io/v1", "Ingress"),
        ("networking.k8s.io/v1", "IngressClass"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("coordination.k8s.io/v1", "Lease"),
        ("policy/v1", "PodDisruptionBudget"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("authorization.k8s.io/v1", "SubjectAccessReview"),
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
        ("authorization.k8s.io/v1", "LocalSubjectAccessReview"),
        ("authentication.k8s.io/v1", "TokenReview"),
        ("authentication.k8s.io/v1", "SelfSubjectReview"),
        ("meta.k8s.io/v1", "DeleteOptions"),
        ("v1", "DeleteOptions"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("events.k8s.io/v1", "Event"),
    ];
    for (api_version, kind) in kinds {
        assert!(supports(api_version, kind), "{api_version} {kind}");
        // An empty object must decode to the Go zero value without error.
        let decoded = decode(&envelope(api_version, kind, Vec::new())).expect("zero value decodes");
        assert_eq!(decoded["kind"], kind);
    }
    assert!(!supports("apps/v1beta1", "Deployment"));
}
