//! The three patch types kube-apiserver accepts besides apply: JSON merge patch
//! (`application/merge-patch+json`), JSON patch (`application/json-patch+json`) and strategic
//! merge patch (`application/strategic-merge-patch+json`), each with the semantics and errors
//! kube-apiserver has rather than those of the RFCs alone.
//!
//! kube-apiserver applies the first two with `gopkg.in/evanphx/json-patch.v4` and the third with
//! `k8s.io/apimachinery/pkg/util/strategicpatch`; where those libraries depart from the RFCs
//! (null pruning in merge patches, negative array indices, `replace` of a missing key, `test`
//! against a missing path) this module departs with them, because clients are written against
//! what the server does. The RFC-strict `json-patch` crate therefore serves only as a
//! cross-check in the tests.
//!
//! Errors carry the HTTP status kube-apiserver answers with ([`PatchError::code`],
//! [`PatchError::reason`]) and its `Status` message. A JSON patch that is well formed but cannot
//! be applied (a failed `test`, a missing path) gets kube-apiserver's generic 422 message, which
//! hides the detail; the detail is kept in [`PatchError::detail`] for logs.

use serde_json::{Map, Value};

use crate::merge_keys::ListType;

/// The most operations kube-apiserver accepts in one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

const UNPROCESSABLE_MESSAGE: &str = "the server rejected our request due to an error in our request";

/// Why a patch was refused, shaped after the `Status` kube-apiserver returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// 400 BadRequest: the patch document is malformed; the message is the `Status` message.
    #[error("{0}")]
    BadRequest(String),
    /// 422 Invalid: the patch is well formed but cannot be applied to this object.
    /// kube-apiserver answers with a fixed message and no causes; the field holds what the
    /// patch library said, for logs only.
    #[error("{msg}", msg = UNPROCESSABLE_MESSAGE)]
    Unprocessable(String),
    /// 413 RequestEntityTooLarge: a JSON patch with more than [`MAX_JSON_PATCH_OPERATIONS`]
    /// operations; the field is the count.
    #[error(
        "Request entity too large: The allowed maximum operations in a JSON patch is {max}, got {0}",
        max = MAX_JSON_PATCH_OPERATIONS
    )]
    TooManyOperations(usize),
    /// 500 with no reason: an error kube-apiserver passes through unconverted (most strategic
    /// merge patch failures); the message is the `Status` message.
    #[error("{0}")]
    Internal(String),
}

impl PatchError {
    /// The HTTP status code kube-apiserver answers with.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::Unprocessable(_) => 422,
            PatchError::TooManyOperations(_) => 413,
            PatchError::Internal(_) => 500,
        }
    }

    /// The `Status.reason`; empty where kube-apiserver leaves it out.
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::BadRequest(_) => "BadRequest",
            PatchError::Unprocessable(_) => "Invalid",
            PatchError::TooManyOperations(_) => "RequestEntityTooLarge",
            PatchError::Internal(_) => "",
        }
    }

    /// The most specific description of what went wrong, which for a 422 is more than the
    /// client is told.
    pub fn detail(&self) -> String {
        match self {
            PatchError::Unprocessable(detail) => detail.clone(),
            other => other.to_string(),
        }
    }

    /// The `metav1.Status` body kube-apiserver sends for this error.
    pub fn to_status(&self) -> Value {
        let mut status = Map::new();
        status.insert("kind".into(), "Status".into());
        status.insert("apiVersion".into(), "v1".into());
        status.insert("metadata".into(), Value::Object(Map::new()));
        status.insert("status".into(), "Failure".into());
        status.insert("message".into(), self.to_string().into());
        if !self.reason().is_empty() {
            status.insert("reason".into(), self.reason().into());
        }
        // NewGenericServerResponse always attaches (empty) details.
        if let PatchError::Unprocessable(_) = self {
            status.insert("details".into(), Value::Object(Map::new()));
        }
        status.insert("code".into(), self.code().into());
        Value::Object(status)
    }
}

// ---------------------------------------------------------------------------------------------
// JSON merge patch.

/// Applies a JSON merge patch (RFC 7386) the way kube-apiserver does: `null` deletes a key, an
/// object merges into an object, anything else replaces. Like evanphx/json-patch, nulls inside
/// values that are added or that replace a non-object are pruned from objects (also objects
/// nested in arrays), while an array or scalar replacing an object is taken as is. A patch that
/// is not an object or array is itself the result, as RFC 7386 has it (kube-apiserver refuses
/// such patches; see [`try_merge_patch`]).
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    match (target, patch) {
        (Value::Object(doc), Value::Object(p)) => {
            let mut doc = doc.clone();
            merge_docs(&mut doc, p);
            Value::Object(doc)
        }
        (_, Value::Object(_) | Value::Array(_)) => prune_nulls(patch.clone()),
        (_, other) => other.clone(),
    }
}

/// [`merge_patch`] with kube-apiserver's check on the patch document: `null`, strings, numbers
/// and booleans are refused with 400 `Invalid JSON Patch`.
pub fn try_merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    match patch {
        Value::Object(_) | Value::Array(_) => Ok(merge_patch(target, patch)),
        _ => Err(PatchError::BadRequest("Invalid JSON Patch".into())),
    }
}

fn merge_docs(doc: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        if v.is_null() {
            doc.remove(k);
            continue;
        }
        match doc.get_mut(k) {
            Some(cur) if !cur.is_null() => {
                let merged = merge_value(cur.take(), v);
                *cur = merged;
            }
            _ => {
                doc.insert(k.clone(), prune_nulls(v.clone()));
            }
        }
    }
}

fn merge_value(cur: Value, patch: &Value) -> Value {
    match (cur, patch) {
        (Value::Object(mut cur), Value::Object(p)) => {
            merge_docs(&mut cur, p);
            Value::Object(cur)
        }
        // evanphx returns a non-object patch for an object unpruned.
        (Value::Object(_), p) => p.clone(),
        (_, p) => prune_nulls(p.clone()),
    }
}

// Drops null members of objects, recursively; null array elements stay.
fn prune_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, prune_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(prune_nulls).collect()),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON patch.

/// Applies a JSON patch (RFC 6902: `add`, `remove`, `replace`, `move`, `copy`, `test`) as
/// kube-apiserver does with evanphx/json-patch v4:
///
/// - a patch that is not an array (or holds non-objects) is a 400 with Go's decoding message;
///   `null` is an empty patch;
/// - more than [`MAX_JSON_PATCH_OPERATIONS`] operations is a 413;
/// - any operation that fails is a 422 with the generic message (detail in
///   [`PatchError::detail`], worded as evanphx words it, e.g. `testing value /a failed: test
///   failed`), and nothing is applied.
///
/// evanphx's departures from the RFC are kept: negative array indices count from the end,
/// `replace` and `copy` treat a missing object member as null (so `replace` adds it), `test` of
/// `null` passes on a missing member, a missing `value` means null, and whatever comes before a
/// path's first `/` is ignored (`a/b` means `/b`).
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: &[Value] = match patch {
        Value::Null => &[],
        Value::Array(ops) => ops,
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                go_json_kind(other)
            )));
        }
    };
    if let Some(bad) = ops
        .iter()
        .find(|op| !matches!(op, Value::Object(_) | Value::Null))
    {
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            go_json_kind(bad)
        )));
    }
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations(ops.len()));
    }
    let mut doc = target.clone();
    for op in ops {
        apply_operation(&mut doc, op).map_err(PatchError::Unprocessable)?;
    }
    Ok(doc)
}

fn apply_operation(doc: &mut Value, op: &Value) -> Result<(), String> {
    let kind = match op.get("op") {
        Some(Value::String(kind)) => kind.as_str(),
        _ => "unknown",
    };
    match kind {
        "add" => op_add(doc, op),
        "remove" => op_remove(doc, op),
        "replace" => op_replace(doc, op),
        "move" => op_move(doc, op),
        "copy" => op_copy(doc, op),
        "test" => op_test(doc, op),
        other => Err(format!("Unexpected kind: {other}")),
    }
}

