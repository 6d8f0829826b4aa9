//! Leader election through a `coordination.k8s.io/v1` Lease, so two controller replicas never
//! both write: one holds the Lease and renews it; the other waits for it to expire.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease as LeaseObject, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::sync::watch;

/// How long a holder may go without renewing before others take over.
const LEASE_SECONDS: i32 = 15;

/// A leader-election Lease.
pub struct Lease {
    api: Api<LeaseObject>,
    name: String,
    identity: String,
}

/// Held leadership; resolves [`Leadership::lost`] when renewal fails.
pub struct Leadership {
    lost: watch::Receiver<bool>,
}

impl Leadership {
    /// Resolves when this replica is no longer the leader.
    pub async fn lost(mut self) {
        while !*self.lost.borrow() {
            if self.lost.changed().await.is_err() {
                return;
            }
        }
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

impl Lease {
    /// A Lease `namespace/name` contended for as `identity`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
        }
    }

    fn spec(&self, transitions: i32, acquired: MicroTime) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            acquire_time: Some(acquired),
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Tries once to take or keep the Lease; true when this replica holds it afterwards.
    async fn try_hold(&self) -> Result<bool, kube::Error> {
        let existing = self.api.get_opt(&self.name).await?;
        let Some(mut lease) = existing else {
            let lease = LeaseObject {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(0, now())),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let expired = spec.renew_time.as_ref().is_none_or(|t| {
            let duration =
                SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS)));
            t.0.checked_add(duration)
                .is_ok_and(|deadline| deadline < Timestamp::now())
        });
        if holder != self.identity && !holder.is_empty() && !expired {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(holder != self.identity);
        let acquired = if holder == self.identity {
            spec.acquire_time.clone().unwrap_or_else(now)
        } else {
            now()
        };
        lease.spec = Some(self.spec(transitions, acquired));
        // The resourceVersion in `lease` makes this a compare-and-swap: of two replicas racing
        // for an expired Lease, exactly one wins.
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the Lease, then keeps renewing it in the background.
    pub async fn acquire(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Clone + Send + 'static,
    ) -> Result<Leadership, kube::Error> {
        loop {
            match self.try_hold().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(%e, "leader election attempt failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(2)) => {},
                () = shutdown.clone() => return Err(kube::Error::Service("shut down before acquiring leadership".into())),
            }
        }
        tracing::info!(identity = self.identity, lease = self.name, "became leader");
        let (tx, rx) = watch::channel(false);
        let renewer = Self {
            api: self.api.clone(),
            name: self.name.clone(),
            identity: self.identity.clone(),
        };
        tokio::spawn(async move {
            let mut failures = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(u64::try_from(LEASE_SECONDS / 3).unwrap_or(5))).await;
                match renewer.try_hold().await {
                    Ok(true) => failures = 0,
                    Ok(false) => {
                        let _ = tx.send(true);
                        return;
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(%e, "renewing the leader lease failed");
                        if failures >= 2 {
                            let _ = tx.send(true);
                            return;
                        }
                    }
                }
            }
        });
        Ok(Leadership { lost: rx })
    }

    /// Gives the Lease up so another replica can take over at once.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let mine =
            lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(self.identity.as_str());
        if mine {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.renew_time = None;
            }
            let _ = self.api.replace(&self.name, &PostParams::default(), &lease).await;
        }
    }
}
