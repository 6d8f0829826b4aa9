//! Reconcile errors: transient ones retry with per-object backoff, permanent ones wait for the
//! object to change and are reported in its `Ready` condition.

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed; worth retrying.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The object is malformed or contradicts its environment; retrying cannot help until it changes.
    #[error("{message}")]
    Invalid {
        /// The `Ready` condition's reason, CamelCase.
        reason: &'static str,
        /// What is wrong, for the condition's message.
        message: String,
    },
    /// Something the object depends on is not there yet; retry soon.
    #[error("{message}")]
    Waiting {
        /// The `Ready` condition's reason, CamelCase.
        reason: &'static str,
        /// What is missing.
        message: String,
    },
    /// A finalizer step failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The object could not be deserialized (kept by `DeserializeGuard`).
    #[error("invalid object: {0}")]
    Deserialize(String),
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Invalid { .. } => "invalid",
            Self::Waiting { .. } => "waiting",
            Self::Finalizer(_) => "finalizer",
            Self::Deserialize(_) => "deserialize",
        }
    }

    /// Whether retrying without a change to the object is pointless.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Invalid { .. } | Self::Deserialize(_))
    }

    /// The reason and message for a `Ready=False` condition.
    pub fn condition(&self) -> (&'static str, String) {
        match self {
            Self::Invalid { reason, message } | Self::Waiting { reason, message } => {
                (reason, message.clone())
            }
            Self::Deserialize(m) => ("InvalidObject", m.clone()),
            other => ("ReconcileError", other.to_string()),
        }
    }
}

/// Shorthand for reconciler results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