fn op_string(op: &Value, field: &str, missing: &str) -> Result<String, String> {
    match op.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(missing.to_string()),
        Some(other) => Err(format!(
            "json: cannot unmarshal {} into Go value of type string",
            go_json_kind(other)
        )),
    }
}

fn op_path(op: &Value) -> Result<String, String> {
    op_string(op, "path", "operation missing path field: missing value")
}

fn op_from(op: &Value) -> Result<String, String> {
    op_string(op, "from", "operation, missing from field: missing value")
}

// A missing "value" adds null, as evanphx does.
fn op_value(op: &Value) -> Value {
    op.get("value").cloned().unwrap_or(Value::Null)
}

fn op_add(doc: &mut Value, op: &Value) -> Result<(), String> {
    let path = op_path(op).map_err(|_| "add operation failed to decode path: missing value".to_string())?;
    let Some((con, key)) = find_object(doc, &path) else {
        return Err(format!(
            "add operation does not apply: doc is missing path: \"{path}\": missing value"
        ));
    };
    container_add(con, &key, op_value(op)).map_err(|e| format!("error in add for path: '{path}': {e}"))
}

fn op_remove(doc: &mut Value, op: &Value) -> Result<(), String> {
    let path =
        op_path(op).map_err(|_| "remove operation failed to decode path: missing value".to_string())?;
    let Some((con, key)) = find_object(doc, &path) else {
        return Err(format!(
            "remove operation does not apply: doc is missing path: \"{path}\": missing value"
        ));
    };
    container_remove(con, &key).map_err(|e| format!("error in remove for path: '{path}': {e}"))
}

fn op_replace(doc: &mut Value, op: &Value) -> Result<(), String> {
    let path = op_path(op).map_err(|e| format!("replace operation failed to decode path: {e}"))?;
    if path.is_empty() {
        let value = op_value(op);
        if !(value.is_object() || value.is_array()) {
            return Err("replace operation value must be object or array: %!w(<nil>)".into());
        }
        *doc = value;
        return Ok(());
    }
    let Some((con, key)) = find_object(doc, &path) else {
        return Err(format!(
            "replace operation does not apply: doc is missing path: {path}: missing value"
        ));
    };
    container_get(con, &key).map_err(|_| {
        format!("replace operation does not apply: doc is missing key: {path}: missing value")
    })?;
    container_set(con, &key, op_value(op)).map_err(|e| format!("error in remove for path: '{path}': {e}"))
}

fn op_move(doc: &mut Value, op: &Value) -> Result<(), String> {
    let from = op_from(op).map_err(|e| format!("move operation failed to decode from: {e}"))?;
    let Some((con, key)) = find_object(doc, &from) else {
        return Err(format!(
            "move operation does not apply: doc is missing from path: {from}: missing value"
        ));
    };
    let value = container_get(con, &key).map_err(|e| format!("error in move for path: '{key}': {e}"))?;
    container_remove(con, &key).map_err(|e| format!("error in move for path: '{key}': {e}"))?;
    let path = op_path(op).map_err(|e| format!("move operation failed to decode path: {e}"))?;
    let Some((con, key)) = find_object(doc, &path) else {
        return Err(format!(
            "move operation does not apply: doc is missing destination path: {path}: missing value"
        ));
    };
    container_add(con, &key, value.unwrap_or(Value::Null))
        .map_err(|e| format!("error in move for path: '{path}': {e}"))
}

fn op_copy(doc: &mut Value, op: &Value) -> Result<(), String> {
    let from = op_from(op).map_err(|e| format!("copy operation failed to decode from: {e}"))?;
    let Some((con, key)) = find_object(doc, &from) else {
        return Err(format!(
            "copy operation does not apply: doc is missing from path: {from}: missing value"
        ));
    };
    let value = container_get(con, &key).map_err(|e| format!("error in copy for from: '{from}': {e}"))?;
    let path = op_path(op).map_err(|_| "copy operation failed to decode path: missing value".to_string())?;
    let Some((con, key)) = find_object(doc, &path) else {
        return Err(format!(
            "copy operation does not apply: doc is missing destination path: {path}: missing value"
        ));
    };
    container_add(con, &key, value.unwrap_or(Value::Null))
        .map_err(|e| format!("error while adding value during copy: {e}"))
}

fn op_test(doc: &mut Value, op: &Value) -> Result<(), String> {
    let path = op_path(op).map_err(|e| format!("test operation failed to decode path: {e}"))?;
    let failed = || format!("testing value {path} failed: test failed");
    let expected = op.get("value");
    if path.is_empty() {
        return if expected == Some(doc) {
            Ok(())
        } else {
            Err(failed())
        };
    }
    let Some((con, key)) = find_object(doc, &path) else {
        return Err(format!(
            "test operation does not apply: is missing path: {path}: missing value"
        ));
    };
    let actual = container_get(con, &key).map_err(|e| format!("error in test for path: '{path}': {e}"))?;
    match (actual, expected) {
        // A missing or null member equals an absent or null expected value.
        (None, None | Some(Value::Null)) => Ok(()),
        (Some(actual), Some(expected)) if &actual == expected => Ok(()),
        _ => Err(failed()),
    }
}

// Resolves all but the last segment of a JSON pointer to an object or array, and decodes the
// last segment. Like evanphx, only the part after the first `/` counts, and anything that is
// missing, null or a scalar on the way is a miss.
fn find_object<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let segments: Vec<&str> = path.split('/').collect();
    let (last, inner) = segments.split_last()?;
    let inner = inner.get(1..)?;
    let mut cur = doc;
    for segment in inner {
        let key = decode_pointer_segment(segment);
        cur = match cur {
            Value::Object(m) => m.get_mut(&key)?,
            Value::Array(a) => {
                let i = array_index(&key, a.len()).ok()?;
                a.get_mut(i)?
            }
            _ => return None,
        };
        if !(cur.is_object() || cur.is_array()) {
            return None;
        }
    }
    Some((cur, decode_pointer_segment(last)))
}

fn decode_pointer_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    let mut chars = segment.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.peek() {
                Some('1') => {
                    chars.next();
                    out.push('/');
                    continue;
                }
                Some('0') => {
                    chars.next();
                    out.push('~');
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
    }
    out
}

fn parse_index(key: &str) -> Result<i64, String> {
    key.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {key:?}: invalid syntax"))
}

fn invalid_index(idx: i64) -> String {
    format!("Unable to access invalid index: {idx}: invalid index referenced")
}

// An index into an existing element; negative counts from the end.
fn array_index(key: &str, len: usize) -> Result<usize, String> {
    let idx = parse_index(key)?;
    let len = i64::try_from(len).map_err(|_| invalid_index(idx))?;
    let resolved = if idx < 0 {
        if idx < -len {
            return Err(invalid_index(idx));
        }
        idx + len
    } else {
        idx
    };
    if resolved >= len {
        return Err(invalid_index(resolved));
    }
    usize::try_from(resolved).map_err(|_| invalid_index(idx))
}

// Null members read as missing, as they do in evanphx's lazily decoded documents.
fn container_get(con: &Value, key: &str) -> Result<Option<Value>, String> {
    match con {
        Value::Object(m) => Ok(m.get(key).filter(|v| !v.is_null()).cloned()),
        Value::Array(a) => {
            let i = array_index(key, a.len())?;
            Ok(a.get(i).filter(|v| !v.is_null()).cloned())
        }
        _ => Err(ERR_NOT_CONTAINER.into()),
    }
}

const ERR_NOT_CONTAINER: &str = "invalid state detected";

fn container_add(con: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match con {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
            Ok(())
        }
        Value::Array(a) => {
            if key == "-" {
                a.push(value);
                return Ok(());
            }
            let idx = key
                .parse::<i64>()
                .map_err(|_| format!("value was not a proper array index: '{key}': strconv.Atoi: parsing {key:?}: invalid syntax"))?;
            let size = i64::try_from(a.len() + 1).map_err(|_| invalid_index(idx))?;
            if idx >= size || idx < -size {
                return Err(invalid_index(idx));
            }
            let at = if idx < 0 { idx + size } else { idx };
            let at = usize::try_from(at).map_err(|_| invalid_index(idx))?;
            a.insert(at, value);
            Ok(())
        }
        _ => Err(ERR_NOT_CONTAINER.into()),
    }
}

