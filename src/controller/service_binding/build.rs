//! The pure half of the CFServiceBinding reconciler: the binding Secret (servicebinding.io
//! layout) and the app's `VCAP_SERVICES` Secret, which lists every app binding of the app.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{Resource, ResourceExt, api::ObjectMeta};
use serde_json::{Map, Value, json};

use crate::{
    controller::{Error, Result, apply::stamp, names},
    crd::{CFApp, CFServiceBinding, CFServiceInstance},
    labels::{APP_GUID, MANAGED_BY, MANAGED_BY_VALUE, SERVICE_INSTANCE_GUID, SPACE_GUID},
};

/// The `type` and `provider` of a user-provided binding, and its Secret type's suffix.
pub const USER_PROVIDED: &str = "user-provided";
/// The key of the app's `VCAP_SERVICES` Secret.
pub const VCAP_SERVICES_KEY: &str = "VCAP_SERVICES";

/// Secret keys (binding files) may hold only these characters.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key != "."
        && key != ".."
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A JSON value as a binding file: strings verbatim, anything else as JSON text.
fn file(value: &Value) -> ByteString {
    match value {
        Value::String(s) => ByteString(s.as_bytes().to_vec()),
        other => ByteString(other.to_string().into_bytes()),
    }
}

/// The binding's Secret: one key per credential, plus `type` and `provider` (from the
/// credentials when they carry them, else `user-provided`); owned by the binding.
pub fn binding_secret(binding: &CFServiceBinding, credentials: &Map<String, Value>) -> Result<Secret> {
    let bad: Vec<&str> = credentials
        .keys()
        .map(String::as_str)
        .filter(|k| !valid_key(k))
        .collect();
    if !bad.is_empty() {
        return Err(Error::Invalid {
            reason: "InvalidCredentials",
            message: format!(
                "credential keys must be valid file names (letters, digits, '-', '_', '.') to appear in the binding Secret: {}",
                bad.join(", ")
            ),
        });
    }
    let mut data: BTreeMap<String, ByteString> =
        credentials.iter().map(|(k, v)| (k.clone(), file(v))).collect();
    for key in ["type", "provider"] {
        data.entry(key.to_owned())
            .or_insert_with(|| ByteString(USER_PROVIDED.as_bytes().to_vec()));
    }
    let mut labels = BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (SPACE_GUID.to_owned(), binding.namespace().unwrap_or_default()),
        (
            SERVICE_INSTANCE_GUID.to_owned(),
            binding.spec.service_instance_guid.clone(),
        ),
    ]);
    if let Some(app) = &binding.spec.app_guid {
        labels.insert(APP_GUID.to_owned(), app.clone());
    }
    Ok(stamp(Secret {
        metadata: ObjectMeta {
            name: Some(names::binding_secret(&binding.name_any())),
            namespace: binding.namespace(),
            labels: Some(labels),
            owner_references: binding.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        type_: Some(format!("servicebinding.io/{USER_PROVIDED}")),
        data: Some(data),
        ..Secret::default()
    }))
}

/// One binding's entry in `VCAP_SERVICES`, as Cloud Controller writes it for a user-provided
/// service.
pub fn vcap_entry(
    binding: &CFServiceBinding,
    instance: &CFServiceInstance,
    credentials: &Map<String, Value>,
) -> Value {
    let name = binding
        .spec
        .display_name
        .clone()
        .unwrap_or_else(|| instance.spec.display_name.clone());
    json!({
        "name": name,
        "instance_guid": instance.name_any(),
        "instance_name": instance.spec.display_name,
        "binding_guid": binding.name_any(),
        "binding_name": binding.spec.display_name,
        "credentials": credentials,
        "syslog_drain_url": instance.spec.syslog_drain_url,
        "volume_mounts": [],
        "label": USER_PROVIDED,
        "tags": instance.spec.tags,
    })
}

