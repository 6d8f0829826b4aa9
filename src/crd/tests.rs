//! Schema tests for every CRD: the CEL rules compile, and each rule admits what CF admits and
//! rejects what CF rejects, on create and on update (transition rules), without a cluster.

use kube::{
    CustomResourceExt, Resource,
    core::cel::{ValidationErrors, compile_schema, validate_cel, validate_cel_update},
};
use serde::Serialize;
use serde_json::Value;

use super::*;
use crate::fixtures;

fn schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema.expect("every kubefoundry CRD has a schema")).unwrap()
}

/// Asserts the rejection names `message`, so a test can't pass on some unrelated failure.
fn assert_rejected(result: Result<(), ValidationErrors>, message: &str) {
    let errors = result.expect_err("the rule should reject this object");
    let text = format!("{errors:?}");
    assert!(
        text.contains(message),
        "expected a rejection saying {message:?}, got {text}"
    );
}

fn create<K: CustomResourceExt + Serialize>(obj: &K) -> Result<(), ValidationErrors> {
    validate_cel(obj)
}

fn update<K: CustomResourceExt + Serialize + Resource>(new: &K, old: &K) -> Result<(), ValidationErrors> {
    validate_cel_update(new, old)
}

/// A real kube-apiserver refuses non-structural schemas; the simulated cluster's checker
/// reproduces its structural-schema validation, CEL compilation included.
#[test]
fn every_crd_is_structural() {
    for crd in all() {
        let errors = kubefoundry_sim::schema::structural_errors(&schema_of(&crd));
        assert!(
            errors.is_empty(),
            "{} is not structural: {errors:#?}",
            crd.spec.names.kind
        );
    }
}

#[test]
fn every_cel_rule_compiles() {
    for crd in all() {
        let compiled = compile_schema(&schema_of(&crd));
        let errors = compiled.compilation_errors();
        assert!(
            errors.is_empty(),
            "{}: CEL rules do not compile: {errors:?}",
            crd.spec.names.kind
        );
    }
}

#[test]
fn every_kind_is_in_the_cf_category_with_a_short_name() {
    for crd in all() {
        let names = &crd.spec.names;
        assert_eq!(
            names.categories.as_deref(),
            Some(&["cf".to_owned()][..]),
            "{}",
            names.kind
        );
        assert!(
            names.short_names.as_ref().is_some_and(|s| !s.is_empty()),
            "{} has no short name",
            names.kind
        );
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.versions[0].name, VERSION);
    }
}

#[test]
fn every_kind_prints_ready_and_age() {
    for crd in all() {
        let columns = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        let names: Vec<_> = columns.iter().map(|c| c.name.as_str()).collect();
        assert!(
            names.contains(&"Ready") && names.contains(&"Age"),
            "{}: {names:?}",
            crd.spec.names.kind
        );
    }
}

#[test]
fn a_package_type_cannot_change() {
    let old = fixtures::bits_package("p1", "a1");
    let mut new = fixtures::docker_package("p1", "a1", "nginx");
    assert!(update(&old, &old).is_ok());
    assert_rejected(update(&new, &old), "a package's type cannot change");
    new.spec.type_ = PackageType::Bits;
    new.spec.image = None;
    assert!(update(&new, &old).is_ok());
}

#[test]
fn a_docker_package_needs_an_image() {
    let mut pkg = fixtures::docker_package("p1", "a1", "nginx:1.27");
    assert!(create(&pkg).is_ok());
    pkg.spec.image = None;
    assert_rejected(create(&pkg), "a docker package needs an image");
}

#[test]
fn a_bits_package_takes_no_image() {
    let mut pkg = fixtures::bits_package("p1", "a1");
    assert!(create(&pkg).is_ok());
    pkg.spec.image = Some("nginx".into());
    assert_rejected(create(&pkg), "a bits package takes no image");
}

#[test]
fn a_route_domain_cannot_change() {
    let old = fixtures::route("r1", "www", "d1");
    let mut new = old.clone().to_app("dest-1", "a1");
    assert!(update(&new, &old).is_ok(), "destinations may change");
    new.spec.domain_guid = "d2".into();
    assert_rejected(update(&new, &old), "a route's domain cannot change");
}

#[test]
fn a_route_host_and_path_cannot_change() {
    let old = fixtures::route("r1", "www", "d1");
    let mut new = old.clone();
    new.spec.host = "api".into();
    assert_rejected(update(&new, &old), "is immutable");
    let new = old.clone().path("/v2");
    assert_rejected(update(&new, &old), "is immutable");
}

#[test]
fn a_route_path_cannot_be_a_lone_slash() {
    assert!(create(&fixtures::route("r1", "www", "d1").path("/api")).is_ok());
    assert_rejected(
        create(&fixtures::route("r1", "www", "d1").path("/")),
        "path cannot be exactly /",
    );
}

#[test]
fn tcp_routes_need_a_port_and_http_routes_take_none() {
    let mut tcp = fixtures::route("r1", "", "d1");
    tcp.spec.protocol = RouteProtocol::Tcp;
    assert_rejected(create(&tcp), "tcp routes need a port");
    tcp.spec.port = Some(1025);
    assert!(create(&tcp).is_ok());
    let mut http = fixtures::route("r2", "www", "d1");
    http.spec.port = Some(8080);
    assert_rejected(create(&http), "http routes take no port");
}