fn container_remove(con: &mut Value, key: &str) -> Result<(), String> {
    match con {
        Value::Object(m) => match m.remove(key) {
            Some(_) => Ok(()),
            None => Err(format!("Unable to remove nonexistent key: {key}: missing value")),
        },
        Value::Array(a) => {
            let i = array_index(key, a.len())?;
            a.remove(i);
            Ok(())
        }
        _ => Err(ERR_NOT_CONTAINER.into()),
    }
}

fn container_set(con: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match con {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = array_index(key, a.len())?;
            if let Some(slot) = a.get_mut(i) {
                *slot = value;
            }
            Ok(())
        }
        _ => Err(ERR_NOT_CONTAINER.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch.

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

const ERR_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";
const ERR_LIST_OF_LISTS: &str = "lists of lists are not supported";

const GO_MAP: &str = "map[string]interface {}";
const GO_SLICE: &str = "[]interface {}";

/// Applies a strategic merge patch as kube-apiserver does for built-in kinds
/// (`strategicpatch.StrategicMergeMapPatch`), with `lists` giving the list type of the field at a
/// path (field names from the root, list items skipped), e.g.
/// [`crate::merge_keys::strategic_lists`].
///
/// Supported, with apimachinery's semantics and ordering rules: `null` deleting a key;
/// `$patch: replace` and `$patch: delete` on maps and as list items; `$retainKeys`;
/// `$setElementOrder/<list>`; `$deleteFromPrimitiveList/<list>`; map lists merged item by item
/// on their key (several keys are compared together, an extension: built-in kinds have one);
/// set lists merged without duplicates; atomic lists replaced. `$patch: merge` is refused, as
/// apimachinery refuses it.
///
/// Errors have the status kube-apiserver gives them: malformed directives are 400, a list of
/// lists 422, everything else (a list item without its merge key, mixed item types, an unknown
/// `$patch`) a 500 carrying apimachinery's message.
///
/// As in apimachinery, directives are removed from values that are added new, but nulls and
/// directives other than `$patch` inside new list items are kept; kube-apiserver then drops them
/// when it decodes the result into its typed object, which is the caller's business here.
pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    lists: &dyn Fn(&[&str]) -> ListType,
) -> Result<Value, PatchError> {
    let patch = match patch {
        // Go decodes `null` into a nil map, which patches nothing.
        Value::Null => return Ok(target.clone()),
        Value::Object(p) => p.clone(),
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_json_kind(other)
            )));
        }
    };
    let original = match target {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    let smp = Smp { lists };
    let merged = smp.merge_map(original, patch, &mut Vec::new())?;
    Ok(Value::Object(merged))
}

struct Smp<'a> {
    lists: &'a dyn Fn(&[&str]) -> ListType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoType {
    Nil,
    Bool,
    Int,
    Float,
    String,
    Slice,
    Map,
}

// The dynamic type Go gives a decoded JSON value (integers decode as int64 in kube-apiserver).
fn go_type(v: &Value) -> GoType {
    match v {
        Value::Null => GoType::Nil,
        Value::Bool(_) => GoType::Bool,
        Value::Number(n) if n.is_i64() => GoType::Int,
        Value::Number(_) => GoType::Float,
        Value::String(_) => GoType::String,
        Value::Array(_) => GoType::Slice,
        Value::Object(_) => GoType::Map,
    }
}

type Items = Vec<Value>;

impl Smp<'_> {
    fn list_type(&self, path: &[String]) -> ListType {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        (self.lists)(&path)
    }

    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(directive) = patch.get(DIRECTIVE) {
            return match directive.as_str() {
                Some("replace") => {
                    patch.remove(DIRECTIVE);
                    Ok(patch)
                }
                Some("delete") => Ok(Map::new()),
                _ => Err(bad_patch_type(directive, &patch)),
            };
        }
        apply_retain_keys(&mut original, &mut patch)?;
        self.merge_ordered_lists(&mut original, &mut patch, path)?;

        // Go walks the patch in random order; sorted order puts `$deleteFromPrimitiveList/x`
        // before `x`, so additions win over deletions of the same value.
        let mut keys: Vec<String> = patch.keys().cloned().collect();
        keys.sort();
        for k in keys {
            let Some(patch_v) = patch.remove(&k) else { continue };
            let (key, is_delete_list) = if k.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
                let stripped = extract_key(&k, DELETE_FROM_PRIMITIVE_LIST, ERR_PRIMITIVE_LIST)?;
                (if stripped.is_empty() { k.clone() } else { stripped }, true)
            } else {
                (k.clone(), false)
            };
            if patch_v.is_null() {
                original.remove(&key);
                continue;
            }
            let Some(orig_v) = original.remove(&key) else {
                if !is_delete_list {
                    insert_new(&mut original, key, patch_v);
                }
                continue;
            };
            if go_type(&orig_v) != go_type(&patch_v) {
                if is_delete_list {
                    original.insert(key, orig_v);
                } else {
                    insert_new(&mut original, key, patch_v);
                }
                continue;
            }
            path.push(key.clone());
            let merged = match (orig_v, patch_v) {
                (Value::Object(o), Value::Object(p)) => Some(Value::Object(self.merge_map(o, p, path)?)),
                (Value::Array(o), Value::Array(p)) => {
                    Some(Value::Array(self.merge_list_field(o, p, path, is_delete_list)?))
                }
                (_, p) => remove_directives(p),
            };
            path.pop();
            if let Some(v) = merged {
                original.insert(key, v);
            }
        }
        Ok(original)
    }

    // `$setElementOrder/<list>`: merge the list (if the patch has it) and then put the items
    // the order lists into that order, the others where they were.
    fn merge_ordered_lists(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<(), PatchError> {
        let mut directives: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        directives.sort();
        for directive in directives {
            let Some(order) = patch.remove(&directive) else {
                continue;
            };
            let Value::Array(order) = order else {
                return Err(bad_arg_type(GO_SLICE, &order));
            };
            let field = extract_key(&directive, SET_ELEMENT_ORDER, ERR_SET_ELEMENT_ORDER)?;
            let as_list = |v: Option<&Value>| -> Result<Option<Items>, PatchError> {
                match v {
                    None => Ok(None),
                    Some(Value::Array(a)) => Ok(Some(a.clone())),
                    Some(other) => Err(bad_arg_type(GO_SLICE, other)),
                }
            };
            let orig_list = as_list(original.get(&field))?;
            let patch_list = as_list(patch.get(&field))?;
            path.push(field.clone());
            let list_type = self.list_type(path);
            let keys = list_type.keys();
            validate_patch_with_set_order(patch_list.as_deref().unwrap_or_default(), &order, keys)?;
            let merged = match (&orig_list, &patch_list) {
                (Some(o), None) => o.clone(),
                (None, Some(p)) => match remove_directives(Value::Array(p.clone())) {
                    Some(Value::Array(items)) => items,
                    _ => {
                        path.pop();
                        continue;
                    }
                },
                (Some(o), Some(p)) => self.merge_list_field(o.clone(), p.clone(), path, false)?,
                (None, None) => {
                    path.pop();
                    continue;
                }
            };
            path.pop();
            let (in_order, server_only) = partition(merged, &order, keys)?;
            let orig_items = orig_list.unwrap_or_default();
            let patch_items = patch_list.unwrap_or_default();
            let kind = slice_element_type(&[&orig_items, &patch_items])?;
            let server_order = if list_type.merges() && kind == GoType::Map && !keys.is_empty() {
                aliased_original(&orig_items, &patch_items, keys)
            } else {
                orig_items
            };
            let ordered = normalize_element_order(in_order, server_only, &order, &server_order, keys, kind)?;
            original.insert(field.clone(), Value::Array(ordered));
            patch.remove(&field);
        }
        Ok(())
    }

    fn merge_list_field(
        &self,
        original: Items,
        patch: Items,
        path: &[String],
        is_delete_list: bool,
    ) -> Result<Items, PatchError> {
        let list_type = self.list_type(path);
        if list_type.merges() || is_delete_list {
            self.merge_list(original, patch, path, list_type.keys(), is_delete_list)
        } else {
            Ok(patch)
        }
    }

    fn merge_list(
        &self,
        original: Items,
        patch: Items,
        path: &[String],
        keys: &[String],
        is_delete_list: bool,
    ) -> Result<Items, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let kind = slice_element_type(&[&original, &patch])?;
        let (original, patch, merged) = if kind != GoType::Map {
            if is_delete_list {
                return Ok(original.into_iter().filter(|v| !patch.contains(v)).collect());
            }
            let mut both = original.clone();
            both.extend(patch.iter().cloned());
            let merged = dedupe_scalars(both);
            (original, patch, merged)
        } else {
            if keys.is_empty() {
                return Err(PatchError::Internal(
                    "cannot merge lists without merge key for struct".into(),
                ));
            }
            let (original, patch) = apply_list_directives(original, patch, keys)?;
            let merged = self.merge_items(original.clone(), &patch, path, keys)?;
            (original, patch, merged)
        };
        let (in_patch, server_only) = partition(merged, &patch, keys)?;
        normalize_element_order(in_patch, server_only, &patch, &original, keys, kind)
    }

    // Merges each patch item into the original item with the same key, appending new ones.
    fn merge_items(
        &self,
        mut original: Items,
        patch: &[Value],
        path: &[String],
        keys: &[String],
    ) -> Result<Items, PatchError> {
        for item in patch {
            let Value::Object(item_map) = item else {
                return Err(bad_arg_type(GO_MAP, item));
            };
            if !has_first_key(item_map, keys) {
                return Err(no_merge_key(item_map, keys));
            }
            match find_item(&original, item_map, keys)? {
                Some(i) => {
                    if let Some(Value::Object(found)) = original.get_mut(i) {
                        let merged =
                            self.merge_map(std::mem::take(found), item_map.clone(), &mut path.to_vec())?;
                        *found = merged;
                    }
                }
                None => original.push(item.clone()),
            }
        }
        Ok(original)
    }
}

