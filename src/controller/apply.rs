//! Writing children: server-side apply with kubefoundry's one field manager, skipped entirely
//! when the cached child already carries the desired spec (so a converged object causes zero
//! writes), and pruning of children no longer desired, found by owner label.

use std::fmt::Debug;

use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};

use super::error::Result;
use crate::labels::{APPLIED_HASH, FIELD_MANAGER};

/// A stable hash of what we ask for; stored on each child so an unchanged desire is a no-op.
pub fn desired_hash<K: Serialize>(desired: &K) -> String {
    let bytes = serde_json::to_vec(desired).unwrap_or_default();
    // FNV-1a: stable across runs and platforms, which `DefaultHasher` does not promise.
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Stamps the hash annotation on a desired child.
pub fn stamp<K: Resource + Serialize>(mut desired: K) -> K {
    let hash = desired_hash(&desired);
    desired.annotations_mut().insert(APPLIED_HASH.to_owned(), hash);
    desired
}

/// Re-stamps a desired child after it was changed following [`stamp`].
pub fn stamp_again<K: Resource + Serialize>(mut desired: K) -> K {
    desired.annotations_mut().remove(APPLIED_HASH);
    stamp(desired)
}

/// Applies `desired` (already [`stamp`]ed) unless `cached` shows it is already in place.
/// Returns whether a write was made.
pub async fn apply<K>(api: &Api<K>, desired: &K, cached: Option<&K>) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let want = desired.annotations().get(APPLIED_HASH);
    if let Some(current) = cached
        && want.is_some()
        && current.annotations().get(APPLIED_HASH) == want
        && current.meta().deletion_timestamp.is_none()
    {
        return Ok(false);
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&desired.name_any(), &params, &Patch::Apply(desired))
        .await?;
    Ok(true)
}

/// Deletes each cached child in `existing` whose name is not in `keep`; `api_of` gives the
/// API for a child's namespace.
pub async fn prune<K>(
    api_of: impl Fn(Option<&str>) -> Api<K>,
    existing: &[std::sync::Arc<K>],
    keep: &[String],
) -> Result<usize>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let mut deleted = 0;
    for child in existing {
        let name = child.name_any();
        if keep.contains(&name) || child.meta().deletion_timestamp.is_some() {
            continue;
        }
        let api = api_of(child.meta().namespace.as_deref());
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => deleted += 1,
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(deleted)
}

/// Writes a custom resource's status with server-side apply, unless it is unchanged.
pub async fn status<K, S>(api: &Api<K>, object: &K, current: Option<&S>, status: S) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    S: Serialize + PartialEq,
{
    if current == Some(&status) {
        return Ok(false);
    }
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&object.name_any(), &params, &Patch::Apply(&body))
        .await?;
    Ok(true)
}
