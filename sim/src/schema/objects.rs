//! What happens to a custom resource around validation: pruning of unknown fields, coercion of
//! embedded `ObjectMeta`, dropping of non-nullable nulls, defaulting, and the structural checks
//! (list-type uniqueness, embedded resource type meta) that are not part of the OpenAPI schema.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::Cause;
use super::errors::{self, Bad, FPath};
use super::gofmt;
use super::node::{Additional, Node};

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// The `ObjectMeta` fields and the JSON kind each must have to survive decoding.
const OBJECT_META: &[(&str, &str)] = &[
    ("name", "string"),
    ("generateName", "string"),
    ("namespace", "string"),
    ("selfLink", "string"),
    ("uid", "string"),
    ("resourceVersion", "string"),
    ("generation", "integer"),
    ("creationTimestamp", "time"),
    ("deletionTimestamp", "time"),
    ("deletionGracePeriodSeconds", "integer"),
    ("labels", "stringmap"),
    ("annotations", "stringmap"),
    ("ownerReferences", "array"),
    ("finalizers", "stringarray"),
    ("managedFields", "array"),
];

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Drops fields the schema does not know (`pruning.PruneWithOptions`), recording their paths.
pub(crate) fn prune(
    x: &mut Value,
    s: Option<&Node>,
    embedded_root: bool,
    path: &str,
    unknown: &mut Vec<String>,
) {
    if let Some(node) = s
        && node.preserve_unknown
    {
        skip_prune(x, node, embedded_root || node.embedded, path, unknown);
        return;
    }
    match x {
        Value::Object(m) => {
            let Some(node) = s else {
                for k in m.keys() {
                    unknown.push(join(path, k));
                }
                m.clear();
                return;
            };
            let embedded = embedded_root || node.embedded;
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(prop) = node.properties.get(&k) {
                    if let Some(v) = m.get_mut(&k) {
                        prune(v, Some(prop), false, &join(path, &k), unknown);
                    }
                } else if !matches!(node.additional, Additional::None) {
                    if let Some(v) = m.get_mut(&k) {
                        prune(v, node.additional_schema(), false, &join(path, &k), unknown);
                    }
                } else {
                    if !META_FIELDS.contains(&k.as_str()) || !path.is_empty() {
                        unknown.push(join(path, &k));
                    }
                    m.remove(&k);
                }
            }
        }
        Value::Array(a) => {
            let items = s.and_then(|n| n.items.as_deref());
            for (i, v) in a.iter_mut().enumerate() {
                let p = format!("{path}[{i}]");
                if s.is_none() {
                    prune(v, None, false, &p, unknown);
                } else {
                    prune(v, items, false, &p, unknown);
                }
            }
        }
        _ => {}
    }
}

