//! The pure half of the CFRoute reconciler: what an Ingress can express of a route, the
//! desired Ingress and TLS Secret copy, and the route's status fields.
//!
//! One Ingress path has exactly one backend and no weights, so a route is expressible only
//! when all its destinations reach the same Service port: several destinations on one
//! (app, process, port) collapse into one backend; destinations on different processes or
//! ports, or with unequal weights, make the route `Ready=False` and no Ingress exists for it
//! (an Ingress sending all traffic to one of them would be silently wrong).

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::{
        core::v1::Secret,
        networking::v1::{
            HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
            IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
        },
    },
};
use kube::{Resource, ResourceExt, api::ObjectMeta};

use crate::{
    controller::{Error, Result, apply::stamp, names},
    crd::{CFDomain, CFRoute, RouteProtocol, route::DestinationStatus},
    labels::{DOMAIN_GUID, MANAGED_BY, MANAGED_BY_VALUE, ROUTE_GUID, SPACE_GUID},
};

/// The port a destination without one receives traffic on (the process Service uses the same).
pub const DEFAULT_PORT: i32 = 8080;

/// The keys of a TLS Secret an Ingress controller reads (`ca.crt` travels along when present).
const TLS_KEYS: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

/// The one Service port all of a route's destinations reach.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    /// The Service, `names::service(app, process_type)`.
    pub service: String,
    /// The Service port.
    pub port: i32,
}

/// The fully qualified host: `host.domain`, the bare domain, or `*.domain` for a wildcard.
pub fn fqdn(route: &CFRoute, domain: &str) -> String {
    if route.spec.host.is_empty() {
        domain.to_owned()
    } else {
        format!("{}.{domain}", route.spec.host)
    }
}

/// The route as CF users type it: `host.domain/path`, or `domain:port` for TCP.
pub fn url(route: &CFRoute, domain: &str) -> String {
    match (route.spec.protocol, route.spec.port) {
        (RouteProtocol::Tcp, Some(port)) => format!("{domain}:{port}"),
        _ => format!("{}{}", fqdn(route, domain), route.spec.path),
    }
}

/// Checks the domain can carry this route: it is external, and a private domain belongs to
/// (or is shared with) the route's org. `org` is the org of the route's space, when known.
pub fn check_domain(domain: &CFDomain, org: Option<&str>) -> Result<()> {
    if domain.spec.internal {
        return Err(Error::Invalid {
            reason: "UnsupportedDomain",
            message: format!(
                "domain {:?} is internal; internal (container-to-container) routes are not supported, only Ingress-served HTTP routes",
                domain.spec.name
            ),
        });
    }
    let Some(owner) = &domain.spec.organization_guid else {
        return Ok(());
    };
    let allowed =
        org.is_some_and(|org| org == owner || domain.spec.shared_organization_guids.iter().any(|s| s == org));
    if allowed {
        Ok(())
    } else {
        Err(Error::Invalid {
            reason: "DomainNotAvailable",
            message: format!(
                "domain {:?} is private to org {owner:?} and not shared with this route's org {:?}",
                domain.spec.name,
                org.unwrap_or("(unknown)")
            ),
        })
    }
}

/// The single backend the route's destinations reach, `None` without destinations, or why an
/// Ingress cannot express the route.
pub fn backend(route: &CFRoute) -> Result<Option<Backend>> {
    if route.spec.protocol == RouteProtocol::Tcp {
        return Err(Error::Invalid {
            reason: "UnsupportedProtocol",
            message: "TCP routes are not supported: routes are served by an Ingress, which speaks HTTP only"
                .to_owned(),
        });
    }
    let destinations = &route.spec.destinations;
    let mut weights: Vec<Option<i32>> = destinations.iter().map(|d| d.weight).collect();
    weights.dedup();
    if weights.len() > 1 {
        let listed: Vec<String> = destinations
            .iter()
            .map(|d| {
                format!(
                    "{}={}",
                    d.guid,
                    d.weight.map_or_else(|| "unset".to_owned(), |w| w.to_string())
                )
            })
            .collect();
        return Err(Error::Invalid {
            reason: "UnsupportedWeights",
            message: format!(
                "destinations have unequal weights ({}); an Ingress cannot split traffic by weight, so the route is not served",
                listed.join(", ")
            ),
        });
    }
    let backends: Vec<Backend> = destinations
        .iter()
        .map(|d| Backend {
            service: names::service(&d.app_guid, &d.process_type),
            port: d.port.unwrap_or(DEFAULT_PORT),
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    match backends.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        many => {
            let listed: Vec<String> = destinations
                .iter()
                .map(|d| {
                    format!(
                        "{} → {}/{}:{}",
                        d.guid,
                        d.app_guid,
                        d.process_type,
                        d.port.unwrap_or(DEFAULT_PORT)
                    )
                })
                .collect();
            Err(Error::Invalid {
                reason: "CannotSplitTraffic",
                message: format!(
                    "an Ingress cannot split traffic between destinations: {} destinations reach {} different app processes or ports ({}); \
                     map the route to one app process, or unmap all but one",
                    destinations.len(),
                    many.len(),
                    listed.join(", ")
                ),
            })
        }
    }
}

fn labels(route: &CFRoute) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (ROUTE_GUID.to_owned(), route.name_any()),
        (SPACE_GUID.to_owned(), route.namespace().unwrap_or_default()),
        (DOMAIN_GUID.to_owned(), route.spec.domain_guid.clone()),
    ])
}

