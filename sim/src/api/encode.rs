//! Writing stored objects as JSON for lists and watches without copying them and, thanks to
//! [`JsonCache`], without encoding the same stored version twice. At 100k objects, deep copies
//! made only to add or drop `apiVersion` and `kind`, then encoding every item again for every
//! list and every watcher, cost more than everything else a list does.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, Weak},
};

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
        Self {
            object,
            type_meta: Some((api_version, kind)),
        }
    }

    /// Without them (what `without_type` removes): items of built-in typed lists.
    pub fn without(object: &'a Value) -> Self {
        Self {
            object,
            type_meta: None,
        }
    }
}

impl Serialize for Typed<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(map) = self.object.as_object() else {
            return self.object.serialize(serializer);
        };
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

/// The JSON of stored objects (without `apiVersion` and `kind`), encoded once per stored
/// version and shared by every list and watcher, as kube-apiserver's watch cache shares one
/// serialization of an object among its watchers.
///
/// Stored values are immutable and replaced by new `Arc`s on every write, so a value's address
/// identifies one version. Entries are keyed by it and hold a `Weak` to it: the `Weak` keeps
/// the address from being reused while the entry exists, so a hit is always the same version.
/// Entries of versions nobody holds any more are swept as the cache grows.
#[derive(Default)]
pub struct JsonCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<usize, (Weak<Value>, Arc<[u8]>)>,
    sweep_at: usize,
}

impl JsonCache {
    /// The JSON of `object` without `apiVersion` and `kind`.
    pub fn get(&self, object: &Arc<Value>) -> Arc<[u8]> {
        let address = Arc::as_ptr(object) as usize;
        if let Some((_, json)) = self.lock().entries.get(&address) {
            return json.clone();
        }
        // Encoded outside the lock; two threads encoding the same version agree on the bytes.
        let json: Arc<[u8]> = serde_json::to_vec(&Typed::without(object))
            .unwrap_or_default()
            .into();
        let mut inner = self.lock();
        if inner.entries.len() >= inner.sweep_at {
            inner.entries.retain(|_, (weak, _)| weak.strong_count() > 0);
            inner.sweep_at = (inner.entries.len() * 2).max(1024);
        }
        inner
            .entries
            .insert(address, (Arc::downgrade(object), json.clone()));
        json
    }

    /// How many versions are cached (live or not yet swept).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// The bytes of encoded JSON held (live or not yet swept), for memory reports.
    pub fn bytes(&self) -> usize {
        self.lock().entries.values().map(|(_, json)| json.len()).sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Appends a JSON string.
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&serde_json::to_vec(s).unwrap_or_default());
}