fn insert_new(original: &mut Map<String, Value>, key: String, mut value: Value) {
    discard_null_values(&mut value);
    if let Some(v) = remove_directives(value) {
        original.insert(key, v);
    }
}

// What apimachinery's view of the live list looks like once a merge has been through it: its
// merge deletes `$patch: delete` matches by shifting the rest of the list left in place and
// then appends new items into the room that frees, all in the live list's own backing array.
// `$setElementOrder` then places server-only items by that mutated list, so the answer differs
// from ordering by the untouched list; kube-apiserver's answer is this one.
fn aliased_original(original: &[Value], patch: &[Value], keys: &[String]) -> Items {
    let mut backing = original.to_vec();
    let mut logical = original.to_vec();
    let mut shared = true;
    let mut plain = Vec::new();
    let mut replace = false;
    for item in patch {
        let Value::Object(m) = item else { continue };
        match m.get(DIRECTIVE).and_then(Value::as_str) {
            None if !m.contains_key(DIRECTIVE) => plain.push(item.clone()),
            Some("delete") => {
                while let Ok(Some(i)) = find_item(&logical, m, keys) {
                    logical.remove(i);
                    for (j, v) in logical.iter().enumerate().skip(i) {
                        backing[j] = v.clone();
                    }
                }
            }
            Some("replace") => replace = true,
            _ => {}
        }
    }
    if replace {
        // The list becomes the patch's items, in an array of their own.
        shared = false;
        logical = plain.clone();
    }
    for item in plain {
        let Value::Object(m) = &item else { continue };
        if matches!(find_item(&logical, m, keys), Ok(Some(_))) {
            continue;
        }
        if shared && logical.len() < backing.len() {
            backing[logical.len()] = item.clone();
        } else {
            shared = false;
        }
        logical.push(item);
    }
    backing
}

// `$retainKeys`: drop every original key the list does not name; the patch may only set keys
// the list names.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadRequest(ERR_RETAIN_KEYS.into()));
    };
    let retained = |k: &str| retain.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_FROM_PRIMITIVE_LIST) || k.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if !retained(k) {
            return Err(PatchError::BadRequest(ERR_RETAIN_KEYS.into()));
        }
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

// `$patch: delete` items remove their match from the original; a `$patch: replace` item makes
// the other patch items the whole list.
fn apply_list_directives(
    original: Items,
    patch: Items,
    keys: &[String],
) -> Result<(Items, Items), PatchError> {
    let mut original = original;
    let mut plain = Vec::new();
    let mut replace = false;
    for item in patch {
        let Value::Object(m) = &item else {
            return Err(bad_arg_type(GO_MAP, &item));
        };
        let Some(directive) = m.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                if !has_first_key(m, keys) {
                    return Err(no_merge_key(m, keys));
                }
                while let Some(i) = find_item(&original, m, keys)? {
                    original.remove(i);
                }
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::Internal(
                    "merging lists cannot yet be specified in the patch".into(),
                ));
            }
            _ => return Err(bad_patch_type(directive, m)),
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

fn validate_patch_with_set_order(
    patch: &[Value],
    order: &[Value],
    keys: &[String],
) -> Result<(), PatchError> {
    if order.is_empty() || patch.is_empty() {
        return Ok(());
    }
    let non_delete = if keys.is_empty() {
        patch.to_vec()
    } else {
        split_deletions(patch.to_vec())?.0
    };
    let (mut pi, mut oi) = (0, 0);
    while let (Some(item), Some(ordered)) = (non_delete.get(pi), order.get(oi)) {
        if item.as_object().is_some_and(|m| m.contains_key(DIRECTIVE)) {
            pi += 1;
            continue;
        }
        if merge_key_value_equal(item, ordered, keys)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() && oi >= order.len() {
        return Err(PatchError::Internal(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_sprint_list(patch),
            go_sprint_list(order)
        )));
    }
    Ok(())
}

fn merge_key_value_equal(left: &Value, right: &Value, keys: &[String]) -> Result<bool, PatchError> {
    if keys.is_empty() {
        return Ok(left == right);
    }
    let Value::Object(l) = left else {
        return Err(bad_arg_type(GO_MAP, left));
    };
    let Value::Object(r) = right else {
        return Err(bad_arg_type(GO_MAP, right));
    };
    if !has_first_key(l, keys) {
        return Err(no_merge_key(l, keys));
    }
    if !has_first_key(r, keys) {
        return Err(no_merge_key(r, keys));
    }
    Ok(key_values(l, keys) == key_values(r, keys))
}

fn key_values<'a>(m: &'a Map<String, Value>, keys: &[String]) -> Vec<Option<&'a Value>> {
    keys.iter().map(|k| m.get(k)).collect()
}

fn has_first_key(m: &Map<String, Value>, keys: &[String]) -> bool {
    keys.first().is_none_or(|k| m.contains_key(k))
}

