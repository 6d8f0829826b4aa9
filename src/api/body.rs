//! Request bodies the CF way: JSON parsed into typed messages with Cloud Controller's errors
//! (400 CF-MessageParseError for bad JSON, 422 naming the field for wrong types and unknown
//! keys), the `metadata` block every writable resource takes, and shared field checks.

use std::collections::BTreeMap;

use axum::body::Bytes;
use kube::api::ObjectMeta;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{CfError, CfResult};

/// CF metadata in a request body: labels and annotations to set, `null` removing one.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct MetadataBody {
    /// Labels to set (null removes).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub labels: BTreeMap<String, Option<String>>,
    /// Annotations to set (null removes).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub annotations: BTreeMap<String, Option<String>>,
}

/// `"labels": null` means no change, as `{}` does (clients send it; CC accepts it).
fn null_as_empty<'de, D>(d: D) -> Result<BTreeMap<String, Option<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<BTreeMap<String, Option<String>>>::deserialize(d)?.unwrap_or_default())
}

impl MetadataBody {
    /// Rejects keys Kubernetes would refuse, and kubefoundry's own keys, naming the key.
    pub fn check(&self) -> CfResult<()> {
        for key in self.labels.keys().chain(self.annotations.keys()) {
            let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
            let valid_name = !name.is_empty()
                && name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !valid_name || prefix.len() > 253 {
                return Err(CfError::Unprocessable(format!(
                    "Metadata key error: '{key}' is not a valid key"
                )));
            }
            if prefix == "kubefoundry.dev" || prefix.ends_with(".kubefoundry.dev") {
                return Err(CfError::Unprocessable(format!(
                    "Metadata key error: keys with the prefix 'kubefoundry.dev' are reserved ('{key}')"
                )));
            }
        }
        for value in self.labels.values().flatten() {
            let ok = value.len() <= 63
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && (value.is_empty()
                    || (value.starts_with(|c: char| c.is_ascii_alphanumeric())
                        && value.ends_with(|c: char| c.is_ascii_alphanumeric())));
            if !ok {
                return Err(CfError::Unprocessable(format!(
                    "Metadata label value error: '{value}' is not a valid label value"
                )));
            }
        }
        Ok(())
    }

    /// Sets these labels and annotations on a new object.
    pub fn apply_to(&self, meta: &mut ObjectMeta) {
        for (k, v) in &self.labels {
            match v {
                Some(v) => meta.labels.get_or_insert_default().insert(k.clone(), v.clone()),
                None => meta.labels.get_or_insert_default().remove(k),
            };
        }
        for (k, v) in &self.annotations {
            match v {
                Some(v) => meta
                    .annotations
                    .get_or_insert_default()
                    .insert(k.clone(), v.clone()),
                None => meta.annotations.get_or_insert_default().remove(k),
            };
        }
    }

    /// The `metadata` part of a JSON merge patch (null removes a key).
    pub fn merge_patch(&self) -> Value {
        json!({"labels": self.labels, "annotations": self.annotations})
    }
}

/// Parses a JSON body CF's way: 400 CF-MessageParseError for bad JSON, 422 naming the field
/// for wrong types and unknown keys. An empty body parses as `{}`.
pub fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> CfResult<T> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| CfError::MessageParse(e.to_string()))?
    };
    if !value.is_object() {
        return Err(CfError::MessageParse(
            "the request body must be a JSON object".into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        let text = e.to_string();
        match text
            .strip_prefix("unknown field `")
            .and_then(|r| r.split_once('`'))
        {
            Some((field, _)) => CfError::Unprocessable(format!("Unknown field(s): '{field}'")),
            None => CfError::Unprocessable(text),
        }
    })
}

/// CF's name rule: present, at most 255 characters.
pub fn check_name(name: &str) -> CfResult<()> {
    if name.trim().is_empty() {
        return Err(CfError::Unprocessable("Name can't be blank".into()));
    }
    if name.chars().count() > 255 {
        return Err(CfError::Unprocessable(
            "Name is too long (maximum is 255 characters)".into(),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(CfError::Unprocessable(
            "Name must not contain control characters".into(),
        ));
    }
    Ok(())
}

/// A `{"data":{"guid":…}}` relationship in a request.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ToOne {
    /// The target, or null to clear.
    pub data: Option<Guid>,
}

/// `{"guid":…}`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Guid {
    /// The target's GUID.
    pub guid: String,
}

impl ToOne {
    /// The GUID, or a 422 naming the relationship when it is null.
    pub fn required(&self, what: &str) -> CfResult<String> {
        self.data
            .as_ref()
            .map(|d| d.guid.clone())
            .ok_or_else(|| CfError::Unprocessable(format!("Relationships {what} must be provided")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Msg {
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn bodies_fail_the_cf_way() {
        let bad = parse::<Msg>(&Bytes::from_static(b"{not json")).unwrap_err();
        assert!(matches!(bad, CfError::MessageParse(_)));
        let unknown = parse::<Msg>(&Bytes::from_static(br#"{"name":"a","bogus":1}"#)).unwrap_err();
        assert_eq!(unknown.to_string(), "Unknown field(s): 'bogus'");
        let wrong = parse::<Msg>(&Bytes::from_static(br#"{"name":1}"#)).unwrap_err();
        assert!(matches!(wrong, CfError::Unprocessable(_)));
        assert!(matches!(
            parse::<Msg>(&Bytes::from_static(b"[1]")).unwrap_err(),
            CfError::MessageParse(_)
        ));
    }

    #[test]
    fn null_label_and_annotation_maps_mean_no_change() {
        #[derive(Deserialize)]
        struct Body {
            metadata: MetadataBody,
        }
        let b: Body = parse(&Bytes::from_static(
            br#"{"metadata":{"labels":{"a":"b"},"annotations":null}}"#,
        ))
        .unwrap();
        assert_eq!(b.metadata.labels.len(), 1);
        assert!(b.metadata.annotations.is_empty());
    }

    #[test]
    fn metadata_keys_are_checked() {
        let m = MetadataBody {
            labels: [("kubefoundry.dev/app-guid".to_owned(), Some("x".to_owned()))].into(),
            ..MetadataBody::default()
        };
        assert!(m.check().is_err());
        let ok = MetadataBody {
            labels: [("example.com/tier".to_owned(), Some("web".to_owned()))].into(),
            annotations: [("note".to_owned(), Some("any text at all!".to_owned()))].into(),
        };
        assert!(ok.check().is_ok());
        let bad_value = MetadataBody {
            labels: [("tier".to_owned(), Some("not ok!".to_owned()))].into(),
            ..MetadataBody::default()
        };
        assert!(bad_value.check().is_err());
    }
}