fn skip_prune(x: &mut Value, node: &Node, embedded: bool, path: &str, unknown: &mut Vec<String>) {
    match x {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                let Some(v) = m.get_mut(&k) else { continue };
                if let Some(prop) = node.properties.get(&k) {
                    prune(v, Some(prop), false, &join(path, &k), unknown);
                } else if !matches!(node.additional, Additional::None) {
                    prune(v, node.additional_schema(), false, &join(path, &k), unknown);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = node.items.as_deref() {
                for (i, v) in a.iter_mut().enumerate() {
                    skip_prune(v, items, items.embedded, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Normalizes the `metadata` of embedded resources the way decoding into `ObjectMeta` does,
/// dropping unknown and malformed fields (`objectmeta.CoerceWithOptions` with dropping on).
pub(crate) fn coerce_embedded(x: &mut Value, s: Option<&Node>, path: &str, unknown: &mut Vec<String>) {
    let Some(node) = s else { return };
    match x {
        Value::Object(m) => {
            if node.embedded {
                for k in ["apiVersion", "kind"] {
                    if m.get(k).is_some_and(|v| !v.is_string()) {
                        m.remove(k);
                    }
                }
                if let Some(meta) = m.get_mut("metadata") {
                    coerce_object_meta(meta, &join(path, "metadata"), unknown);
                }
            }
            for (k, v) in m.iter_mut() {
                if let Some(prop) = node.properties.get(k) {
                    coerce_embedded(v, Some(prop), &join(path, k), unknown);
                } else if let Some(add) = node.additional_schema() {
                    coerce_embedded(v, Some(add), &join(path, k), unknown);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter_mut().enumerate() {
                coerce_embedded(v, node.items.as_deref(), &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

fn coerce_object_meta(meta: &mut Value, path: &str, unknown: &mut Vec<String>) {
    let Value::Object(m) = meta else {
        *meta = Value::Object(Map::new());
        return;
    };
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        let kind = OBJECT_META
            .iter()
            .find(|(name, _)| *name == k)
            .map(|(_, kind)| *kind);
        let Some(kind) = kind else {
            unknown.push(join(path, &k));
            m.remove(&k);
            continue;
        };
        let keep = match (kind, m.get(&k)) {
            (_, Some(Value::Null)) => false,
            ("string", Some(v)) => v.as_str().is_some_and(|s| !s.is_empty()),
            ("integer", Some(v)) => v.as_i64().is_some_and(|i| i != 0),
            ("time", Some(v)) => v.as_str().is_some_and(|s| !s.is_empty()),
            ("stringmap", Some(Value::Object(o))) => !o.is_empty() && o.values().all(Value::is_string),
            ("stringarray", Some(Value::Array(a))) => !a.is_empty() && a.iter().all(Value::is_string),
            ("array", Some(Value::Array(a))) => !a.is_empty(),
            _ => false,
        };
        if !keep {
            m.remove(&k);
        }
    }
}

/// Drops nulls whose schema neither allows them nor defaults them
/// (`PruneNonNullableNullsWithoutDefaults`).
pub(crate) fn prune_nulls(x: &mut Value, s: Option<&Node>) {
    match x {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let schema = s.and_then(|n| n.field(&k));
                let drop = m.get(&k).is_some_and(Value::is_null)
                    && schema.is_some_and(|sc| !sc.nullable && sc.default.is_none());
                if drop {
                    m.remove(&k);
                } else if let Some(v) = m.get_mut(&k) {
                    prune_nulls(v, schema);
                }
            }
        }
        Value::Array(a) => {
            let items = s.and_then(|n| n.items.as_deref());
            for v in a.iter_mut() {
                prune_nulls(v, items);
            }
        }
        _ => {}
    }
}

fn non_nullable_null(x: Option<&Value>, s: &Node) -> bool {
    x.is_some_and(Value::is_null) && !s.nullable
}

/// Applies schema defaults (`structuraldefaulting.Default`).
pub(crate) fn default(x: &mut Value, s: Option<&Node>) {
    let Some(node) = s else { return };
    match x {
        Value::Object(m) => {
            for (k, prop) in &node.properties {
                let Some(d) = &prop.default else { continue };
                if !m.contains_key(k) || non_nullable_null(m.get(k), prop) {
                    m.insert(k.clone(), d.clone());
                }
            }
            for (k, v) in m.iter_mut() {
                if let Some(prop) = node.properties.get(k) {
                    default(v, Some(prop));
                } else if let Some(add) = node.additional_schema() {
                    if non_nullable_null(Some(v), add)
                        && let Some(d) = &add.default
                    {
                        *v = d.clone();
                    }
                    default(v, Some(add));
                }
            }
        }
        Value::Array(a) => {
            let Some(items) = node.items.as_deref() else {
                return;
            };
            for v in a.iter_mut() {
                if non_nullable_null(Some(v), items)
                    && let Some(d) = &items.default
                {
                    *v = d.clone();
                }
                default(v, Some(items));
            }
        }
        _ => {}
    }
}

/// `structurallisttype.ValidateListSetsAndMaps`: duplicates in `set` and `map` lists.
pub(crate) fn validate_list_sets_and_maps(
    fld: &FPath,
    s: &Node,
    obj: &Map<String, Value>,
    out: &mut Vec<Cause>,
) {
    if let Some(add) = s.additional_schema() {
        for (k, v) in obj {
            list_sets_value(&fld.key(k), add, v, out);
        }
    }
    for (k, v) in obj {
        if let Some(sub) = s.properties.get(k) {
            list_sets_value(&fld.child(k), sub, v, out);
        }
    }
}

fn list_sets_value(fld: &FPath, s: &Node, v: &Value, out: &mut Vec<Cause>) {
    match v {
        Value::Array(a) => list_sets_array(fld, s, a, out),
        Value::Object(m) => validate_list_sets_and_maps(fld, s, m, out),
        _ => {}
    }
}

fn list_sets_array(fld: &FPath, s: &Node, a: &[Value], out: &mut Vec<Cause>) {
    match s.list_type.as_deref() {
        Some("set") => {
            for i in non_unique(a) {
                out.push(errors::duplicate(&fld.index(i), Bad::of(&a[i])));
            }
        }
        Some("map") => list_map(fld, s, a, out),
        _ => {}
    }
    if let Some(items) = s.items.as_deref() {
        for (i, x) in a.iter().enumerate() {
            list_sets_value(&fld.index(i), items, x, out);
        }
    }
}

/// The indices of second occurrences (only the first repeat of a value is reported, as Go does).
fn non_unique(a: &[Value]) -> Vec<usize> {
    if a.len() <= 1 {
        return vec![];
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = vec![];
    for (i, x) in a.iter().enumerate() {
        // Scalars compare by Go type and value, compounds by their JSON encoding.
        let key = match x {
            Value::Number(n) => match gofmt::Num::of(n) {
                gofmt::Num::Int(v) => format!("i{v}"),
                gofmt::Num::Float(f) => format!("f{}", f.to_bits()),
            },
            other => format!("j{}", gofmt::json(other)),
        };
        let times = seen.entry(key).or_insert(0);
        *times += 1;
        if *times == 2 {
            out.push(i);
        }
    }
    out
}

fn list_map(fld: &FPath, s: &Node, a: &[Value], out: &mut Vec<Cause>) {
    for (i, x) in a.iter().enumerate() {
        if !x.is_null() && !x.is_object() {
            out.push(errors::invalid(
                &fld.index(i),
                Bad::of(x),
                "must be an object for an array of list-type map",
            ));
            return;
        }
    }
    if a.len() <= 1 {
        return;
    }
    if s.list_map_keys.len() == 1 {
        let key_field = &s.list_map_keys[0];
        // An absent key is a value of its own, distinct from every JSON value.
        let keys: Vec<Option<Value>> = a.iter().map(|x| x.get(key_field).cloned()).collect();
        let encoded: Vec<Value> = keys
            .iter()
            .map(|k| match k {
                None => Value::String("\u{0}absent".into()),
                Some(v) => Value::Array(vec![v.clone()]),
            })
            .collect();
        for i in non_unique(&encoded) {
            let mut shown = Map::new();
            if let Some(k) = &keys[i] {
                shown.insert(key_field.clone(), k.clone());
            }
            out.push(errors::duplicate(&fld.index(i), Bad::of(&Value::Object(shown))));
        }
        return;
    }
    let keys: Vec<Value> = a
        .iter()
        .map(|x| {
            let mut key = Map::new();
            if let Some(m) = x.as_object() {
                for k in &s.list_map_keys {
                    if let Some(v) = m.get(k) {
                        key.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(key)
        })
        .collect();
    for i in non_unique(&keys) {
        out.push(errors::duplicate(&fld.index(i), Bad::of(&keys[i])));
    }
}

/// `schemaobjectmeta.Validate` for embedded resources (the resource root is checked elsewhere).
pub(crate) fn validate_embedded(fld: &FPath, x: &Value, s: Option<&Node>, out: &mut Vec<Cause>) {
    let Some(node) = s else { return };
    match x {
        Value::Object(m) => {
            if node.embedded {
                validate_embedded_resource(fld, m, out);
            }
            for (k, v) in m {
                if let Some(prop) = node.properties.get(k) {
                    validate_embedded(&fld.child(k), v, Some(prop), out);
                } else if !matches!(node.additional, Additional::None) {
                    validate_embedded(&fld.key(k), v, node.additional_schema(), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                validate_embedded(&fld.index(i), v, node.items.as_deref(), out);
            }
        }
        _ => {}
    }
}

const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_dns1035_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn validate_embedded_resource(fld: &FPath, m: &Map<String, Value>, out: &mut Vec<Cause>) {
    if !m.contains_key("apiVersion") {
        out.push(errors::required(&fld.child("apiVersion"), ""));
    }
    if !m.contains_key("kind") {
        out.push(errors::required(&fld.child("kind"), ""));
    }
    let sorted: BTreeMap<&String, &Value> = m.iter().collect();
    for (k, v) in sorted {
        match k.as_str() {
            "apiVersion" => match v.as_str() {
                None => out.push(errors::invalid(
                    &fld.child("apiVersion"),
                    Bad::of(v),
                    "must be a string",
                )),
                Some("") => out.push(errors::invalid(
                    &fld.child("apiVersion"),
                    Bad::Str(String::new()),
                    "must not be empty",
                )),
                Some(av) if av.matches('/').count() > 1 => out.push(errors::invalid(
                    &fld.child("apiVersion"),
                    Bad::Str(av.into()),
                    &format!("unexpected GroupVersion string: {av}"),
                )),
                Some(_) => {}
            },
            "kind" => match v.as_str() {
                None => out.push(errors::invalid(
                    &fld.child("kind"),
                    Bad::of(v),
                    "must be a string",
                )),
                Some("") => out.push(errors::invalid(
                    &fld.child("kind"),
                    Bad::Str(String::new()),
                    "must not be empty",
                )),
                Some(kind) => {
                    let lower = kind.to_lowercase();
                    let mut msgs = vec![];
                    if lower.len() > 63 {
                        msgs.push("must be no more than 63 characters".to_string());
                    }
                    if !is_dns1035_label(&lower) {
                        msgs.push(DNS1035_MSG.to_string());
                    }
                    if !msgs.is_empty() {
                        out.push(errors::invalid(
                            &fld.child("kind"),
                            Bad::Str(kind.into()),
                            &format!(
                                "may have mixed case, but should otherwise match: {}",
                                msgs.join(",")
                            ),
                        ));
                    }
                }
            },
            "metadata" => validate_embedded_meta(&fld.child("metadata"), v, out),
            _ => {}
        }
    }
}

fn path_segment_errors(name: &str, prefix: bool) -> Vec<String> {
    if !prefix && (name == "." || name == "..") {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|c| name.contains(**c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

fn validate_embedded_meta(fld: &FPath, v: &Value, out: &mut Vec<Cause>) {
    let Some(m) = v.as_object() else {
        out.push(errors::invalid(
            fld,
            Bad::of(v),
            "json: cannot unmarshal into Go value of type v1.ObjectMeta",
        ));
        return;
    };
    let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let generate_name = text("generateName");
    if !generate_name.is_empty() {
        for msg in path_segment_errors(&generate_name, true) {
            out.push(errors::invalid(
                &fld.child("generateName"),
                Bad::Str(generate_name.clone()),
                &msg,
            ));
        }
    }
    let name = text("name");
    if !name.is_empty() {
        for msg in path_segment_errors(&name, false) {
            out.push(errors::invalid(&fld.child("name"), Bad::Str(name.clone()), &msg));
        }
    }
    let namespace = text("namespace");
    if !namespace.is_empty() {
        let b = namespace.as_bytes();
        let ok = namespace.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b.last().is_some_and(u8::is_ascii_alphanumeric)
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
        if !ok {
            let msg = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
            out.push(errors::invalid(
                &fld.child("namespace"),
                Bad::Str(namespace.clone()),
                msg,
            ));
        }
    }
}