/// Appends an object from its cached JSON, with `apiVersion` and `kind` first when
/// `type_meta` is set (non-objects are written as they are, as `with_type` leaves them).
fn push_object(out: &mut Vec<u8>, json: &[u8], type_meta: Option<(&str, &str)>) {
    let Some(((api_version, kind), rest)) = type_meta.zip(json.strip_prefix(b"{")) else {
        out.extend_from_slice(json);
        return;
    };
    out.extend_from_slice(br#"{"apiVersion":"#);
    push_str(out, api_version);
    out.extend_from_slice(br#","kind":"#);
    push_str(out, kind);
    if rest != b"}" {
        out.push(b',');
    }
    out.extend_from_slice(rest);
}

/// A `<Kind>List` body: items of custom resources carry their type, built-in ones do not, as
/// kube-apiserver serves them.
pub fn list_body(rt: &ResourceType, metadata: &Value, items: &[Arc<Value>], cache: &JsonCache) -> Vec<u8> {
    let jsons: Vec<Arc<[u8]>> = items.iter().map(|o| cache.get(o)).collect();
    let api_version = rt.api_version();
    let type_meta = rt.custom.then_some((api_version.as_str(), rt.kind.as_str()));
    let mut out = Vec::with_capacity(jsons.iter().map(|j| j.len() + 64).sum::<usize>() + 256);
    out.extend_from_slice(br#"{"apiVersion":"#);
    push_str(&mut out, &api_version);
    out.extend_from_slice(br#","kind":"#);
    push_str(&mut out, &format!("{}List", rt.kind));
    out.extend_from_slice(br#","metadata":"#);
    out.extend_from_slice(&serde_json::to_vec(metadata).unwrap_or_default());
    out.extend_from_slice(br#","items":["#);
    for (i, json) in jsons.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_object(&mut out, json, type_meta);
    }
    out.extend_from_slice(b"]}");
    out
}

/// A 200 response of already serialized JSON.
pub fn ok_json(bytes: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// One line of a watch stream, `{"type":…,"object":…}` and a newline, the object with its
/// `apiVersion` and `kind`.
pub fn watch_line(
    event_type: &str,
    object: &Arc<Value>,
    api_version: &str,
    kind: &str,
    cache: &JsonCache,
) -> Vec<u8> {
    let json = cache.get(object);
    let mut out = Vec::with_capacity(json.len() + 96);
    out.extend_from_slice(br#"{"type":"#);
    push_str(&mut out, event_type);
    out.extend_from_slice(br#","object":"#);
    push_object(&mut out, &json, Some((api_version, kind)));
    out.extend_from_slice(b"}\n");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn typed_matches_a_copied_object() {
        let object =
            json!({"apiVersion": "old/v1", "kind": "Old", "metadata": {"name": "a"}, "spec": {"x": 1}});
        let with = serde_json::to_value(Typed::with(&object, "g/v1", "K")).unwrap();
        assert_eq!(
            with,
            json!({"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {"x": 1}})
        );
        let without = serde_json::to_value(Typed::without(&object)).unwrap();
        assert_eq!(without, json!({"metadata": {"name": "a"}, "spec": {"x": 1}}));
        let scalar = json!("s");
        assert_eq!(serde_json::to_value(Typed::without(&scalar)).unwrap(), scalar);
    }

    #[test]
    fn cached_objects_are_spliced_with_their_type() {
        let cache = JsonCache::default();
        for (object, typed) in [
            (
                json!({"kind": "X", "metadata": {"name": "a"}}),
                json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "a"}}),
            ),
            (json!({}), json!({"apiVersion": "v1", "kind": "K"})),
            (json!({"kind": "X"}), json!({"apiVersion": "v1", "kind": "K"})),
            (json!(7), json!(7)),
        ] {
            let line = watch_line("ADDED", &Arc::new(object), "v1", "K", &cache);
            assert_eq!(line.last(), Some(&b'\n'));
            let parsed: Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(parsed, json!({"type": "ADDED", "object": typed}));
        }
    }

    #[test]
    fn lists_type_only_custom_items() {
        let cache = JsonCache::default();
        let items = vec![
            Arc::new(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "\"b\""}})),
            Arc::new(json!({})),
        ];
        let mut rt = crate::registry::Registry::default()
            .get("", "v1", "configmaps")
            .unwrap()
            .as_ref()
            .clone();
        let meta = json!({"resourceVersion": "5"});
        let builtin: Value = serde_json::from_slice(&list_body(&rt, &meta, &items, &cache)).unwrap();
        assert_eq!(
            builtin,
            json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": meta, "items": [{"data": {"a": "\"b\""}}, {}]})
        );
        rt.custom = true;
        let custom: Value = serde_json::from_slice(&list_body(&rt, &meta, &items, &cache)).unwrap();
        assert_eq!(
            custom["items"][1],
            json!({"apiVersion": "v1", "kind": "ConfigMap"})
        );
        assert_eq!(custom["items"][0]["data"], json!({"a": "\"b\""}));
        let empty: Value = serde_json::from_slice(&list_body(&rt, &meta, &[], &cache)).unwrap();
        assert_eq!(empty["items"], json!([]));
    }

    #[test]
    fn a_new_version_is_encoded_anew_and_dead_ones_are_swept() {
        let cache = JsonCache::default();
        let first = Arc::new(json!({"metadata": {"resourceVersion": "1"}}));
        assert_eq!(&*cache.get(&first), br#"{"metadata":{"resourceVersion":"1"}}"#);
        let second = Arc::new(json!({"metadata": {"resourceVersion": "2"}}));
        assert_eq!(&*cache.get(&second), br#"{"metadata":{"resourceVersion":"2"}}"#);
        drop(first);
        for i in 0..2000 {
            cache.get(&Arc::new(json!(i)));
        }
        assert!(
            cache.len() < 2000,
            "dead versions are swept, {} left",
            cache.len()
        );
        assert_eq!(&*cache.get(&second), br#"{"metadata":{"resourceVersion":"2"}}"#);
    }
}