/// The app's `VCAP_SERVICES` Secret listing `entries` (sorted by name, then binding GUID, so
/// the Secret does not churn); `None` when there are none, so the Secret is deleted.
pub fn vcap_services(app: &CFApp, mut entries: Vec<Value>) -> Option<Secret> {
    if entries.is_empty() {
        return None;
    }
    let key = |v: &Value| {
        (
            v["name"].as_str().unwrap_or_default().to_owned(),
            v["binding_guid"].as_str().unwrap_or_default().to_owned(),
        )
    };
    entries.sort_by_key(key);
    let body = json!({ USER_PROVIDED: entries }).to_string();
    Some(stamp(Secret {
        metadata: ObjectMeta {
            name: Some(names::vcap_services(&app.name_any())),
            namespace: app.namespace(),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
                (APP_GUID.to_owned(), app.name_any()),
                (SPACE_GUID.to_owned(), app.namespace().unwrap_or_default()),
            ])),
            owner_references: app.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            VCAP_SERVICES_KEY.to_owned(),
            ByteString(body.into_bytes()),
        )])),
        ..Secret::default()
    }))
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::{crd::BindingType, fixtures};

    fn without_hash(secret: &Secret) -> Value {
        let mut value = serde_json::to_value(secret).unwrap();
        let annotations = value["metadata"]["annotations"].as_object_mut().unwrap();
        assert!(annotations.remove("kubefoundry.dev/applied-hash").is_some());
        value["metadata"].as_object_mut().unwrap().remove("annotations");
        value
    }

    fn decoded(value: &Value) -> BTreeMap<String, String> {
        let secret: Secret = serde_json::from_value(value.clone()).unwrap();
        secret
            .data
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect()
    }

    fn creds() -> Map<String, Value> {
        json!({"uri": "postgres://db:5432", "port": 5432, "tls": {"ca": "x"}})
            .as_object()
            .unwrap()
            .clone()
    }

    fn with_uid<K: Resource>(mut obj: K, uid: &str) -> K {
        obj.meta_mut().uid = Some(uid.to_owned());
        obj
    }

    #[test]
    fn binding_secret_has_servicebinding_io_layout() {
        let binding = with_uid(fixtures::binding("b1", "si1", "a1"), "uid-b1");
        let secret = without_hash(&binding_secret(&binding, &creds()).unwrap());
        assert_eq!(
            secret,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "b1-binding",
                    "namespace": "space-1",
                    "labels": {
                        "app.kubernetes.io/managed-by": "kubefoundry",
                        "kubefoundry.dev/app-guid": "a1",
                        "kubefoundry.dev/service-instance-guid": "si1",
                        "kubefoundry.dev/space-guid": "space-1",
                    },
                    "ownerReferences": [{
                        "apiVersion": "kubefoundry.dev/v1alpha1",
                        "kind": "CFServiceBinding",
                        "name": "b1",
                        "uid": "uid-b1",
                        "controller": true,
                    }],
                },
                "type": "servicebinding.io/user-provided",
                "data": {
                    "port": "NTQzMg==",
                    "provider": "dXNlci1wcm92aWRlZA==",
                    "tls": "eyJjYSI6IngifQ==",
                    "type": "dXNlci1wcm92aWRlZA==",
                    "uri": "cG9zdGdyZXM6Ly9kYjo1NDMy",
                },
            })
        );
        assert_eq!(
            decoded(&secret),
            BTreeMap::from([
                ("port".to_owned(), "5432".to_owned()),
                ("provider".to_owned(), "user-provided".to_owned()),
                ("tls".to_owned(), r#"{"ca":"x"}"#.to_owned()),
                ("type".to_owned(), "user-provided".to_owned()),
                ("uri".to_owned(), "postgres://db:5432".to_owned()),
            ])
        );
    }

    /// A credential named `type` says what the service is (servicebinding.io), so it wins.
    #[test]
    fn credentials_may_set_type_and_key_bindings_have_no_app() {
        let mut binding = fixtures::binding("k1", "si1", "a1");
        binding.spec.type_ = BindingType::Key;
        binding.spec.app_guid = None;
        let credentials = json!({"type": "postgresql"}).as_object().unwrap().clone();
        let secret = without_hash(&binding_secret(&binding, &credentials).unwrap());
        assert_eq!(secret["metadata"]["labels"].get("kubefoundry.dev/app-guid"), None);
        assert_eq!(secret["metadata"].get("ownerReferences"), None);
        assert_eq!(decoded(&secret)["type"], "postgresql");
        assert_eq!(decoded(&secret)["provider"], "user-provided");
    }

    #[test]
    fn credential_keys_must_be_file_names() {
        let credentials = json!({"ok": 1, "not ok": 2, "../x": 3})
            .as_object()
            .unwrap()
            .clone();
        let (reason, message) = binding_secret(&fixtures::binding("b1", "si1", "a1"), &credentials)
            .unwrap_err()
            .condition();
        assert_eq!(reason, "InvalidCredentials");
        assert!(message.ends_with(": ../x, not ok"), "{message}");
    }

    #[test]
    fn vcap_services_lists_every_binding_in_cf_shape() {
        let app = with_uid(fixtures::app("a1", "my-app"), "uid-a1");
        let mut instance = fixtures::user_provided_service("si1", "my-db", "creds");
        instance.spec.tags = vec!["sql".to_owned()];
        instance.spec.syslog_drain_url = Some("syslog://logs".to_owned());
        let named = {
            let mut b = fixtures::binding("b2", "si1", "a1");
            b.spec.display_name = Some("another".to_owned());
            b
        };
        let entries = vec![
            vcap_entry(&fixtures::binding("b1", "si1", "a1"), &instance, &creds()),
            vcap_entry(&named, &instance, &Map::new()),
        ];
        let secret = without_hash(&vcap_services(&app, entries).unwrap());
        let body: Value = serde_json::from_str(&decoded(&secret)["VCAP_SERVICES"]).unwrap();
        assert_eq!(
            body,
            json!({"user-provided": [
                {
                    "name": "another",
                    "instance_guid": "si1",
                    "instance_name": "my-db",
                    "binding_guid": "b2",
                    "binding_name": "another",
                    "credentials": {},
                    "syslog_drain_url": "syslog://logs",
                    "volume_mounts": [],
                    "label": "user-provided",
                    "tags": ["sql"],
                },
                {
                    "name": "my-db",
                    "instance_guid": "si1",
                    "instance_name": "my-db",
                    "binding_guid": "b1",
                    "binding_name": null,
                    "credentials": {"port": 5432, "tls": {"ca": "x"}, "uri": "postgres://db:5432"},
                    "syslog_drain_url": "syslog://logs",
                    "volume_mounts": [],
                    "label": "user-provided",
                    "tags": ["sql"],
                },
            ]})
        );
        let mut meta = secret.clone();
        meta.as_object_mut().unwrap().remove("data");
        assert_eq!(
            meta,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "a1-vcap-services",
                    "namespace": "space-1",
                    "labels": {
                        "app.kubernetes.io/managed-by": "kubefoundry",
                        "kubefoundry.dev/app-guid": "a1",
                        "kubefoundry.dev/space-guid": "space-1",
                    },
                    "ownerReferences": [{
                        "apiVersion": "kubefoundry.dev/v1alpha1",
                        "kind": "CFApp",
                        "name": "a1",
                        "uid": "uid-a1",
                        "controller": true,
                    }],
                },
                "type": "Opaque",
            })
        );
    }

    #[test]
    fn no_bindings_no_vcap_secret() {
        assert_eq!(vcap_services(&fixtures::app("a1", "my-app"), Vec::new()), None);
    }
}
