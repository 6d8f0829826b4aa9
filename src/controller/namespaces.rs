//! Namespaces that orgs and spaces own: the shared builder and the finalizer step that deletes
//! a namespace and waits until Kubernetes has emptied and removed it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ObjectMeta},
    runtime::controller::Action,
};

use super::{Context, Error, Result};
use crate::labels::{DISPLAY_NAME, MANAGED_BY, MANAGED_BY_VALUE, OWNER};

/// A display name as a label value: at most 63 characters of `[A-Za-z0-9._-]`, starting and
/// ending alphanumeric. The exact name lives in the annotation of the same key.
pub fn label_value(display: &str) -> String {
    let mapped: String = display
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// A kubefoundry-managed Namespace owned (by label) by `owner`.
pub fn managed_namespace<K: Resource<DynamicType = ()>>(
    name: &str,
    kind: &str,
    owner: &K,
    display: &str,
    extra_labels: &[(&str, String)],
) -> Namespace {
    let mut labels = BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (DISPLAY_NAME.to_owned(), label_value(display)),
        (
            OWNER.to_owned(),
            format!(
                "{kind}.{}.{}",
                owner.namespace().unwrap_or_default(),
                owner.name_any()
            ),
        ),
        // CF apps run as non-root with no privileges; enforce that for everything in the namespace.
        (
            "pod-security.kubernetes.io/enforce".to_owned(),
            "restricted".to_owned(),
        ),
    ]);
    labels.extend(extra_labels.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(DISPLAY_NAME.to_owned(), display.to_owned())])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The owner of a managed Namespace, from its owner label, if it is a `kind`.
pub fn owner_ref<K>(kind: &str, ns: &Namespace) -> Option<kube::runtime::reflector::ObjectRef<K>>
where
    K: Resource<DynamicType = ()>,
{
    let owner = ns.labels().get(OWNER)?;
    let mut parts = owner.splitn(3, '.');
    let (k, namespace, name) = (parts.next()?, parts.next()?, parts.next()?);
    (k == kind).then(|| kube::runtime::reflector::ObjectRef::new(name).within(namespace))
}

/// Deletes namespace `name` and reports `Waiting` until it is gone, so the owner's finalizer
/// stays until everything beneath is removed.
pub async fn cleanup(ctx: &Context, name: &str) -> Result<Action> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    match api.get_opt(name).await? {
        None => Ok(Action::await_change()),
        Some(ns) => {
            if ns.metadata.deletion_timestamp.is_none() {
                match api.delete(name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(Error::Waiting {
                reason: "NamespaceTerminating",
                message: format!("waiting for namespace {name} to be deleted"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_become_valid_label_values() {
        assert_eq!(label_value("My Org!"), "My-Org");
        assert_eq!(label_value("ok.name_1"), "ok.name_1");
        assert_eq!(label_value("  "), "");
        assert_eq!(label_value(&"x".repeat(100)).len(), 63);
    }
}