fn meta(route: &CFRoute, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: route.namespace(),
        labels: Some(labels(route)),
        owner_references: route.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// The route's Ingress: one rule for the FQDN, one `Prefix` path (the route's path, or `/`)
/// to `backend`, and TLS for the FQDN when `tls_secret` (a Secret in the route's namespace) is
/// given.
pub fn ingress(
    route: &CFRoute,
    domain: &CFDomain,
    backend: &Backend,
    ingress_class: Option<&str>,
    tls_secret: Option<&str>,
) -> Ingress {
    let host = fqdn(route, &domain.spec.name);
    let path = if route.spec.path.is_empty() {
        "/".to_owned()
    } else {
        route.spec.path.clone()
    };
    stamp(Ingress {
        metadata: meta(route, names::ingress(&route.name_any())),
        spec: Some(IngressSpec {
            ingress_class_name: ingress_class.map(str::to_owned),
            rules: Some(vec![IngressRule {
                host: Some(host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(path),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: backend.service.clone(),
                                port: Some(ServiceBackendPort {
                                    number: Some(backend.port),
                                    name: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            tls: tls_secret.map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![host]),
                    secret_name: Some(secret.to_owned()),
                }]
            }),
            default_backend: None,
        }),
        status: None,
    })
}

/// Checks a domain's TLS Secret holds a certificate and key.
pub fn check_tls_secret(secret: &Secret) -> Result<()> {
    let data = secret.data.as_ref();
    let missing: Vec<&str> = TLS_KEYS[..2]
        .iter()
        .copied()
        .filter(|k| data.and_then(|d| d.get(*k)).is_none_or(|v| v.0.is_empty()))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid {
            reason: "InvalidTLSSecret",
            message: format!(
                "TLS Secret {:?} lacks {}",
                secret.name_any(),
                missing.join(" and ")
            ),
        })
    }
}

/// The copy of the domain's TLS Secret in the route's namespace, owned by the route.
pub fn tls_secret(route: &CFRoute, source: &Secret) -> Secret {
    let data: BTreeMap<String, ByteString> = source
        .data
        .iter()
        .flatten()
        .filter(|(k, _)| TLS_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    stamp(Secret {
        metadata: meta(route, names::ingress_tls(&route.name_any())),
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    })
}

/// Where a destination's target stands in the caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The CFApp and its CFProcess of the destination's type exist.
    Found,
    /// No CFApp with that GUID in the route's namespace.
    NoApp,
    /// The app exists but has no process of that type.
    NoProcess,
}

