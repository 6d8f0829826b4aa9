//! Conditions and status writes: `lastTransitionTime` moves only when a condition's status
//! flips, and a status that would not change is never written.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

/// A condition as a reconciler wants it, before timestamps.
pub struct Want<'a> {
    /// The condition type.
    pub type_: &'a str,
    /// Whether it holds.
    pub ok: bool,
    /// CamelCase reason.
    pub reason: &'a str,
    /// Human-readable detail.
    pub message: String,
}

/// Merges wanted conditions into the current ones, keeping each `lastTransitionTime` unless
/// the status flips, so a converged object's status is byte-for-byte stable.
pub fn merge(current: &[Condition], wanted: &[Want<'_>], generation: Option<i64>) -> Vec<Condition> {
    let mut out: Vec<Condition> = current
        .iter()
        .filter(|c| !wanted.iter().any(|w| w.type_ == c.type_))
        .cloned()
        .collect();
    for w in wanted {
        let status = if w.ok { "True" } else { "False" };
        let previous = current.iter().find(|c| c.type_ == w.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Time(
                Timestamp::now()
                    .round(jiff_unit())
                    .unwrap_or_else(|_| Timestamp::now()),
            ),
        };
        out.push(Condition {
            type_: w.type_.to_owned(),
            status: status.to_owned(),
            reason: w.reason.to_owned(),
            message: w.message.clone(),
            observed_generation: generation,
            last_transition_time,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

fn jiff_unit() -> k8s_openapi::jiff::Unit {
    k8s_openapi::jiff::Unit::Second
}
