//! Race-free name uniqueness without an admission webhook. Before creating a CF object whose
//! name must be unique in a scope (org names, space names in an org, app names in a space,
//! routes, service instance names in a space), the façade creates a Lease named by a hash of
//! (kind, scope, name) in the scope's namespace. Of N concurrent creates exactly one creates
//! the Lease; the others get 409 and answer CF's 422. A claim whose owner no longer exists
//! (deleted with kubectl, say) is taken over, so a stale claim never blocks a name forever.

use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api,
    api::{DeleteParams, ObjectMeta, PostParams, Preconditions},
};

use super::{ApiState, CfError, CfResult};

const OWNER: &str = "kubefoundry.dev/claimed-by";

/// How old a claim must be before a missing owner makes it stale (a create takes far less).
const STALE_AFTER_SECS: i64 = 30;

/// A name claim: the Lease that reserves `name` for one object of `kind` in `namespace`.
pub struct Claim {
    namespace: String,
    lease: String,
}

impl Claim {
    /// The claim of `name` (case-insensitive, as CC compares) for `kind` in `namespace`.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        let h = format!("{kind}\0{}", name.to_lowercase())
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        Self {
            namespace: namespace.to_owned(),
            lease: format!("kf-name-{kind}-{h:016x}"),
        }
    }

    /// Takes the claim for `owner`, or answers `taken` when someone else holds it. `alive`
    /// says whether a holder's GUID still names an existing object.
    pub async fn take(
        &self,
        state: &ApiState,
        owner: &str,
        alive: impl Fn(&str) -> bool,
        taken: impl Fn() -> CfError,
    ) -> CfResult<()> {
        let api: Api<Lease> = Api::namespaced(state.client.clone(), &self.namespace);
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.lease.clone()),
                annotations: Some([(OWNER.to_owned(), owner.to_owned())].into()),
                ..ObjectMeta::default()
            },
            spec: None,
        };
        for _ in 0..3 {
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    return Err(CfError::Unprocessable(format!(
                        "the namespace {} does not exist yet; retry shortly",
                        self.namespace
                    )));
                }
                Err(e) => return Err(CfError::internal(e)),
            }
            let existing = match api.get_opt(&self.lease).await {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                Err(e) => return Err(CfError::internal(e)),
            };
            let holder = existing
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(OWNER))
                .cloned()
                .unwrap_or_default();
            if holder == owner {
                return Ok(());
            }
            // A young claim's owner may still be on its way into existence (its create is in
            // flight, so `alive` cannot see it yet): only an old claim can be stale.
            let young = existing.metadata.creation_timestamp.as_ref().is_none_or(|t| {
                k8s_openapi::jiff::Timestamp::now().duration_since(t.0)
                    < k8s_openapi::jiff::SignedDuration::from_secs(STALE_AFTER_SECS)
            });
            if young || alive(&holder) {
                return Err(taken());
            }
            // A stale claim: remove exactly that version (a racing taker wins cleanly), retry.
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: existing.metadata.resource_version.clone(),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            let _ = api.delete(&self.lease, &dp).await;
        }
        Err(taken())
    }

    /// Gives the claim up (after a failed create, or a delete or rename of its owner).
    pub async fn release(&self, state: &ApiState) {
        let api: Api<Lease> = Api::namespaced(state.client.clone(), &self.namespace);
        let _ = api.delete(&self.lease, &DeleteParams::default()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_case_insensitive_and_scoped_by_kind() {
        assert_eq!(
            Claim::new("app", "ns", "MyApp").lease,
            Claim::new("app", "ns", "myapp").lease
        );
        assert_ne!(
            Claim::new("app", "ns", "x").lease,
            Claim::new("route", "ns", "x").lease
        );
        assert!(Claim::new("service-instance", "ns", "x").lease.len() <= 63);
    }
}
