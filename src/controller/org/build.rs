//! The pure half of the CFOrg reconciler: the desired Namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::{core::v1::Namespace, rbac::v1::Role};
use kube::{Resource, ResourceExt};

use crate::{
    controller::{
        apply::{stamp, stamp_again},
        namespaces::managed_namespace,
        role::build::org_reader,
    },
    crd::CFOrg,
    labels::{MANAGED_BY, MANAGED_BY_VALUE, ORG_GUID},
};

/// The Role in the root namespace that lets the org's members read the CFOrg and list
/// domains; owned by the CFOrg, so it goes when the org does.
pub fn reader_role(org: &CFOrg) -> Role {
    let labels = BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (ORG_GUID.to_owned(), org.name_any()),
    ]);
    let mut role = org_reader(&org.name_any(), &org.namespace().unwrap_or_default(), labels);
    role.metadata.owner_references = org.controller_owner_ref(&()).map(|r| vec![r]);
    stamp_again(role)
}

/// The org's Namespace: named by the org GUID, labelled with it and the display name.
pub fn namespace(org: &CFOrg) -> Namespace {
    let guid = org.name_any();
    stamp(managed_namespace(
        &guid,
        "CFOrg",
        org,
        &org.spec.display_name,
        &[(ORG_GUID, guid.clone())],
    ))
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::fixtures;

    /// The namespace carries the org GUID label that space and role reconcilers resolve through,
    /// and the display name that `kubectl get ns -L` users read.
    #[test]
    fn org_namespace_is_named_and_labelled_by_guid() {
        let ns = namespace(&fixtures::org("5f0c3a", "My Org!"));
        let mut value = serde_json::to_value(&ns).unwrap();
        value["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("kubefoundry.dev/applied-hash");
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": "5f0c3a",
                    "labels": {
                        "app.kubernetes.io/managed-by": "kubefoundry",
                        "kubefoundry.dev/display-name": "My-Org",
                        "kubefoundry.dev/org-guid": "5f0c3a",
                        "kubefoundry.dev/owner": "CFOrg.cf.5f0c3a",
                        "pod-security.kubernetes.io/enforce": "restricted",
                    },
                    "annotations": {"kubefoundry.dev/display-name": "My Org!"},
                },
            })
        );
    }

    #[test]
    fn renaming_changes_only_the_display_name() {
        let a = namespace(&fixtures::org("o1", "a"));
        let b = namespace(&fixtures::org("o1", "b"));
        assert_eq!(a.metadata.name, b.metadata.name);
        assert_ne!(
            a.annotations().get("kubefoundry.dev/applied-hash"),
            b.annotations().get("kubefoundry.dev/applied-hash")
        );
    }
}
