//! Adopting user-made CF objects (packages, builds, droplets) into their CFApp: an owner
//! reference, so deleting the app garbage-collects them as Korifi's do, and labels mirroring
//! their relationships, for filtered lists.
//!
//! The objects belong to their authors (the façade, kubectl, a GitOps tool), so adoption touches
//! nothing else: a server-side apply under [`ADOPTION_FIELD_MANAGER`] whose body holds only
//! `metadata.ownerReferences` and those labels. Owner references merge per `uid` and labels per
//! key, so a later `kubectl apply` (client-side: its three-way patch never deletes what its
//! last-applied configuration did not hold; server-side: another manager's fields neither
//! conflict nor go) keeps them. A label the author set to another value is the author's: it is
//! left alone rather than fought over. Adopting an object that is already adopted writes nothing.

use std::{collections::BTreeMap, fmt::Debug};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use kube::runtime::reflector::{ObjectRef, Store};

use super::Result;
use crate::{crd::CFApp, labels::ADOPTION_FIELD_MANAGER};

/// The object `name` in `namespace` from `cache`, or read live when the cache has none that is
/// `usable`. Watches that wake a reconciler and the caches it reads are separate streams, so a
/// reconcile woken by an object becoming usable may run before the cache sees the change; the
/// read keeps that race from turning into a backoff. Only waiting reconciles pay for it.
pub async fn cached_or_live<K>(
    client: &kube::Client,
    cache: &Store<K>,
    namespace: &str,
    name: &str,
    usable: impl Fn(&K) -> bool,
) -> Result<Option<std::sync::Arc<K>>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let cached = cache.get(&ObjectRef::new(name).within(namespace));
    if cached.as_deref().is_some_and(&usable) {
        return Ok(cached);
    }
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    Ok(api.get_opt(name).await?.map(std::sync::Arc::new))
}

/// The owner reference an adopted object carries: not a controller reference, so it coexists
/// with any the author set, and blocking, so foreground deletion of the app waits for it.
pub fn app_owner(app: &CFApp) -> Option<OwnerReference> {
    Some(OwnerReference {
        block_owner_deletion: Some(true),
        ..app.owner_ref(&())?
    })
}

/// The server-side apply body that adopts `object` into `app` with `labels`, or `None` when
/// `object` already carries the owner reference and every label it can take.
pub fn patch<K>(object: &K, app: &CFApp, labels: &[(&str, String)]) -> Option<Value>
where
    K: Resource<DynamicType = ()>,
{
    let owner = app_owner(app)?;
    let owned = object.owner_references().iter().any(|r| r.uid == owner.uid);
    let current = object.labels();
    // Labels the author set to another value stay theirs; the rest are ours to (re)assert.
    let ours: BTreeMap<&str, &str> = labels
        .iter()
        .filter(|(k, v)| current.get(*k).is_none_or(|c| c == v))
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let missing = ours.keys().any(|k| !current.contains_key(*k));
    if owned && !missing {
        return None;
    }
    Some(json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {
            "name": object.name_any(),
            "namespace": object.namespace(),
            "labels": ours,
            "ownerReferences": [owner],
        },
    }))
}

/// Adopts `object` into `app` unless it already is (or is being deleted). Returns the object as
/// written when a write was made, so a following status write can use its resourceVersion.
pub async fn adopt<K>(api: &Api<K>, object: &K, app: &CFApp, labels: &[(&str, String)]) -> Result<Option<K>>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    if object.meta().deletion_timestamp.is_some() {
        return Ok(None);
    }
    let Some(body) = patch(object, app, labels) else {
        return Ok(None);
    };
    // No force: adoption never takes a field from its author; a conflict is retried.
    let params = PatchParams::apply(ADOPTION_FIELD_MANAGER);
    Ok(Some(
        api.patch(&object.name_any(), &params, &Patch::Apply(&body))
            .await?,
    ))
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::{fixtures, labels::APP_GUID};

    fn app() -> CFApp {
        let mut app = fixtures::app("app-1", "web");
        app.metadata.uid = Some("uid-app-1".to_owned());
        app
    }

    #[test]
    fn adoption_applies_only_the_owner_reference_and_labels() {
        let package = fixtures::docker_package("pkg-1", "app-1", "nginx");
        assert_eq!(
            patch(&package, &app(), &[(APP_GUID, "app-1".to_owned())]),
            Some(json!({
                "apiVersion": "kubefoundry.dev/v1alpha1",
                "kind": "CFPackage",
                "metadata": {
                    "name": "pkg-1",
                    "namespace": "space-1",
                    "labels": {"kubefoundry.dev/app-guid": "app-1"},
                    "ownerReferences": [{
                        "apiVersion": "kubefoundry.dev/v1alpha1",
                        "kind": "CFApp",
                        "name": "app-1",
                        "uid": "uid-app-1",
                        "blockOwnerDeletion": true,
                    }],
                },
            }))
        );
    }

    #[test]
    fn an_adopted_object_needs_no_write() {
        let mut package = fixtures::docker_package("pkg-1", "app-1", "nginx");
        package.metadata.owner_references = app_owner(&app()).map(|r| vec![r]);
        package
            .labels_mut()
            .insert(APP_GUID.to_owned(), "app-1".to_owned());
        assert_eq!(patch(&package, &app(), &[(APP_GUID, "app-1".to_owned())]), None);
    }

    /// A label the author set differently is theirs: no write for it, and not in our body.
    #[test]
    fn an_authors_label_is_left_alone() {
        let mut package = fixtures::docker_package("pkg-1", "app-1", "nginx");
        package
            .labels_mut()
            .insert(APP_GUID.to_owned(), "mine".to_owned());
        let body = patch(&package, &app(), &[(APP_GUID, "app-1".to_owned())]).unwrap();
        assert_eq!(body["metadata"]["labels"], json!({}));
        package.metadata.owner_references = app_owner(&app()).map(|r| vec![r]);
        assert_eq!(patch(&package, &app(), &[(APP_GUID, "app-1".to_owned())]), None);
    }
}
