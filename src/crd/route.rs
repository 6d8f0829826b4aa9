//! CFRoute: a host, domain and path that sends traffic to app processes. Lives in the space
//! namespace and becomes an Ingress with one backend per destination.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::CommonStatus;

/// The protocol a route or destination speaks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RouteProtocol {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 (h2c to the app).
    Http2,
    /// Raw TCP on a port of the domain.
    Tcp,
}

/// Where a route sends traffic: one process of one app.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// The destination's GUID, its key within the route.
    #[schemars(length(min = 1, max = 253))]
    pub guid: String,
    /// GUID of the CFApp receiving the traffic.
    #[schemars(length(min = 1, max = 253))]
    pub app_guid: String,
    /// The app's process type receiving the traffic.
    #[serde(default = "web")]
    #[schemars(length(min = 1, max = 63))]
    pub process_type: String,
    /// The app port; unset means the droplet's first exposed port, or 8080.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Relative share of traffic. Ingress cannot split traffic, so all set weights must be equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub weight: Option<i32>,
    /// `http1` or `http2`; unset means the route's protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<RouteProtocol>,
}

fn web() -> String {
    "web".to_owned()
}

/// The Kubernetes schema for destinations: a list-map keyed by GUID, so two writers can add
/// destinations with server-side apply without clobbering each other.
fn destinations_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let item = generator.subschema_for::<Destination>();
    schemars::json_schema!({
        "type": "array",
        "description": "Where the route sends traffic, keyed by destination GUID.",
        "maxItems": 100,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["guid"],
        "items": item,
    })
}

/// A Cloud Foundry route: `host.domain/path` (or `domain:port` for TCP) to app processes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefoundry.dev",
    version = "v1alpha1",
    kind = "CFRoute",
    namespaced,
    status = "CFRouteStatus",
    shortname = "cfroute",
    category = "cf",
    doc = "A Cloud Foundry route. Lives in its space's namespace and becomes an Ingress whose backends are its destinations.",
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.domainGuid",
    selectable = ".spec.host"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::cel::Rule::new("has(self.protocol) && self.protocol == 'tcp' ? (has(self.port) && (!has(self.path) || self.path == '') && (!has(self.host) || self.host == '')) : !has(self.port)").message("tcp routes need a port and no host or path; http routes take no port"))]
pub struct CFRouteSpec {
    /// The host label in front of the domain; empty for a route on the bare domain, `*` for a wildcard.
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$"))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub host: String,
    /// A path prefix starting with `/`, or empty.
    #[serde(default)]
    #[schemars(length(max = 128), regex(pattern = r"^(/[^?#\s]*)?$"))]
    #[x_kube(validation = kube::core::cel::Rule::new("self != '/'").message("path cannot be exactly /"))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub path: String,
    /// The port, for TCP routes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub port: Option<i32>,
    /// `http1`, `http2` or `tcp`.
    #[serde(default)]
    pub protocol: RouteProtocol,
    /// GUID of the CFDomain the route is on.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("a route's domain cannot change"))]
    pub domain_guid: String,
    /// Where the route sends traffic, keyed by destination GUID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "destinations_schema")]
    pub destinations: Vec<Destination>,
}

/// How one destination fared.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationStatus {
    /// The destination's GUID.
    pub guid: String,
    /// `Ready` when traffic reaches a Service of the app's process, else why not.
    pub state: String,
    /// Details when not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What the controller observed about a route.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CFRouteStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The route as users type it: `host.domain/path`, or `domain:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The fully qualified host name, `host.domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// Per-destination state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<DestinationStatus>,
}
