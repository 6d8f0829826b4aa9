//! Writing stored objects as JSON straight from the store's shared values. List items and
//! watch events used to be deep-copied only to add or drop `apiVersion` and `kind` before
//! serializing; at 100k objects the copies (and freeing them) cost more than the JSON itself.

use std::sync::Arc;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse as _, Response},
};
use serde::{Serialize, Serializer, ser::SerializeMap as _};
use serde_json::Value;

use crate::registry::ResourceType;

/// An object serialized with `apiVersion` and `kind` set to `type_meta`, or without either
/// when it is `None`, leaving the stored value untouched.
pub struct Typed<'a> {
    object: &'a Value,
    type_meta: Option<(&'a str, &'a str)>,
}

impl<'a> Typed<'a> {
    /// With `apiVersion` and `kind` (what `with_type` adds).
    pub fn with(object: &'a Value, api_version: &'a str, kind: &'a str) -> Self {
        Self { object, type_meta: Some((api_version, kind)) }
    }

    /// Without them (what `without_type` removes): items of built-in typed lists.
    pub fn without(object: &'a Value) -> Self {
        Self { object, type_meta: None }
    }
}

impl Serialize for Typed<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(map) = self.object.as_object() else { return self.object.serialize(serializer) };
        let is_type = |k: &str| k == "apiVersion" || k == "kind";
        let own = map.keys().filter(|k| !is_type(k)).count();
        let mut out = serializer.serialize_map(Some(own + if self.type_meta.is_some() { 2 } else { 0 }))?;
        if let Some((api_version, kind)) = self.type_meta {
            out.serialize_entry("apiVersion", api_version)?;
            out.serialize_entry("kind", kind)?;
        }
        for (k, v) in map.iter().filter(|(k, _)| !is_type(k)) {
            out.serialize_entry(k, v)?;
        }
        out.end()
    }
}

/// A `<Kind>List` body: items of custom resources carry their type, built-in ones do not, as
/// kube-apiserver serves them.
pub fn list_body(rt: &ResourceType, metadata: &Value, items: &[Arc<Value>]) -> Vec<u8> {
    struct Items<'a> {
        items: &'a [Arc<Value>],
        type_meta: Option<(&'a str, &'a str)>,
    }
    impl Serialize for Items<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.items.iter().map(|o| Typed { object: o, type_meta: self.type_meta }))
        }
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct List<'a> {
        api_version: &'a str,
        kind: &'a str,
        metadata: &'a Value,
        items: Items<'a>,
    }
    let api_version = rt.api_version();
    let kind = format!("{}List", rt.kind);
    let type_meta = rt.custom.then_some((api_version.as_str(), rt.kind.as_str()));
    let list = List { api_version: &api_version, kind: &kind, metadata, items: Items { items, type_meta } };
    serde_json::to_vec(&list).unwrap_or_default()
}

/// A 200 response of already serialized JSON.
pub fn ok_json(bytes: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// One line of a watch stream, `{"type": …, "object": …}` and a newline.
pub fn watch_line(event_type: &str, object: &Typed<'_>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Line<'a, 'b> {
        #[serde(rename = "type")]
        event_type: &'a str,
        object: &'a Typed<'b>,
    }
    let mut bytes = serde_json::to_vec(&Line { event_type, object }).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn typed_matches_a_copied_object() {
        let object = json!({"apiVersion": "old/v1", "kind": "Old", "metadata": {"name": "a"}, "spec": {"x": 1}});
        let with = serde_json::to_value(Typed::with(&object, "g/v1", "K")).unwrap();
        assert_eq!(with, json!({"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {"x": 1}}));
        let without = serde_json::to_value(Typed::without(&object)).unwrap();
        assert_eq!(without, json!({"metadata": {"name": "a"}, "spec": {"x": 1}}));
        let scalar = json!("s");
        assert_eq!(serde_json::to_value(Typed::without(&scalar)).unwrap(), scalar);
    }

    #[test]
    fn watch_lines_end_in_a_newline() {
        let object = json!({"metadata": {"name": "a"}});
        let line = watch_line("ADDED", &Typed::with(&object, "v1", "ConfigMap"));
        assert_eq!(line.last(), Some(&b'\n'));
        let parsed: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed, json!({"type": "ADDED", "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}}));
    }
}
