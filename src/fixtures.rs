//! Builders for test objects: `fixtures::app("a1").started().droplet("d1")` reads better in a
//! test than a struct literal, and keeps tests working when a spec grows a field.

use kube::api::ObjectMeta;

use crate::crd::{
    AppState, CFApp, CFAppSpec, CFBuild, CFBuildSpec, CFDomain, CFDomainSpec, CFDroplet, CFDropletSpec,
    CFOrg, CFOrgSpec, CFPackage, CFPackageSpec, CFProcess, CFProcessSpec, CFRole, CFRoleSpec, CFRoute,
    CFRouteSpec, CFServiceBinding, CFServiceBindingSpec, CFServiceInstance, CFServiceInstanceSpec, CFSpace,
    CFSpaceSpec, CFTask, CFTaskSpec, Destination, HealthCheck, Lifecycle, LifecycleType, PackageType,
    RoleSubject, RoleType, RouteProtocol, SecretRef, SubjectKind, service_binding::BindingType,
    service_instance::ServiceInstanceType,
};

/// The root namespace fixtures use.
pub const ROOT_NS: &str = "cf";
/// The org fixtures use; also the org namespace.
pub const ORG: &str = "org-1";
/// The space fixtures use; also the space namespace.
pub const SPACE: &str = "space-1";

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        ..ObjectMeta::default()
    }
}

/// An org named `display` in the root namespace.
pub fn org(guid: &str, display: &str) -> CFOrg {
    CFOrg {
        metadata: meta(guid, ROOT_NS),
        spec: CFOrgSpec {
            display_name: display.to_owned(),
            suspended: false,
        },
        status: None,
    }
}

/// A space named `display` in the fixture org.
pub fn space(guid: &str, display: &str) -> CFSpace {
    CFSpace {
        metadata: meta(guid, ORG),
        spec: CFSpaceSpec {
            display_name: display.to_owned(),
            allow_ssh: true,
        },
        status: None,
    }
}

/// A stopped buildpack app named `display` in the fixture space.
pub fn app(guid: &str, display: &str) -> CFApp {
    CFApp {
        metadata: meta(guid, SPACE),
        spec: CFAppSpec {
            display_name: display.to_owned(),
            desired_state: AppState::Stopped,
            lifecycle: Lifecycle::default(),
            env: Default::default(),
            current_droplet_guid: None,
            restarted_at: None,
        },
        status: None,
    }
}

impl CFApp {
    /// Desired state STARTED.
    pub fn started(mut self) -> Self {
        self.spec.desired_state = AppState::Started;
        self
    }

    /// The docker lifecycle.
    pub fn docker(mut self) -> Self {
        self.spec.lifecycle = Lifecycle {
            type_: LifecycleType::Docker,
            ..Lifecycle::default()
        };
        self
    }

    /// Runs this droplet.
    pub fn droplet(mut self, guid: &str) -> Self {
        self.spec.current_droplet_guid = Some(guid.to_owned());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.spec.env.insert(name.to_owned(), value.to_owned());
        self
    }
}

/// A process of `app` with one instance and a port health check.
pub fn process(guid: &str, app: &str, process_type: &str) -> CFProcess {
    CFProcess {
        metadata: meta(guid, SPACE),
        spec: CFProcessSpec {
            app_guid: app.to_owned(),
            process_type: process_type.to_owned(),
            command: None,
            instances: 1,
            memory_in_mb: Some(256),
            disk_in_mb: Some(1024),
            log_rate_limit_in_bytes_per_second: None,
            health_check: HealthCheck::default(),
            readiness_health_check: None,
        },
        status: None,
    }
}

impl CFProcess {
    /// Sets the instance count.
    pub fn instances(mut self, n: i32) -> Self {
        self.spec.instances = n;
        self
    }
}

/// A docker package of `app` for `image`.
pub fn docker_package(guid: &str, app: &str, image: &str) -> CFPackage {
    CFPackage {
        metadata: meta(guid, SPACE),
        spec: CFPackageSpec {
            app_guid: app.to_owned(),
            type_: PackageType::Docker,
            image: Some(image.to_owned()),
            credentials: None,
        },
        status: None,
    }
}

/// A bits package of `app`, awaiting upload.
pub fn bits_package(guid: &str, app: &str) -> CFPackage {
    CFPackage {
        metadata: meta(guid, SPACE),
        spec: CFPackageSpec {
            app_guid: app.to_owned(),
            type_: PackageType::Bits,
            image: None,
            credentials: None,
        },
        status: None,
    }
}