#[test]
fn platform_env_var_names_are_reserved() {
    assert!(create(&fixtures::app("a1", "web").env("GREETING", "hi")).is_ok());
    for name in ["VCAP_SERVICES", "VMC_APP", "PORT"] {
        assert_rejected(
            create(&fixtures::app("a1", "web").env(name, "x")),
            "may not start with VCAP_",
        );
    }
    assert_rejected(
        create(&fixtures::app("a1", "web").env("1BAD", "x")),
        "must start with a letter",
    );
}

#[test]
fn a_docker_lifecycle_takes_no_buildpacks() {
    let mut app = fixtures::app("a1", "web").docker();
    assert!(create(&app).is_ok());
    app.spec.lifecycle.buildpacks = vec!["ruby_buildpack".into()];
    assert_rejected(create(&app), "a docker lifecycle takes no buildpacks");
}

#[test]
fn process_identity_is_immutable() {
    let old = fixtures::process("p1", "a1", "web");
    let scaled = old.clone().instances(5);
    assert!(update(&scaled, &old).is_ok(), "scaling is allowed");
    let mut retyped = old.clone();
    retyped.spec.process_type = "worker".into();
    assert_rejected(update(&retyped, &old), "is immutable");
    let mut moved = old.clone();
    moved.spec.app_guid = "a2".into();
    assert_rejected(update(&moved, &old), "is immutable");
}

#[test]
fn an_endpoint_needs_an_http_health_check() {
    let mut process = fixtures::process("p1", "a1", "web");
    process.spec.health_check.endpoint = Some("/healthz".into());
    assert_rejected(create(&process), "endpoint applies only to http health checks");
    process.spec.health_check.type_ = HealthCheckType::Http;
    assert!(create(&process).is_ok());
}

#[test]
fn builds_droplets_and_roles_are_immutable() {
    let old = fixtures::build("b1", "a1", "p1");
    let mut new = old.clone();
    new.spec.package_guid = "p2".into();
    assert_rejected(update(&new, &old), "a build's spec is immutable");

    let old = fixtures::droplet("d1", "a1", "nginx");
    let mut new = old.clone();
    new.spec.image = Some("httpd".into());
    assert_rejected(update(&new, &old), "a droplet's spec is immutable");

    let old = fixtures::user_role("r1", fixtures::SPACE, RoleType::SpaceDeveloper, "alice");
    let mut new = old.clone();
    new.spec.type_ = RoleType::SpaceManager;
    assert_rejected(update(&new, &old), "a role's spec is immutable");
}

#[test]
fn a_droplet_needs_a_build_or_an_image() {
    let mut droplet = fixtures::droplet("d1", "a1", "nginx");
    droplet.spec.image = None;
    assert_rejected(create(&droplet), "a droplet needs a buildGuid or an image");
    droplet.spec.build_guid = Some("b1".into());
    assert!(create(&droplet).is_ok());
}

#[test]
fn service_account_subjects_need_a_namespace() {
    let mut role = fixtures::user_role("r1", fixtures::SPACE, RoleType::SpaceAuditor, "ci");
    role.spec.subject.namespace = Some("ci".into());
    assert_rejected(
        create(&role),
        "namespace is required for ServiceAccount subjects and forbidden otherwise",
    );
    role.spec.subject.kind = SubjectKind::ServiceAccount;
    assert!(create(&role).is_ok());
    role.spec.subject.namespace = None;
    assert_rejected(create(&role), "namespace is required for ServiceAccount subjects");
}

#[test]
fn a_cancelled_task_stays_cancelled() {
    let running = fixtures::task("t1", "a1", "rake db:migrate");
    let mut cancelled = running.clone();
    cancelled.spec.canceled = true;
    assert!(update(&cancelled, &running).is_ok());
    assert_rejected(update(&running, &cancelled), "a cancelled task cannot be resumed");
    let mut recommanded = running.clone();
    recommanded.spec.command = "true".into();
    assert_rejected(update(&recommanded, &running), "is immutable");
}

#[test]
fn managed_service_instances_need_a_plan() {
    let mut instance = fixtures::user_provided_service("s1", "db", "db-creds");
    assert!(create(&instance).is_ok());
    instance.spec.service_plan_guid = Some("plan".into());
    assert_rejected(create(&instance), "user-provided instances take none");
    instance.spec.type_ = ServiceInstanceType::Managed;
    assert!(create(&instance).is_ok());
    instance.spec.service_plan_guid = None;
    assert_rejected(create(&instance), "managed instances need a servicePlanGuid");
}

#[test]
fn app_bindings_need_an_app_and_keys_a_name() {
    let mut binding = fixtures::binding("b1", "s1", "a1");
    assert!(create(&binding).is_ok());
    binding.spec.app_guid = None;
    assert_rejected(create(&binding), "app bindings need an appGuid");
    binding.spec.type_ = BindingType::Key;
    assert_rejected(create(&binding), "service keys need a displayName");
    binding.spec.display_name = Some("key-1".into());
    assert!(create(&binding).is_ok());
    let old = binding.clone();
    binding.spec.service_instance_guid = "s2".into();
    assert_rejected(update(&binding, &old), "is immutable");
}

#[test]
fn instances_have_a_floor_of_zero_in_the_schema() {
    let schema = schema_of(&CFProcess::crd());
    assert_eq!(
        schema["properties"]["spec"]["properties"]["instances"]["minimum"],
        0.0
    );
}

#[test]
fn conditions_are_a_list_map_keyed_by_type() {
    for crd in all() {
        let schema = schema_of(&crd);
        let conditions = &schema["properties"]["status"]["properties"]["conditions"];
        assert_eq!(
            conditions["x-kubernetes-list-type"], "map",
            "{}",
            crd.spec.names.kind
        );
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"])
        );
    }
}