// The first item whose key values equal the probe's; every list item must be a map.
fn find_item(
    list: &[Value],
    probe: &Map<String, Value>,
    keys: &[String],
) -> Result<Option<usize>, PatchError> {
    let want = key_values(probe, keys);
    for (i, item) in list.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(PatchError::Internal(format!("value for key {i} is not a map")));
        };
        if has_first_key(m, keys) && key_values(m, keys) == want {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

// Splits items into those `by` mentions (by key, or by value for scalars) and the others.
fn partition(items: Items, by: &[Value], keys: &[String]) -> Result<(Items, Items), PatchError> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for item in items {
        let found = if keys.is_empty() {
            by.contains(&item)
        } else {
            let Value::Object(m) = &item else {
                return Err(bad_arg_type(GO_MAP, &item));
            };
            if !has_first_key(m, keys) {
                return Err(no_merge_key(m, keys));
            }
            find_item(by, m, keys)?.is_some()
        };
        if found {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

// Orders the patch's items by the patch (or `$setElementOrder`) and the server-only items by the
// live list, then interleaves them keeping each side's order.
fn normalize_element_order(
    patch: Items,
    server_only: Items,
    patch_order: &[Value],
    server_order: &[Value],
    keys: &[String],
    kind: GoType,
) -> Result<Items, PatchError> {
    let patch = normalize_slice_order(patch, patch_order, keys, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, keys, kind)?;
    Ok(merge_sorted(server_only, patch, server_order, keys, kind))
}

fn normalize_slice_order(
    items: Items,
    order: &[Value],
    keys: &[String],
    kind: GoType,
) -> Result<Items, PatchError> {
    let (mut items, deletions) = if kind == GoType::Map {
        let key = keys.first().map(String::as_str).unwrap_or_default();
        for item in items.iter().chain(order) {
            let Value::Object(m) = item else {
                return Err(bad_arg_type(GO_MAP, item));
            };
            if !m.contains_key(key) {
                return Err(no_merge_key(m, keys));
            }
        }
        split_deletions(items)?
    } else {
        (items, Vec::new())
    };
    // An insertion sort with apimachinery's comparator, which calls an item it cannot place
    // "less"; the result only matters when every item is placed, and then any stable sort
    // agrees.
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && order_less(&items[j], &items[j - 1], order, keys, kind) {
            items.swap(j, j - 1);
            j -= 1;
        }
    }
    items.extend(deletions);
    Ok(items)
}

fn order_less(a: &Value, b: &Value, order: &[Value], keys: &[String], kind: GoType) -> bool {
    match (position(order, a, keys, kind), position(order, b, keys, kind)) {
        (Some(ia), Some(ib)) => ia < ib,
        _ => true,
    }
}

fn position(list: &[Value], item: &Value, keys: &[String], kind: GoType) -> Option<usize> {
    if kind != GoType::Map {
        return list.iter().position(|v| v == item);
    }
    let key_of = |v: &Value| -> Vec<Option<Value>> {
        keys.iter()
            .map(|k| v.as_object().and_then(|m| m.get(k)).cloned())
            .collect()
    };
    let want = key_of(item);
    list.iter().position(|v| key_of(v) == want)
}

fn merge_sorted(left: Items, right: Items, server_order: &[Value], keys: &[String], kind: GoType) -> Items {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (
                    position(server_order, l, keys, kind),
                    position(server_order, r, keys, kind),
                ) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

// Moves `$patch: delete` items to a list of their own.
fn split_deletions(items: Items) -> Result<(Items, Items), PatchError> {
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for item in items {
        let Value::Object(m) = &item else {
            return Err(bad_arg_type(GO_MAP, &item));
        };
        if m.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
            delete.push(item);
        } else {
            keep.push(item);
        }
    }
    Ok((keep, delete))
}

// apimachinery's in-place deduplication, which moves the last element into each duplicate's
// place; the order is fixed up afterwards, but ties keep this algorithm's answer.
fn dedupe_scalars(mut s: Items) -> Items {
    let mut length = s.len();
    let mut i = 0;
    while i + 1 < length {
        let mut j = i + 1;
        while j < length {
            if s[i] == s[j] {
                s.swap(j, length - 1);
                length -= 1;
                s.truncate(length);
            } else {
                j += 1;
            }
        }
        i += 1;
    }
    s
}

fn slice_element_type(slices: &[&[Value]]) -> Result<GoType, PatchError> {
    let mut first: Option<GoType> = None;
    for v in slices.iter().flat_map(|s| s.iter()) {
        let t = go_type(v);
        match first {
            None => {
                if t == GoType::Slice {
                    return Err(PatchError::Unprocessable(ERR_LIST_OF_LISTS.into()));
                }
                first = Some(t);
            }
            Some(prev) if prev != t => {
                let shown: Vec<String> = slices.iter().map(|s| go_sprint_list(s)).collect();
                return Err(PatchError::Internal(format!(
                    "list element types are not identical: [{}]",
                    shown.join(" ")
                )));
            }
            Some(_) => {}
        }
    }
    first.ok_or_else(|| PatchError::Internal("no elements in any of the given slices".into()))
}

// Drops maps carrying `$patch` (and list items that are such maps), recursively; `None` means
// the value itself goes.
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(
                m.into_iter()
                    .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

// Drops null map members, recursively through maps and lists.
fn discard_null_values(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_null_values);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_null_values),
        _ => {}
    }
}

fn extract_key(directive: &str, prefix: &str, err: &str) -> Result<String, PatchError> {
    match directive.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_string()),
        _ => Err(PatchError::BadRequest(err.into())),
    }
}

fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    PatchError::Internal(format!(
        "expected a {expected}, but received a {}",
        go_type_name(actual)
    ))
}

fn no_merge_key(m: &Map<String, Value>, keys: &[String]) -> PatchError {
    PatchError::Internal(format!(
        "map: {} does not contain declared merge key: {}",
        go_sprint_map(m),
        keys.first().map(String::as_str).unwrap_or_default()
    ))
}

fn bad_patch_type(directive: &Value, m: &Map<String, Value>) -> PatchError {
    let shown = match directive {
        Value::String(s) => s.clone(),
        Value::Null => "%!s(<nil>)".to_string(),
        other => format!("%!s({}={})", go_type_name(other), go_sprint(other)),
    };
    PatchError::Internal(format!(
        "unknown patch type: {shown} in map: {}",
        go_sprint_map(m)
    ))
}

// ---------------------------------------------------------------------------------------------
// Go's printing of decoded JSON, for error messages that quote values.

fn go_json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn go_type_name(v: &Value) -> &'static str {
    match go_type(v) {
        GoType::Nil => "%!s(<nil>)",
        GoType::Bool => "bool",
        GoType::Int => "int64",
        GoType::Float => "float64",
        GoType::String => "string",
        GoType::Slice => GO_SLICE,
        GoType::Map => GO_MAP,
    }
}

// `fmt.Sprint` (`%v`) of a value.
fn go_sprint(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => go_float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => go_sprint_list(a),
        Value::Object(m) => go_sprint_map(m),
    }
}

fn go_sprint_list(a: &[Value]) -> String {
    let parts: Vec<String> = a.iter().map(go_sprint).collect();
    format!("[{}]", parts.join(" "))
}

fn go_sprint_map(m: &Map<String, Value>) -> String {
    let mut parts: Vec<(&String, String)> = m.iter().map(|(k, v)| (k, go_sprint(v))).collect();
    parts.sort_by(|a, b| a.0.cmp(b.0));
    let parts: Vec<String> = parts.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", parts.join(" "))
}

