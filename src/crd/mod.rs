//! The Cloud Foundry resources as CRDs in `kubefoundry.dev/v1alpha1`, one file per kind, and
//! the generation of their CustomResourceDefinitions (`kubefoundry crds`).
//!
//! Where each kind lives:
//! - root namespace: [`CFOrg`], [`CFDomain`] and global [`CFRole`]s;
//! - org namespace (named by the org GUID): [`CFSpace`] and org [`CFRole`]s;
//! - space namespace (named by the space GUID): everything else, and space [`CFRole`]s.
//!
//! A relationship that the namespace already expresses (a space's org, an app's space) is not
//! repeated in `spec`: it could only disagree with the namespace. Every other relationship is a
//! GUID in `spec`, mirrored into the labels in [`crate::labels`] for filtered lists.

// kube's `printcolumn(...)` and `selectable` repeat argument names by design.
#![allow(clippy::duplicated_attributes)]

pub mod app;
pub mod build;
pub mod common;
pub mod domain;
pub mod droplet;
pub mod org;
pub mod package;
pub mod process;
pub mod role;
pub mod route;
pub mod service_binding;
pub mod service_instance;
pub mod space;
pub mod task;

use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use app::{AppState, CFApp, CFAppSpec, CFAppStatus};
pub use build::{BuildState, CFBuild, CFBuildSpec, CFBuildStatus};
pub use common::{CATEGORY, CommonStatus, GROUP, Lifecycle, LifecycleType, READY, SecretRef, VERSION};
pub use domain::{CFDomain, CFDomainSpec, CFDomainStatus};
pub use droplet::{CFDroplet, CFDropletSpec, CFDropletStatus, DropletState};
pub use org::{CFOrg, CFOrgSpec, CFOrgStatus};
pub use package::{CFPackage, CFPackageSpec, CFPackageStatus, PackageState, PackageType};
pub use process::{CFProcess, CFProcessSpec, CFProcessStatus, HealthCheck, HealthCheckType};
pub use role::{CFRole, CFRoleSpec, CFRoleStatus, RoleScope, RoleSubject, RoleType, SubjectKind};
pub use route::{CFRoute, CFRouteSpec, CFRouteStatus, Destination, RouteProtocol};
pub use service_binding::{BindingType, CFServiceBinding, CFServiceBindingSpec, CFServiceBindingStatus};
pub use service_instance::{
    CFServiceInstance, CFServiceInstanceSpec, CFServiceInstanceStatus, ServiceInstanceType,
};
pub use space::{CFSpace, CFSpaceSpec, CFSpaceStatus};
pub use task::{CFTask, CFTaskSpec, CFTaskStatus, TaskState};

/// Every kubefoundry CRD, in dependency order (orgs before spaces before apps …).
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        CFOrg::crd(),
        CFSpace::crd(),
        CFDomain::crd(),
        CFRole::crd(),
        CFApp::crd(),
        CFProcess::crd(),
        CFPackage::crd(),
        CFBuild::crd(),
        CFDroplet::crd(),
        CFRoute::crd(),
        CFTask::crd(),
        CFServiceInstance::crd(),
        CFServiceBinding::crd(),
    ]
}

/// Errors writing CRDs out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CRD did not serialize; a bug in a type's schema.
    #[error("cannot render CRD {name} as YAML: {source}")]
    Render {
        /// The CRD's name.
        name: String,
        /// Why.
        #[source]
        source: serde_yaml::Error,
    },
    /// The output directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One CRD as a YAML document, the exact bytes `crds/` holds.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, Error> {
    serde_yaml::to_string(crd).map_err(|source| Error::Render {
        name: crd_name(crd),
        source,
    })
}

/// Every CRD as one multi-document YAML stream.
pub fn all_yaml() -> Result<String, Error> {
    let docs = all().iter().map(to_yaml).collect::<Result<Vec<_>, _>>()?;
    Ok(docs.iter().map(|d| format!("---\n{d}")).collect())
}

/// The file name a CRD is written to: its kind, lowercased.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.spec.names.kind.to_lowercase())
}

/// Writes one file per kind into `dir`, creating it if needed, and returns the paths written.
pub fn write_all(dir: &Path) -> Result<Vec<String>, Error> {
    let write_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let mut written = Vec::new();
    for crd in all() {
        let path = dir.join(file_name(&crd));
        std::fs::write(&path, to_yaml(&crd)?).map_err(write_err(&path))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

fn crd_name(crd: &CustomResourceDefinition) -> String {
    crd.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests;
