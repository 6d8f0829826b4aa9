//! Names of the Kubernetes objects reconcilers create, in one place so that every reconciler
//! (and the façade) agrees on them: a process's Service is found by the route that targets it,
//! an app's VCAP_SERVICES Secret by the Deployment that reads it.

/// Kubernetes names are at most 63 characters where they become DNS labels (Services).
fn label(name: String) -> String {
    if name.len() <= 63 {
        return name;
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}-{:08x}", &name[..54].trim_end_matches('-'), hash & 0xffff_ffff)
}

/// The Deployment running `process_type` of `app`.
pub fn deployment(app: &str, process_type: &str) -> String {
    label(format!("{app}-{process_type}"))
}

/// The Service in front of `process_type` of `app` (exists while a route targets it).
pub fn service(app: &str, process_type: &str) -> String {
    label(format!("s-{app}-{process_type}"))
}

/// The Secret with an app's `VCAP_SERVICES` JSON (key `VCAP_SERVICES`).
pub fn vcap_services(app: &str) -> String {
    format!("{app}-vcap-services")
}

/// The Secret with a binding's credentials, in servicebinding.io layout.
pub fn binding_secret(binding: &str) -> String {
    format!("{binding}-binding")
}

/// The image pull Secret made from a droplet's (or package's) registry credentials.
pub fn image_pull_secret(owner: &str) -> String {
    format!("{owner}-image-pull")
}

/// The Ingress of a route.
pub fn ingress(route: &str) -> String {
    format!("route-{route}")
}

/// The copy of a domain's TLS Secret in a route's namespace (Ingress TLS reads Secrets only
/// from its own namespace).
pub fn ingress_tls(route: &str) -> String {
    format!("route-{route}-tls")
}

/// The CFProcess the app reconciler makes for `process_type` of `app`.
pub fn process(app: &str, process_type: &str) -> String {
    format!("{app}-{process_type}")
}

/// The Job of a task.
pub fn job(task: &str) -> String {
    format!("task-{task}")
}

/// The droplet a docker build produces: named after the build, so retries never duplicate it.
pub fn droplet_of_build(build: &str) -> String {
    build.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_service_names_stay_dns_labels() {
        let name = service(&"a".repeat(60), "web");
        assert!(name.len() <= 63, "{name}");
        assert_ne!(name, service(&"a".repeat(61), "web"));
        assert_eq!(service("app", "web"), "s-app-web");
    }
}