// `%v` of a float64: shortest digits, exponent form below 1e-4 and from 1e6 on (`%g` with the
// shortest precision).
fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let sci = format!("{f:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exp.parse().unwrap_or_default();
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge_keys::{builtin_list_type, strategic_lists};
    use pretty_assertions::assert_eq;
    use serde_json::json;

    // ---- merge patch ----

    #[test]
    fn merge_patch_rfc7386_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(merge_patch(&target, &patch), want, "{target} + {patch}");
        }
    }

    #[test]
    fn merge_patch_kube_semantics() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}},
                        "data": {"x": "1", "y": "2"}});
        let out = merge_patch(
            &cm,
            &json!({"metadata": {"labels": {"a": null, "b": "2"}}, "data": {"y": null, "z": "3"}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["data"], json!({"x": "1", "z": "3"}));
        // Lists are replaced whole, never merged.
        let pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}});
        let out = merge_patch(
            &pod,
            &json!({"spec": {"containers": [{"name": "a", "image": "y"}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "a", "image": "y"}]));
        // evanphx prunes nulls from objects inside added arrays but keeps null elements...
        let out = merge_patch(&json!({}), &json!({"a": [{"b": null, "c": 1}, null]}));
        assert_eq!(out, json!({"a": [{"c": 1}, null]}));
        // ...and leaves an array replacing an object as it is.
        let out = merge_patch(&json!({"a": {"x": 1}}), &json!({"a": [{"b": null}]}));
        assert_eq!(out, json!({"a": [{"b": null}]}));
        // A member that is null in the target counts as absent.
        assert_eq!(
            merge_patch(&json!({"a": null}), &json!({"a": {"b": null, "c": 1}})),
            json!({"a": {"c": 1}})
        );
    }

    #[test]
    fn merge_patch_request_checks() {
        for bad in [Value::Null, json!("x"), json!(1), json!(true)] {
            let e = try_merge_patch(&json!({"a": 1}), &bad).unwrap_err();
            assert_eq!(
                (e.code(), e.reason(), e.to_string()),
                (400, "BadRequest", "Invalid JSON Patch".into())
            );
        }
        assert_eq!(
            try_merge_patch(&json!({"a": 1}), &json!({"b": 2})).unwrap(),
            json!({"a": 1, "b": 2})
        );
        assert_eq!(
            try_merge_patch(&json!({"a": 1}), &json!([1, null])).unwrap(),
            json!([1, null])
        );
    }

    // ---- JSON patch ----

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}, "finalizers": ["a", "b"]},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "app", "image": "nginx:1.24", "args": ["--x"]},
                {"name": "sidecar", "image": "busybox"}
            ]}}}
        })
    }

    #[test]
    fn json_patch_operations() {
        let patch = json!([
            {"op": "test", "path": "/metadata/labels/app", "value": "web"},
            {"op": "add", "path": "/metadata/labels/new", "value": "x"},
            {"op": "remove", "path": "/metadata/labels/tier"},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--y"},
            {"op": "add", "path": "/spec/template/spec/containers/1", "value": {"name": "mid"}},
            {"op": "copy", "from": "/spec/template/spec/containers/0/image", "path": "/metadata/labels/image"},
            {"op": "move", "from": "/metadata/finalizers/0", "path": "/metadata/finalizers/-"},
            {"op": "add", "path": "/metadata/annotations", "value": {}},
            {"op": "add", "path": "/metadata/annotations/example.com~1note", "value": "a~b"},
            {"op": "test", "path": "/metadata/annotations/example.com~1note", "value": "a~b"}
        ]);
        let out = json_patch(&deployment(), &patch).unwrap();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app": "web", "new": "x", "image": "nginx:1.24"})
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
        assert_eq!(out["metadata"]["annotations"], json!({"example.com/note": "a~b"}));
        assert_eq!(out["spec"]["replicas"], json!(3));
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["args"], json!(["--x", "--y"]));
        assert_eq!(containers[1], json!({"name": "mid"}));
        assert_eq!(containers[2]["name"], json!("sidecar"));
    }

    #[test]
    fn json_patch_failures_are_422_and_atomic() {
        let target = deployment();
        let cases = [
            (
                json!([{"op": "test", "path": "/metadata/labels/app", "value": "db"}]),
                "testing value /metadata/labels/app failed: test failed",
            ),
            (
                json!([{"op": "test", "path": "/spec/replicas", "value": 2.0}]),
                "testing value /spec/replicas failed: test failed",
            ),
            (
                json!([{"op": "remove", "path": "/metadata/nope"}]),
                "error in remove for path: '/metadata/nope': Unable to remove nonexistent key: nope: missing value",
            ),
            (
                json!([{"op": "add", "path": "/nope/deeper/x", "value": 1}]),
                "add operation does not apply: doc is missing path: \"/nope/deeper/x\": missing value",
            ),
            (
                json!([{"op": "add", "path": "/spec/template/spec/containers/9", "value": 1}]),
                "error in add for path: '/spec/template/spec/containers/9': Unable to access invalid index: 9: invalid index referenced",
            ),
            (
                json!([{"op": "replace", "path": "/spec/template/spec/containers/5/image", "value": 1}]),
                "replace operation does not apply: doc is missing path: /spec/template/spec/containers/5/image: missing value",
            ),
            (
                json!([{"op": "move", "from": "/metadata/nope", "path": "/metadata/x"}]),
                "error in move for path: 'nope': Unable to remove nonexistent key: nope: missing value",
            ),
            (json!([{"op": "frob", "path": "/a"}]), "Unexpected kind: frob"),
            (json!([{"path": "/a"}]), "Unexpected kind: unknown"),
            (
                json!([{"op": "add", "value": 1}]),
                "add operation failed to decode path: missing value",
            ),
            (json!([null]), "Unexpected kind: unknown"),
            (
                json!([{"op": "add", "path": "/metadata/labels/z", "value": "1"}, {"op": "test", "path": "/metadata/labels/z", "value": "2"}]),
                "testing value /metadata/labels/z failed: test failed",
            ),
        ];
        for (patch, detail) in cases {
            let e = json_patch(&target, &patch).unwrap_err();
            assert_eq!(e.detail(), detail, "{patch}");
            assert_eq!(e.code(), 422);
            assert_eq!(e.reason(), "Invalid");
            assert_eq!(e.to_string(), UNPROCESSABLE_MESSAGE);
            assert_eq!(
                e.to_status(),
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": UNPROCESSABLE_MESSAGE, "reason": "Invalid", "details": {}, "code": 422})
            );
        }
    }

    #[test]
    fn json_patch_decode_errors_are_400() {
        let cases = [
            (
                json!({"op": "add"}),
                "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
            ),
            (
                json!("x"),
                "json: cannot unmarshal string into Go value of type jsonpatch.Patch",
            ),
            (
                json!([1]),
                "json: cannot unmarshal number into Go value of type jsonpatch.Operation",
            ),
            (
                json!([[]]),
                "json: cannot unmarshal array into Go value of type jsonpatch.Operation",
            ),
        ];
        for (patch, message) in cases {
            let e = json_patch(&json!({}), &patch).unwrap_err();
            assert_eq!(
                (e.code(), e.reason(), e.to_string()),
                (400, "BadRequest", message.to_string())
            );
            assert_eq!(e.to_status()["message"], json!(message));
        }
        assert_eq!(
            json_patch(&json!({"a": 1}), &Value::Null).unwrap(),
            json!({"a": 1})
        );
        let many = Value::Array(vec![
            json!({"op": "test", "path": "/a", "value": 1});
            MAX_JSON_PATCH_OPERATIONS + 1
        ]);
        let e = json_patch(&json!({"a": 1}), &many).unwrap_err();
        assert_eq!(e.code(), 413);
        assert_eq!(
            e.to_string(),
            "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
    }

    #[test]
    fn json_patch_evanphx_quirks() {
        let doc = json!({"a": [1, 2, 3], "b": {"c": null}});
        // Negative indices count from the end.
        assert_eq!(
            json_patch(&doc, &json!([{"op": "remove", "path": "/a/-1"}])).unwrap()["a"],
            json!([1, 2])
        );
        assert_eq!(
            json_patch(&doc, &json!([{"op": "replace", "path": "/a/-3", "value": 0}])).unwrap()["a"],
            json!([0, 2, 3])
        );
        assert_eq!(
            json_patch(&doc, &json!([{"op": "add", "path": "/a/-1", "value": 9}])).unwrap()["a"],
            json!([1, 2, 3, 9])
        );
        // `replace` of a missing member adds it; `copy` from one copies null.
        assert_eq!(
            json_patch(&doc, &json!([{"op": "replace", "path": "/z", "value": 1}])).unwrap()["z"],
            json!(1)
        );
        assert_eq!(
            json_patch(&doc, &json!([{"op": "copy", "from": "/nope", "path": "/z"}])).unwrap()["z"],
            Value::Null
        );
        // `test` of null passes for missing and null members alike.
        for path in ["/nope", "/b/c"] {
            assert!(
                json_patch(&doc, &json!([{"op": "test", "path": path, "value": null}])).is_ok(),
                "{path}"
            );
            assert!(
                json_patch(&doc, &json!([{"op": "test", "path": path}])).is_ok(),
                "{path}"
            );
        }
        assert!(json_patch(&doc, &json!([{"op": "test", "path": "/a", "value": null}])).is_err());
        // The whole document can be tested and replaced.
        assert!(json_patch(&doc, &json!([{"op": "test", "path": "", "value": doc.clone()}])).is_ok());
        assert_eq!(
            json_patch(&doc, &json!([{"op": "replace", "path": "", "value": {"x": 1}}])).unwrap(),
            json!({"x": 1})
        );
        assert!(json_patch(&doc, &json!([{"op": "replace", "path": "", "value": 1}])).is_err());
        // A missing value adds null.
        assert_eq!(
            json_patch(&doc, &json!([{"op": "add", "path": "/n"}])).unwrap()["n"],
            Value::Null
        );
    }

    #[test]
    fn json_patch_agrees_with_rfc_crate_on_conformant_patches() {
        let doc = deployment();
        let patches = [
            json!([{"op": "add", "path": "/metadata/labels/x", "value": "1"}]),
            json!([{"op": "remove", "path": "/spec/template/spec/containers/1"}]),
            json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.25"}]),
            json!([{"op": "move", "from": "/metadata/labels/app", "path": "/metadata/labels/name"}]),
            json!([{"op": "copy", "from": "/spec/template", "path": "/spec/backup"}]),
            json!([{"op": "add", "path": "/spec/template/spec/containers/0", "value": {"name": "init"}},
                   {"op": "test", "path": "/spec/template/spec/containers/1/name", "value": "app"}]),
            json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "c"},
                   {"op": "remove", "path": "/metadata/finalizers/0"}]),
        ];
        for patch in patches {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone()).unwrap();
            let mut expected = doc.clone();
            json_patch::patch(&mut expected, &ops).unwrap();
            assert_eq!(json_patch(&doc, &patch).unwrap(), expected, "{patch}");
        }
    }

    // ---- strategic merge patch ----

    fn smp(group: &str, kind: &str, target: &Value, patch: &Value) -> Result<Value, PatchError> {
        strategic_merge_patch(target, patch, &strategic_lists(group, kind))
    }

    fn live_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                         "finalizers": ["a", "b", "c"]},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {"name": "app", "image": "nginx:1.24",
                             "ports": [{"containerPort": 80, "protocol": "TCP"}],
                             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]},
                            {"name": "sidecar", "image": "busybox"}
                        ],
                        "volumes": [{"name": "cfg", "emptyDir": {}}],
                        "tolerations": [{"key": "k", "operator": "Exists"}]
                    }
                }
            }
        })
    }

    fn containers(v: &Value) -> &Value {
        &v["spec"]["template"]["spec"]["containers"]
    }

    #[test]
    fn smp_kubectl_apply_changes_an_image() {
        let live = live_deployment();
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}"}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                "containers": [{"image": "nginx:1.25", "name": "app"}]
            }}}
        });
        let out = smp("apps", "Deployment", &live, &patch).unwrap();
        let mut want = live.clone();
        want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.25");
        want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
            json!("{\"new\":1}");
        assert_eq!(out, want);
    }

    #[test]
    fn smp_kubectl_apply_removes_an_env_var() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                "env": [{"$patch": "delete", "name": "B"}],
                "name": "app"
            }]
        }}}});
        let out = smp("apps", "Deployment", &live_deployment(), &patch).unwrap();
        assert_eq!(
            containers(&out)[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
        );
        assert_eq!(
            containers(&out)[1],
            json!({"name": "sidecar", "image": "busybox"})
        );
    }

    #[test]
    fn smp_kubectl_apply_reorders_and_adds_containers() {
        let reorder = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]
        }}}});
        let out = smp("apps", "Deployment", &live_deployment(), &reorder).unwrap();
        let names: Vec<&Value> = containers(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names, [&json!("sidecar"), &json!("app")]);
        assert_eq!(containers(&out)[1]["image"], json!("nginx:1.24"));

        let add = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "init"}, {"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "init", "image": "alpine"}]
        }}}});
        let out = smp("apps", "Deployment", &live_deployment(), &add).unwrap();
        let names: Vec<&Value> = containers(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names, [&json!("init"), &json!("app"), &json!("sidecar")]);

        // Without an order directive new items go first, then the live ones in live order.
        let plain = json!({"spec": {"template": {"spec": {"containers": [{"name": "z", "image": "z"}, {"name": "app", "image": "y"}]}}}});
        let out = smp("apps", "Deployment", &live_deployment(), &plain).unwrap();
        let names: Vec<&Value> = containers(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names, [&json!("z"), &json!("app"), &json!("sidecar")]);
        assert_eq!(containers(&out)[1]["env"][0]["name"], json!("A"));
    }

    #[test]
    fn smp_primitive_lists_and_finalizers() {
        let patch = json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "$setElementOrder/finalizers": ["a", "c", "d"],
            "finalizers": ["d"]
        }});
        let out = smp("apps", "Deployment", &live_deployment(), &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c", "d"]));
        // Without an order the set keeps live order, new values first, duplicates dropped.
        let out = smp(
            "",
            "Namespace",
            &json!({"metadata": {"finalizers": ["x", "y"]}}),
            &json!({"metadata": {"finalizers": ["z", "y"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["z", "x", "y"]));
        // Deleting the last value leaves an empty list.
        let out = smp(
            "",
            "Namespace",
            &json!({"metadata": {"finalizers": ["x"]}}),
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!([]));
    }

    #[test]
    fn smp_retain_keys_on_strategy_and_volumes() {
        let patch = json!({"spec": {
            "strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"},
            "template": {"spec": {
                "$setElementOrder/volumes": [{"name": "cfg"}],
                "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "settings"}, "name": "cfg"}]
            }}
        }});
        let out = smp("apps", "Deployment", &live_deployment(), &patch).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(
            out["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "cfg", "configMap": {"name": "settings"}}])
        );

        let bad = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}});
        let e = smp("apps", "Deployment", &live_deployment(), &bad).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string()),
            (400, "invalid patch format of retainKeys".to_string())
        );
    }

    #[test]
    fn smp_services_configmaps_roles_and_atomic_lists() {
        let svc = json!({"spec": {"ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}
        ], "selector": {"app": "web"}}});
        let patch = json!({"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 443}], "ports": [{"port": 80, "targetPort": 8080}]}});
        let out = smp("", "Service", &svc, &patch).unwrap();
        assert_eq!(
            out["spec"]["ports"][0],
            json!({"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080})
        );
        assert_eq!(out["spec"]["ports"][1]["targetPort"], json!(443));

        let cm = json!({"data": {"a": "1", "b": "2"}, "metadata": {"labels": {"x": "1"}}});
        let out = smp(
            "",
            "ConfigMap",
            &cm,
            &json!({"data": {"b": null, "c": "3"}, "metadata": {"labels": null}}),
        )
        .unwrap();
        assert_eq!(out, json!({"data": {"a": "1", "c": "3"}, "metadata": {}}));

        let role = json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
        let rules = json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}]);
        let out = smp(
            "rbac.authorization.k8s.io",
            "Role",
            &role,
            &json!({"rules": rules.clone()}),
        )
        .unwrap();
        assert_eq!(out["rules"], rules);

        // Tolerations are atomic: replaced, not merged.
        let patch = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "other", "operator": "Exists"}]}}}});
        let out = smp("apps", "Deployment", &live_deployment(), &patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "other", "operator": "Exists"}])
        );
    }

    #[test]
    fn smp_patch_directives_on_maps_and_lists() {
        let live = live_deployment();
        let out = smp(
            "apps",
            "Deployment",
            &live,
            &json!({"spec": {"selector": {"$patch": "replace", "matchLabels": {"x": "y"}}}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"x": "y"}}));
        let out = smp(
            "apps",
            "Deployment",
            &live,
            &json!({"spec": {"strategy": {"$patch": "delete"}}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["strategy"], json!({}));
        let out = smp(
            "apps",
            "Deployment",
            &live,
            &json!({"spec": {"template": {"spec": {"containers": [
                {"$patch": "replace"}, {"name": "only", "image": "x"}
            ]}}}}),
        )
        .unwrap();
        assert_eq!(containers(&out), &json!([{"name": "only", "image": "x"}]));
        // A new map carrying a directive is dropped, as are such items in a new list.
        let out = smp(
            "apps",
            "Deployment",
            &live,
            &json!({"spec": {"paused": {"$patch": "delete"}, "template": {"spec": {
                "initContainers": [{"name": "i"}, {"name": "j", "$patch": "delete"}]
            }}}}),
        )
        .unwrap();
        assert!(out["spec"].get("paused").is_none());
        assert_eq!(
            out["spec"]["template"]["spec"]["initContainers"],
            json!([{"name": "i"}])
        );
        // The whole object can be replaced.
        let out = smp(
            "apps",
            "Deployment",
            &live,
            &json!({"$patch": "replace", "kind": "Deployment"}),
        )
        .unwrap();
        assert_eq!(out, json!({"kind": "Deployment"}));
    }

    #[test]
    fn smp_nulls_and_new_fields() {
        let out = smp(
            "",
            "Pod",
            &json!({"metadata": {"name": "p"}}),
            &json!({"metadata": {"labels": {"a": "1", "b": null}}, "spec": {"x": {"y": null, "z": 1}}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"x": {"z": 1}}})
        );
        // A type change replaces the value outright.
        let out = smp(
            "",
            "Pod",
            &json!({"spec": {"x": "s"}}),
            &json!({"spec": {"x": {"a": 1, "b": null}}}),
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"x": {"a": 1}}}));
        assert_eq!(
            smp("", "Pod", &json!({"a": 1}), &Value::Null).unwrap(),
            json!({"a": 1})
        );
    }

    #[test]
    fn smp_errors_match_apimachinery() {
        let live = live_deployment();
        let cases: [(Value, u16, &str); 8] = [
            (
                json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
                500,
                "map: map[image:x] does not contain declared merge key: name",
            ),
            (
                json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "$patch": "merge"}]}}}}),
                500,
                "merging lists cannot yet be specified in the patch",
            ),
            (
                json!({"spec": {"strategy": {"$patch": "merge", "type": "x"}}}),
                500,
                "unknown patch type: merge in map: map[$patch:merge type:x]",
            ),
            (
                json!({"spec": {"template": {"spec": {"containers": ["x"]}}}}),
                500,
                "list element types are not identical: [[map[env:[map[name:A value:1] map[name:B value:2] map[name:C value:3]] image:nginx:1.24 name:app ports:[map[containerPort:80 protocol:TCP]]] map[image:busybox name:sidecar]] [x]]",
            ),
            (
                json!({"metadata": {"$setElementOrder": ["a"]}}),
                400,
                "invalid patch format of setElementOrder list",
            ),
            (
                json!({"metadata": {"$deleteFromPrimitiveListX/finalizers": ["a"]}}),
                400,
                "invalid patch format of primitive list",
            ),
            (
                json!({"metadata": {"$setElementOrder/finalizers": "a"}}),
                500,
                "expected a []interface {}, but received a string",
            ),
            (
                json!({"metadata": {"$setElementOrder/finalizers": ["zz"], "finalizers": ["a", "q"]}}),
                500,
                "The order in patch list:\n[a q]\n doesn't match $setElementOrder list:\n[zz]\n",
            ),
        ];
        for (patch, code, message) in cases {
            let e = smp("apps", "Deployment", &live, &patch).unwrap_err();
            assert_eq!((e.code(), e.detail()), (code, message.to_string()), "{patch}");
        }
        let e = smp(
            "",
            "Pod",
            &json!({"spec": {"containers": []}}),
            &json!({"spec": {"containers": [[1]]}}),
        )
        .unwrap_err();
        assert_eq!(
            (e.code(), e.reason(), e.detail()),
            (422, "Invalid", "lists of lists are not supported".to_string())
        );
        let e = smp("", "Pod", &json!({}), &json!([1])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
        assert_eq!(e.to_status()["reason"], json!("BadRequest"));
        let e = smp("", "Pod", &json!({}), &json!({"$patch": "merge"})).unwrap_err();
        assert_eq!(
            e.to_status(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                           "message": "unknown patch type: merge in map: map[$patch:merge]", "code": 500})
        );
    }

    // Expected values below were checked against `kubectl patch --local`, which runs the same
    // apimachinery code as kube-apiserver.
    #[test]
    fn smp_order_follows_apimachinerys_view_of_the_mutated_live_list() {
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "c"}, {"name": "d", "image": "d"},
            {"name": "a", "image": "a", "env": [{"name": "Z", "value": "1"}, {"name": "X", "value": "2"}, {"name": "Y", "value": "3"}]}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}],
            "containers": [{"name": "d", "$patch": "delete"}, {"name": "b"}]
        }}}});
        let out = smp("apps", "Deployment", &live, &patch).unwrap();
        let names: Vec<&Value> = containers(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names, [&json!("c"), &json!("a"), &json!("b")]);

        let patch = json!({"spec": {"template": {"spec": {"containers": [{
            "name": "a",
            "$setElementOrder/env": [{"name": "W"}, {"name": "Z"}, {"name": "Y"}],
            "env": [{"name": "W", "value": null}, {"name": "Z", "$patch": "delete"}]
        }]}}}});
        let out = smp("apps", "Deployment", &live, &patch).unwrap();
        assert_eq!(
            containers(&out)[2]["env"],
            json!([{"name": "X", "value": "2"}, {"name": "W", "value": null}, {"name": "Y", "value": "3"}])
        );
    }

    #[test]
    fn smp_kubectl_apply_on_other_kinds() {
        let out = smp(
            "",
            "Secret",
            &json!({"type": "Opaque", "data": {"a": "MQ=="}}),
            &json!({"data": {"a": null, "b": "Mg=="}, "stringData": {"c": "3"}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"type": "Opaque", "data": {"b": "Mg=="}, "stringData": {"c": "3"}})
        );
        let out = smp(
            "",
            "Namespace",
            &json!({"metadata": {"name": "n", "labels": {"a": "1"}}}),
            &json!({"metadata": {"labels": {"a": null, "b": "2"}}}),
        )
        .unwrap();
        assert_eq!(out, json!({"metadata": {"name": "n", "labels": {"b": "2"}}}));
        let rb = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"}]});
        let out = smp(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            &rb,
            &json!({"subjects": [{"kind": "User", "name": "carol"}]}),
        )
        .unwrap();
        assert_eq!(out["subjects"], json!([{"kind": "User", "name": "carol"}]));
        let job = json!({"spec": {"backoffLimit": 3, "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "j", "image": "busybox", "command": ["sh", "-c", "true"]}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "j"}],
                                                          "containers": [{"name": "j", "command": ["false"]}]}}}});
        let out = smp("batch", "Job", &job, &patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "j", "image": "busybox", "command": ["false"]}])
        );
        let ing = json!({"metadata": {"annotations": {"a": "1"}}, "spec": {"ingressClassName": "nginx",
            "rules": [{"host": "a.example.com"}], "tls": [{"hosts": ["a.example.com"]}]}});
        let out = smp("networking.k8s.io", "Ingress", &ing, &json!({"metadata": {"annotations": {"a": null}}, "spec": {"rules": [{"host": "b.example.com"}], "tls": null}}))
            .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"annotations": {}}, "spec": {"ingressClassName": "nginx", "rules": [{"host": "b.example.com"}]}})
        );
    }

    #[test]
    fn smp_multi_key_lists_compare_every_key() {
        let lists = |path: &[&str]| {
            if path == ["ports"] {
                ListType::map(&["port", "protocol"])
            } else {
                builtin_list_type("", "Service", path, false)
            }
        };
        let target = json!({"ports": [{"port": 53, "protocol": "TCP", "name": "t"}, {"port": 53, "protocol": "UDP", "name": "u"}]});
        let patch = json!({"ports": [{"port": 53, "protocol": "UDP", "name": "dns"}, {"$patch": "delete", "port": 53, "protocol": "TCP"}]});
        let out = strategic_merge_patch(&target, &patch, &lists).unwrap();
        assert_eq!(
            out,
            json!({"ports": [{"port": 53, "protocol": "UDP", "name": "dns"}]})
        );
    }

    #[test]
    fn go_printing_helpers() {
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e-7), "1.5e-07");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(
            go_sprint(&json!({"b": [1, "x", null], "a": true})),
            "map[a:true b:[1 x <nil>]]"
        );
        assert_eq!(
            dedupe_scalars(vec![json!(1), json!(2), json!(1), json!(3), json!(2)]),
            vec![json!(1), json!(2), json!(3)]
        );
    }
}
