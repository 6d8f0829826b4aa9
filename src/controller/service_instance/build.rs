//! The pure half of the CFServiceInstance reconciler: checking an instance and its credentials,
//! and the v3 `last_operation` both instances and bindings report.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde_json::{Map, Value};

use crate::{
    controller::{Error, Result},
    crd::{
        CFServiceInstance,
        service_instance::{LastOperation, OperationState, OperationType, ServiceInstanceType},
    },
};

/// The key of a user-provided instance's credentials Secret that holds the JSON object.
pub const CREDENTIALS_KEY: &str = "credentials";

/// Checks the instance is one kubefoundry can serve: user-provided only, for now.
pub fn check(instance: &CFServiceInstance) -> Result<()> {
    match instance.spec.type_ {
        ServiceInstanceType::UserProvided => Ok(()),
        ServiceInstanceType::Managed => Err(Error::Invalid {
            reason: "NotSupported",
            message: "managed services are not supported yet".to_owned(),
        }),
    }
}

/// The credentials in a user-provided instance's Secret: key `credentials`, a JSON object.
pub fn parse_credentials(secret: &Secret) -> Result<Map<String, Value>> {
    let invalid = |message: String| Error::Invalid {
        reason: "InvalidCredentials",
        message,
    };
    let raw: Vec<u8> = match (
        secret.data.as_ref().and_then(|d| d.get(CREDENTIALS_KEY)),
        secret.string_data.as_ref().and_then(|d| d.get(CREDENTIALS_KEY)),
    ) {
        (Some(bytes), _) => bytes.0.clone(),
        (None, Some(text)) => text.as_bytes().to_vec(),
        (None, None) => {
            return Err(invalid(format!(
                "credentials Secret {:?} has no key {CREDENTIALS_KEY:?}",
                secret.name_any()
            )));
        }
    };
    match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid(format!(
            "key {CREDENTIALS_KEY:?} of Secret {:?} must hold a JSON object",
            secret.name_any()
        ))),
        Err(e) => Err(invalid(format!(
            "key {CREDENTIALS_KEY:?} of Secret {:?} is not valid JSON: {e}",
            secret.name_any()
        ))),
    }
}

/// The last operation after a reconcile with `outcome`. `spec_changed` is true when the
/// generation moved since the last status: a succeeded object that changes is being updated.
/// `updatedAt` keeps its value unless the operation changes, so a converged status is stable.
pub fn last_operation(
    previous: Option<&LastOperation>,
    spec_changed: bool,
    outcome: &Result<()>,
    now: &str,
) -> LastOperation {
    let type_ = match previous {
        None => OperationType::Create,
        Some(p) if p.type_ == OperationType::Create && p.state != OperationState::Succeeded => {
            OperationType::Create
        }
        Some(_) if spec_changed => OperationType::Update,
        Some(p) => p.type_,
    };
    let (state, description) = match outcome {
        Ok(()) => (OperationState::Succeeded, String::new()),
        Err(e) if e.is_permanent() => (OperationState::Failed, e.condition().1),
        Err(e) => (OperationState::InProgress, e.condition().1),
    };
    let updated_at = match previous {
        Some(p) if p.type_ == type_ && p.state == state && p.description == description => {
            p.updated_at.clone()
        }
        _ => Some(now.to_owned()),
    };
    LastOperation {
        type_,
        state,
        description,
        updated_at,
    }
}

/// Now, as `lastOperation.updatedAt` spells it (RFC 3339, whole seconds).
pub fn now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    now.round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or(now)
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::fixtures;

    fn secret(data: &[u8]) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("creds".to_owned());
        s.data = Some(BTreeMap::from([(
            CREDENTIALS_KEY.to_owned(),
            ByteString(data.to_vec()),
        )]));
        s
    }

    #[test]
    fn credentials_are_a_json_object() {
        let creds = parse_credentials(&secret(br#"{"uri":"postgres://db","port":5432}"#)).unwrap();
        assert_eq!(
            Value::Object(creds),
            json!({"uri": "postgres://db", "port": 5432})
        );
        let (reason, message) = parse_credentials(&secret(b"[1]")).unwrap_err().condition();
        assert_eq!(
            (reason, message.as_str()),
            (
                "InvalidCredentials",
                "key \"credentials\" of Secret \"creds\" must hold a JSON object"
            )
        );
        assert!(
            parse_credentials(&secret(b"{nope"))
                .unwrap_err()
                .to_string()
                .contains("is not valid JSON")
        );
        let mut empty = secret(b"");
        empty.data = None;
        assert_eq!(
            parse_credentials(&empty).unwrap_err().to_string(),
            "credentials Secret \"creds\" has no key \"credentials\""
        );
    }

    #[test]
    fn managed_instances_are_not_supported() {
        let mut instance = fixtures::user_provided_service("si1", "db", "creds");
        assert!(check(&instance).is_ok());
        instance.spec.type_ = ServiceInstanceType::Managed;
        let err = check(&instance).unwrap_err();
        assert!(err.is_permanent());
        assert_eq!(
            err.condition(),
            (
                "NotSupported",
                "managed services are not supported yet".to_owned()
            )
        );
    }

    #[test]
    fn first_success_is_a_succeeded_create() {
        let op = last_operation(None, true, &Ok(()), "2025-01-01T00:00:00Z");
        assert_eq!(
            serde_json::to_value(&op).unwrap(),
            json!({"type": "create", "state": "succeeded", "description": "", "updatedAt": "2025-01-01T00:00:00Z"})
        );
        // Converged: nothing moves, not even the timestamp.
        assert_eq!(
            last_operation(Some(&op), false, &Ok(()), "2025-02-02T00:00:00Z"),
            op
        );
    }

    #[test]
    fn failures_and_updates() {
        let waiting = Err(Error::Waiting {
            reason: "X",
            message: "not yet".to_owned(),
        });
        let op = last_operation(None, true, &waiting, "t1");
        assert_eq!(
            (op.type_, op.state, op.description.as_str()),
            (OperationType::Create, OperationState::InProgress, "not yet")
        );
        let done = last_operation(Some(&op), false, &Ok(()), "t2");
        assert_eq!(
            (done.type_, done.state, done.updated_at.as_deref()),
            (OperationType::Create, OperationState::Succeeded, Some("t2"))
        );
        let invalid = Err(Error::Invalid {
            reason: "Y",
            message: "bad".to_owned(),
        });
        let failed = last_operation(Some(&done), true, &invalid, "t3");
        assert_eq!(
            (failed.type_, failed.state),
            (OperationType::Update, OperationState::Failed)
        );
    }
}
