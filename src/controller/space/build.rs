//! The pure half of the CFSpace reconciler: the desired Namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::{core::v1::Namespace, rbac::v1::Role};
use kube::{Resource, ResourceExt};

use crate::{
    controller::{
        apply::{stamp, stamp_again},
        namespaces::managed_namespace,
        role::build::{space_manager, space_reader},
    },
    crd::CFSpace,
    labels::{MANAGED_BY, MANAGED_BY_VALUE, ORG_GUID, SPACE_GUID},
};

/// The Roles in the org namespace that let the space's members read the CFSpace, and its
/// managers rename it; owned by it.
pub fn space_roles(space: &CFSpace) -> [Role; 2] {
    let labels = BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (SPACE_GUID.to_owned(), space.name_any()),
    ]);
    let (guid, org) = (space.name_any(), space.namespace().unwrap_or_default());
    [
        space_reader(&guid, &org, labels.clone()),
        space_manager(&guid, &org, labels),
    ]
    .map(|mut role| {
        role.metadata.owner_references = space.controller_owner_ref(&()).map(|r| vec![r]);
        stamp_again(role)
    })
}

/// The space's Namespace: named by the space GUID, labelled with the space and org GUIDs.
pub fn namespace(space: &CFSpace, org: &str) -> Namespace {
    let guid = space.name_any();
    stamp(managed_namespace(
        &guid,
        "CFSpace",
        space,
        &space.spec.display_name,
        &[(ORG_GUID, org.to_owned()), (SPACE_GUID, guid.clone())],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    /// Role propagation finds an org's spaces by these two labels.
    #[test]
    fn space_namespace_carries_both_guids() {
        let ns = namespace(&fixtures::space("s1", "dev"), "org-1");
        assert_eq!(ns.metadata.name.as_deref(), Some("s1"));
        let labels = ns.labels();
        assert_eq!(
            labels.get("kubefoundry.dev/org-guid").map(String::as_str),
            Some("org-1")
        );
        assert_eq!(
            labels.get("kubefoundry.dev/space-guid").map(String::as_str),
            Some("s1")
        );
        assert_eq!(
            labels.get("kubefoundry.dev/owner").map(String::as_str),
            Some("CFSpace.org-1.s1")
        );
    }
}