/// A build of `package` for `app`.
pub fn build(guid: &str, app: &str, package: &str) -> CFBuild {
    CFBuild {
        metadata: meta(guid, SPACE),
        spec: CFBuildSpec {
            app_guid: app.to_owned(),
            package_guid: package.to_owned(),
            lifecycle: None,
            staging_memory_in_mb: None,
            staging_disk_in_mb: None,
            staging_log_rate_limit_bytes_per_second: None,
        },
        status: None,
    }
}

/// A droplet of `app` running `image` with a `web` process type.
pub fn droplet(guid: &str, app: &str, image: &str) -> CFDroplet {
    CFDroplet {
        metadata: meta(guid, SPACE),
        spec: CFDropletSpec {
            app_guid: app.to_owned(),
            build_guid: None,
            package_guid: None,
            lifecycle: LifecycleType::Docker,
            image: Some(image.to_owned()),
            process_types: [("web".to_owned(), String::new())].into(),
            credentials: None,
        },
        status: None,
    }
}

/// A shared domain.
pub fn domain(guid: &str, name: &str) -> CFDomain {
    CFDomain {
        metadata: meta(guid, ROOT_NS),
        spec: CFDomainSpec {
            name: name.to_owned(),
            internal: false,
            organization_guid: None,
            shared_organization_guids: Vec::new(),
            tls_secret_name: None,
        },
        status: None,
    }
}

/// An http route `host` on `domain`, with no destinations.
pub fn route(guid: &str, host: &str, domain: &str) -> CFRoute {
    CFRoute {
        metadata: meta(guid, SPACE),
        spec: CFRouteSpec {
            host: host.to_owned(),
            path: String::new(),
            port: None,
            protocol: RouteProtocol::Http1,
            domain_guid: domain.to_owned(),
            destinations: Vec::new(),
        },
        status: None,
    }
}

impl CFRoute {
    /// Adds a destination to `app`'s web process.
    pub fn to_app(mut self, destination: &str, app: &str) -> Self {
        self.spec.destinations.push(Destination {
            guid: destination.to_owned(),
            app_guid: app.to_owned(),
            process_type: "web".to_owned(),
            port: None,
            weight: None,
            protocol: None,
        });
        self
    }

    /// Sets the path.
    pub fn path(mut self, path: &str) -> Self {
        self.spec.path = path.to_owned();
        self
    }
}

/// A role of `type_` for user `user`, in `namespace`.
pub fn user_role(guid: &str, namespace: &str, type_: RoleType, user: &str) -> CFRole {
    CFRole {
        metadata: meta(guid, namespace),
        spec: CFRoleSpec {
            type_,
            subject: RoleSubject {
                kind: SubjectKind::User,
                name: user.to_owned(),
                namespace: None,
                origin: None,
            },
        },
        status: None,
    }
}

/// A task of `app` running `command`.
pub fn task(guid: &str, app: &str, command: &str) -> CFTask {
    CFTask {
        metadata: meta(guid, SPACE),
        spec: CFTaskSpec {
            app_guid: app.to_owned(),
            display_name: guid.to_owned(),
            command: command.to_owned(),
            droplet_guid: None,
            memory_in_mb: None,
            disk_in_mb: None,
            log_rate_limit_in_bytes_per_second: None,
            canceled: false,
        },
        status: None,
    }
}

/// A user-provided service instance whose credentials live in Secret `secret`.
pub fn user_provided_service(guid: &str, display: &str, secret: &str) -> CFServiceInstance {
    CFServiceInstance {
        metadata: meta(guid, SPACE),
        spec: CFServiceInstanceSpec {
            display_name: display.to_owned(),
            type_: ServiceInstanceType::UserProvided,
            credentials: Some(SecretRef {
                name: secret.to_owned(),
            }),
            syslog_drain_url: None,
            route_service_url: None,
            tags: Vec::new(),
            service_plan_guid: None,
        },
        status: None,
    }
}

/// An app binding of `instance` to `app`.
pub fn binding(guid: &str, instance: &str, app: &str) -> CFServiceBinding {
    CFServiceBinding {
        metadata: meta(guid, SPACE),
        spec: CFServiceBindingSpec {
            display_name: None,
            type_: BindingType::App,
            service_instance_guid: instance.to_owned(),
            app_guid: Some(app.to_owned()),
        },
        status: None,
    }
}
