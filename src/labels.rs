//! Label and annotation keys, finalizer names and the field manager: the constants every
//! controller, the façade and kubectl users agree on.

/// The one field manager every kubefoundry write uses for server-side apply.
pub const FIELD_MANAGER: &str = "kubefoundry";
/// The field manager that adopts user-made CF objects into their app (owner reference and
/// relationship labels). Separate from [`FIELD_MANAGER`] so an apply that owns nothing else
/// never prunes spec fields the façade applied under that name, and vice versa.
pub const ADOPTION_FIELD_MANAGER: &str = "kubefoundry-adoption";

/// The GUID of the org an object belongs to.
pub const ORG_GUID: &str = "kubefoundry.dev/org-guid";
/// The GUID of the space an object belongs to.
pub const SPACE_GUID: &str = "kubefoundry.dev/space-guid";
/// The GUID of the app an object belongs to.
pub const APP_GUID: &str = "kubefoundry.dev/app-guid";
/// The process type of a process and its children.
pub const PROCESS_TYPE: &str = "kubefoundry.dev/process-type";
/// The GUID of the package a build or droplet came from.
pub const PACKAGE_GUID: &str = "kubefoundry.dev/package-guid";
/// The GUID of the build a droplet came from.
pub const BUILD_GUID: &str = "kubefoundry.dev/build-guid";
/// The GUID of the domain a route is on.
pub const DOMAIN_GUID: &str = "kubefoundry.dev/domain-guid";
/// The GUID of the route an Ingress or Service serves.
pub const ROUTE_GUID: &str = "kubefoundry.dev/route-guid";
/// The GUID of the service instance a binding binds.
pub const SERVICE_INSTANCE_GUID: &str = "kubefoundry.dev/service-instance-guid";
/// The CF role type of a CFRole and its RoleBindings.
pub const ROLE_TYPE: &str = "kubefoundry.dev/role-type";
/// The display name of an org or space, on its Namespace (truncated to a valid label value).
pub const DISPLAY_NAME: &str = "kubefoundry.dev/display-name";

/// On every child: a hash of the spec kubefoundry last applied, so an unchanged desire skips
/// the write entirely.
pub const APPLIED_HASH: &str = "kubefoundry.dev/applied-hash";
/// On children that cannot carry an owner reference (Namespaces): `Kind/namespace/name` of the owner.
pub const OWNER: &str = "kubefoundry.dev/owner";

/// Marks every object kubefoundry creates, for pruning by selector.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "kubefoundry";

/// Guards deletion of an org until its namespace and everything in it are gone.
pub const ORG_FINALIZER: &str = "kubefoundry.dev/org";
/// Guards deletion of a space until its namespace and everything in it are gone.
pub const SPACE_FINALIZER: &str = "kubefoundry.dev/space";
/// Guards deletion of a role until its bindings in other namespaces are gone.
pub const ROLE_FINALIZER: &str = "kubefoundry.dev/role";
/// Guards deletion of a service binding until the app's `VCAP_SERVICES` no longer lists it.
pub const SERVICE_BINDING_FINALIZER: &str = "kubefoundry.dev/service-binding";

/// The GUID of the droplet a workload runs (pod-template annotation: a droplet switch rolls).
pub const DROPLET_GUID: &str = "kubefoundry.dev/droplet-guid";
/// The GUID of the task a Job and its Pod run.
pub const TASK_GUID: &str = "kubefoundry.dev/task-guid";
/// Pod-template annotation copying an app's `spec.restartedAt`, so a restart rolls its pods.
pub const RESTARTED_AT: &str = "kubefoundry.dev/restarted-at";
/// Pod-template annotation hashing the app's binding Secrets, so credential changes roll pods.
pub const SECRETS_HASH: &str = "kubefoundry.dev/secrets-hash";
/// CFApp annotation: the last task sequence number handed out (a counter with optimistic locking).
pub const TASK_SEQUENCE: &str = "kubefoundry.dev/task-sequence";