/// Per-destination status, in the route's destination order; `target` tells where each one's
/// app and process stand.
pub fn destination_statuses(
    route: &CFRoute,
    target: impl Fn(&str, &str) -> Target,
) -> Vec<DestinationStatus> {
    route
        .spec
        .destinations
        .iter()
        .map(|d| {
            let (state, message) = match target(&d.app_guid, &d.process_type) {
                Target::Found => ("Ready", None),
                Target::NoApp => (
                    "AppNotFound",
                    Some(format!("no CFApp {:?} in this space", d.app_guid)),
                ),
                Target::NoProcess => (
                    "ProcessNotFound",
                    Some(format!(
                        "CFApp {:?} has no {:?} process",
                        d.app_guid, d.process_type
                    )),
                ),
            };
            DestinationStatus {
                guid: d.guid.clone(),
                state: state.to_owned(),
                message,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::{crd::Destination, fixtures};

    fn owned(mut route: CFRoute) -> CFRoute {
        route.metadata.uid = Some("uid-r1".to_owned());
        route
    }

    fn without_hash<K: serde::Serialize>(obj: &K) -> serde_json::Value {
        let mut value = serde_json::to_value(obj).unwrap();
        let annotations = value["metadata"]["annotations"].as_object_mut().unwrap();
        assert!(annotations.remove("kubefoundry.dev/applied-hash").is_some());
        if annotations.is_empty() {
            value["metadata"].as_object_mut().unwrap().remove("annotations");
        }
        value
    }

    fn destination(
        guid: &str,
        app: &str,
        process_type: &str,
        port: Option<i32>,
        weight: Option<i32>,
    ) -> Destination {
        Destination {
            guid: guid.to_owned(),
            app_guid: app.to_owned(),
            process_type: process_type.to_owned(),
            port,
            weight,
            protocol: None,
        }
    }

    fn owner() -> serde_json::Value {
        json!([{
            "apiVersion": "kubefoundry.dev/v1alpha1",
            "kind": "CFRoute",
            "name": "r1",
            "uid": "uid-r1",
            "controller": true,
        }])
    }

    /// Backends follow the process Service contract: `s-<app>-<type>` on the destination port.
    #[test]
    fn route_with_path_becomes_a_prefix_ingress_with_tls() {
        let route = owned(
            fixtures::route("r1", "myapp", "d1")
                .to_app("dest-1", "a1")
                .path("/api"),
        );
        let mut domain = fixtures::domain("d1", "apps.example.com");
        domain.spec.tls_secret_name = Some("apps-tls".to_owned());
        let backend = backend(&route).unwrap().unwrap();
        let ing = ingress(&route, &domain, &backend, Some("nginx"), Some("route-r1-tls"));
        assert_eq!(
            without_hash(&ing),
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {
                    "name": "route-r1",
                    "namespace": "space-1",
                    "labels": {
                        "app.kubernetes.io/managed-by": "kubefoundry",
                        "kubefoundry.dev/domain-guid": "d1",
                        "kubefoundry.dev/route-guid": "r1",
                        "kubefoundry.dev/space-guid": "space-1",
                    },
                    "ownerReferences": owner(),
                },
                "spec": {
                    "ingressClassName": "nginx",
                    "rules": [{
                        "host": "myapp.apps.example.com",
                        "http": {"paths": [{
                            "path": "/api",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "s-a1-web", "port": {"number": 8080}}},
                        }]},
                    }],
                    "tls": [{"hosts": ["myapp.apps.example.com"], "secretName": "route-r1-tls"}],
                },
            })
        );
    }

    #[test]
    fn bare_domain_route_serves_slash_on_the_destination_port() {
        let mut route = owned(fixtures::route("r1", "", "d1"));
        route
            .spec
            .destinations
            .push(destination("dest-1", "a1", "worker", Some(9000), None));
        let domain = fixtures::domain("d1", "example.com");
        let ing = ingress(&route, &domain, &backend(&route).unwrap().unwrap(), None, None);
        assert_eq!(
            without_hash(&ing)["spec"],
            json!({
                "rules": [{
                    "host": "example.com",
                    "http": {"paths": [{
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "s-a1-worker", "port": {"number": 9000}}},
                    }]},
                }],
            })
        );
    }

    #[test]
    fn urls_and_fqdns() {
        let plain = fixtures::route("r1", "myapp", "d1");
        assert_eq!(fqdn(&plain, "apps.example.com"), "myapp.apps.example.com");
        assert_eq!(url(&plain, "apps.example.com"), "myapp.apps.example.com");
        let pathed = fixtures::route("r1", "myapp", "d1").path("/v1/api");
        assert_eq!(url(&pathed, "apps.example.com"), "myapp.apps.example.com/v1/api");
        let bare = fixtures::route("r1", "", "d1");
        assert_eq!(fqdn(&bare, "example.com"), "example.com");
        let wildcard = fixtures::route("r1", "*", "d1");
        assert_eq!(fqdn(&wildcard, "example.com"), "*.example.com");
        let mut tcp = fixtures::route("r1", "", "d1");
        tcp.spec.protocol = RouteProtocol::Tcp;
        tcp.spec.port = Some(1024);
        assert_eq!(url(&tcp, "tcp.example.com"), "tcp.example.com:1024");
    }

    #[test]
    fn no_destinations_means_no_backend() {
        assert_eq!(backend(&fixtures::route("r1", "h", "d1")).unwrap(), None);
    }

    /// Equal weights, or several destinations on the same process port, are one backend.
    #[test]
    fn equal_weights_on_one_process_are_one_backend() {
        let mut route = fixtures::route("r1", "h", "d1");
        route
            .spec
            .destinations
            .push(destination("x", "a1", "web", None, Some(50)));
        route
            .spec
            .destinations
            .push(destination("y", "a1", "web", Some(8080), Some(50)));
        assert_eq!(
            backend(&route).unwrap(),
            Some(Backend {
                service: "s-a1-web".to_owned(),
                port: 8080
            })
        );
    }

    #[test]
    fn unequal_weights_are_unsupported() {
        let mut route = fixtures::route("r1", "h", "d1");
        route
            .spec
            .destinations
            .push(destination("x", "a1", "web", None, Some(80)));
        route
            .spec
            .destinations
            .push(destination("y", "a2", "web", None, Some(20)));
        let err = backend(&route).unwrap_err();
        assert!(err.is_permanent());
        assert_eq!(
            err.condition(),
            (
                "UnsupportedWeights",
                "destinations have unequal weights (x=80, y=20); an Ingress cannot split traffic by weight, so the route is not served"
                    .to_owned()
            )
        );
        // A weight on one destination only is unequal too.
        route.spec.destinations[1].weight = None;
        assert_eq!(backend(&route).unwrap_err().condition().0, "UnsupportedWeights");
    }

    #[test]
    fn destinations_on_two_processes_cannot_be_split() {
        let route = fixtures::route("r1", "h", "d1")
            .to_app("x", "a1")
            .to_app("y", "a2");
        let (reason, message) = backend(&route).unwrap_err().condition();
        assert_eq!(reason, "CannotSplitTraffic");
        assert!(
            message.starts_with("an Ingress cannot split traffic between destinations"),
            "{message}"
        );
        assert!(message.contains("y → a2/web:8080"), "{message}");
    }

    #[test]
    fn tcp_routes_are_unsupported() {
        let mut route = fixtures::route("r1", "", "d1").to_app("x", "a1");
        route.spec.protocol = RouteProtocol::Tcp;
        route.spec.port = Some(1024);
        assert_eq!(backend(&route).unwrap_err().condition().0, "UnsupportedProtocol");
    }

    #[test]
    fn private_and_internal_domains() {
        let mut domain = fixtures::domain("d1", "private.example.com");
        assert!(check_domain(&domain, None).is_ok());
        domain.spec.organization_guid = Some("org-a".to_owned());
        domain.spec.shared_organization_guids = vec!["org-b".to_owned()];
        assert!(check_domain(&domain, Some("org-a")).is_ok());
        assert!(check_domain(&domain, Some("org-b")).is_ok());
        assert_eq!(
            check_domain(&domain, Some("org-c")).unwrap_err().condition().0,
            "DomainNotAvailable"
        );
        assert_eq!(
            check_domain(&domain, None).unwrap_err().condition().0,
            "DomainNotAvailable"
        );
        let mut internal = fixtures::domain("d2", "apps.internal");
        internal.spec.internal = true;
        assert_eq!(
            check_domain(&internal, None).unwrap_err().condition().0,
            "UnsupportedDomain"
        );
    }

    /// The copy keeps only what an Ingress controller reads, so unrelated keys never spread.
    #[test]
    fn tls_secret_copy_is_owned_by_the_route() {
        let route = owned(fixtures::route("r1", "h", "d1"));
        let source = Secret {
            metadata: ObjectMeta {
                name: Some("apps-tls".to_owned()),
                namespace: Some("cf".to_owned()),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".to_owned()),
            data: Some(BTreeMap::from([
                ("tls.crt".to_owned(), ByteString(b"CERT".to_vec())),
                ("tls.key".to_owned(), ByteString(b"KEY".to_vec())),
                ("other".to_owned(), ByteString(b"x".to_vec())),
            ])),
            ..Default::default()
        };
        assert!(check_tls_secret(&source).is_ok());
        assert_eq!(
            without_hash(&tls_secret(&route, &source)),
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "route-r1-tls",
                    "namespace": "space-1",
                    "labels": {
                        "app.kubernetes.io/managed-by": "kubefoundry",
                        "kubefoundry.dev/domain-guid": "d1",
                        "kubefoundry.dev/route-guid": "r1",
                        "kubefoundry.dev/space-guid": "space-1",
                    },
                    "ownerReferences": owner(),
                },
                "type": "kubernetes.io/tls",
                "data": {"tls.crt": "Q0VSVA==", "tls.key": "S0VZ"},
            })
        );
        let empty = Secret {
            metadata: source.metadata.clone(),
            ..Default::default()
        };
        assert_eq!(
            check_tls_secret(&empty).unwrap_err().condition(),
            (
                "InvalidTLSSecret",
                "TLS Secret \"apps-tls\" lacks tls.crt and tls.key".to_owned()
            )
        );
    }

    #[test]
    fn destination_states_name_what_is_missing() {
        let route = fixtures::route("r1", "h", "d1")
            .to_app("x", "a1")
            .to_app("y", "a2")
            .to_app("z", "a3");
        let statuses = destination_statuses(&route, |app, _| match app {
            "a1" => Target::Found,
            "a2" => Target::NoProcess,
            _ => Target::NoApp,
        });
        assert_eq!(
            serde_json::to_value(&statuses).unwrap(),
            json!([
                {"guid": "x", "state": "Ready"},
                {"guid": "y", "state": "ProcessNotFound", "message": "CFApp \"a2\" has no \"web\" process"},
                {"guid": "z", "state": "AppNotFound", "message": "no CFApp \"a3\" in this space"},
            ])
        );
    }
}
