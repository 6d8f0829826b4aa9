//! CRD schemas as kube-apiserver enforces them: the checks a CRD's `openAPIV3Schema` must pass to
//! be admitted, and — per served version — pruning, defaulting and validation of custom resources,
//! including `x-kubernetes-validations` CEL rules, with kube-apiserver's exact error texts.
//!
//! Typical request flow for a custom resource, mirroring the apiserver's decode and admission:
//! [`CompiledSchema::prune`] (unknown fields, for `fieldValidation`), [`CompiledSchema::default`],
//! then [`CompiledSchema::validate`] (or [`CompiledSchema::validate_full`] /
//! [`CompiledSchema::validate_status`]), rendering failures with [`render`].

mod cel;
mod errors;
mod formats;
mod gofmt;
mod node;
mod objects;
mod openapi;
mod regexp;
mod structural;

#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::merge_keys::ListType;
use errors::{Bad, FPath};
use node::Node;

/// One `StatusCause` of an `Invalid` status, as kube-apiserver builds it from a field error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The cause type: `FieldValueInvalid`, `FieldValueRequired`, `FieldValueTypeInvalid`, ...
    pub reason: String,
    /// The error body without the field, e.g. `Invalid value: -1: spec.instances in body should
    /// be greater than or equal to 0`.
    pub message: String,
    /// The field path, e.g. `spec.instances`; `<nil>` for errors about the whole object.
    pub field: String,
}

/// The outcome of validating one write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    /// The failures; a non-empty list means the write is rejected with 422.
    pub causes: Vec<Cause>,
    /// Failures of unchanged fields that ratcheting let through; kube-apiserver returns these
    /// as `Warning` headers.
    pub warnings: Vec<String>,
}

/// Joins causes the way an `Invalid` status message embeds them: `field: body` for one,
/// `[a, b]` for several, duplicates removed — so callers can write
/// `format!("{kind}.{group} {name:?} is invalid: {}", render(&causes))`.
pub fn render(causes: &[Cause]) -> String {
    let mut seen: Vec<String> = vec![];
    for c in causes {
        let line = errors::line(c);
        if !seen.contains(&line) {
            seen.push(line);
        }
    }
    match seen.len() {
        0 => String::new(),
        1 => seen.remove(0),
        _ => format!("[{}]", seen.join(", ")),
    }
}

/// The errors kube-apiserver reports for a CRD whose versions share this `openAPIV3Schema`,
/// as `field: body` lines under `spec.validation.openAPIV3Schema` (the path the apiserver uses
/// when all versions carry the same schema). Empty means the schema is accepted.
pub fn structural_errors(schema: &Value) -> Vec<String> {
    structural_errors_at(schema, "spec.validation.openAPIV3Schema", false)
}

/// Like [`structural_errors`], with the schema's path chosen by the caller (for per-version
/// schemas: `spec.versions[1].schema.openAPIV3Schema`) and, when `status_subresource` is set,
/// the root restrictions that come with an enabled status subresource.
pub fn structural_errors_at(schema: &Value, schema_path: &str, status_subresource: bool) -> Vec<String> {
    structural_causes_at(schema, schema_path, status_subresource)
        .iter()
        .map(errors::line)
        .collect()
}

/// The causes behind [`structural_errors_at`], for building the CRD's `Invalid` status.
pub fn structural_causes_at(schema: &Value, schema_path: &str, status_subresource: bool) -> Vec<Cause> {
    structural::check(schema, &FPath::new(schema_path), status_subresource)
}

/// Validation causes whose presence makes kube-apiserver skip CEL rules.
fn blocks_cel(c: &Cause) -> bool {
    matches!(
        c.reason.as_str(),
        "FieldValueNotSupported"
            | "FieldValueRequired"
            | "FieldValueTooLong"
            | "FieldValueTooMany"
            | "FieldValueTypeInvalid"
    )
}

/// One CRD version's schema, prepared once and used for every request.
#[derive(Debug, Clone)]
pub struct CompiledSchema {
    root: Node,
}

impl CompiledSchema {
    /// Prepares a schema; fails with [`structural_errors`]' lines when kube-apiserver would not
    /// have admitted it.
    pub fn new(schema: &Value) -> Result<Self, Vec<String>> {
        let errs = structural_errors(schema);
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(CompiledSchema {
            root: Node::parse(schema),
        })
    }

    /// Removes what the schema does not know, as decoding does: unknown fields (respecting
    /// `x-kubernetes-preserve-unknown-fields`, `additionalProperties` and embedded resources'
    /// type and object meta; the root's `apiVersion`, `kind` and `metadata` are never touched),
    /// unknown or malformed fields of embedded `metadata`, and nulls the schema neither allows
    /// nor defaults.
    ///
    /// Returns the sorted paths of the dropped unknown fields without a leading dot
    /// (`spec.foo`, `spec.items[0].bar`), ready for `strict decoding error: unknown field
    /// "spec.foo"` or `unknown field "spec.foo"` warnings.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut unknown = vec![];
        objects::prune(obj, Some(&self.root), true, "", &mut unknown);
        objects::coerce_embedded(obj, Some(&self.root), "", &mut unknown);
        objects::prune_nulls(obj, Some(&self.root));
        unknown.sort();
        unknown
    }

    /// Applies the schema's `default`s, as kube-apiserver does when decoding a request and when
    /// reading from storage: a default fills an absent field (or a non-nullable null) only where
    /// the enclosing object exists, and defaults nest into defaulted values.
    pub fn default(&self, obj: &mut Value) {
        objects::default(obj, Some(&self.root));
    }

    /// Validates a create (`old` = `None`) or an update of the whole object: OpenAPI value
    /// validation, embedded resources, list-type uniqueness and CEL rules, in kube-apiserver's
    /// order. Ratcheted failures are dropped; see [`CompiledSchema::validate_full`] for them.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        self.validate_full(obj, old, &[]).causes
    }

    /// Like [`CompiledSchema::validate`]; `earlier` are the caller's own failures for the same
    /// request (e.g. `metadata.name`), which count when kube-apiserver decides whether the
    /// object is too broken to run CEL rules. The returned causes exclude `earlier`.
    pub fn validate_full(&self, obj: &Value, old: Option<&Value>, earlier: &[Cause]) -> Validation {
        let old = old.filter(|o| !o.is_null());
        let mut causes = openapi::validate(&self.root, obj, old, &FPath::root());
        objects::validate_embedded(&FPath::root(), obj, Some(&self.root), &mut causes);
        if let Some(m) = obj.as_object() {
            let mut list_errs = vec![];
            objects::validate_list_sets_and_maps(&FPath::root(), &self.root, m, &mut list_errs);
            let old_ok = match old.and_then(Value::as_object) {
                Some(o) => {
                    let mut old_errs = vec![];
                    objects::validate_list_sets_and_maps(&FPath::root(), &self.root, o, &mut old_errs);
                    old_errs.is_empty()
                }
                None => true,
            };
            if old_ok {
                causes.extend(list_errs);
            }
        }
        self.finish(obj, old, earlier, causes)
    }

    /// Validates an update through the `/status` subresource: only `status` is checked against
    /// its schema (errors read `status.x: ... x in body ...`, as kube-apiserver words them),
    /// then list types and CEL rules over the whole object.
    pub fn validate_status(&self, obj: &Value, old: Option<&Value>) -> Validation {
        let old = old.filter(|o| !o.is_null());
        let mut causes = vec![];
        if let (Some(status), Some(node)) = (obj.get("status"), self.root.properties.get("status")) {
            let old_status = old.and_then(|o| o.get("status"));
            causes = openapi::validate(node, status, old_status, &FPath::new("status"));
        }
        if let Some(m) = obj.as_object() {
            let mut new_errs = vec![];
            objects::validate_list_sets_and_maps(&FPath::root(), &self.root, m, &mut new_errs);
            if !new_errs.is_empty() {
                let mut old_errs = vec![];
                if let Some(o) = old.and_then(Value::as_object) {
                    objects::validate_list_sets_and_maps(&FPath::root(), &self.root, o, &mut old_errs);
                }
                if old_errs.is_empty() {
                    causes.extend(new_errs);
                }
            }
        }
        self.finish(obj, old, &[], causes)
    }

    fn finish(
        &self,
        obj: &Value,
        old: Option<&Value>,
        earlier: &[Cause],
        mut causes: Vec<Cause>,
    ) -> Validation {
        let mut warnings = vec![];
        if !self.root.has_rules {
            return Validation { causes, warnings };
        }
        if earlier.iter().chain(causes.iter()).any(blocks_cel) {
            causes.push(errors::invalid(
                &FPath::root(),
                Bad::Nil,
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
        } else {
            cel::validate(&self.root, obj, old, &mut causes, &mut warnings);
        }
        Validation { causes, warnings }
    }

    /// The schema node at `path` (property names from the root; list items are stepped into
    /// implicitly, map values through `additionalProperties`).
    fn node_at(&self, path: &[&str]) -> Option<&Node> {
        let mut node = &self.root;
        for seg in path {
            while node.ty == "array" {
                node = node.items.as_deref()?;
            }
            node = node.field(seg)?;
        }
        Some(node)
    }

    /// How the list at `path` merges (`x-kubernetes-list-type` / `x-kubernetes-list-map-keys`);
    /// `Atomic` when unspecified or when the path leaves the schema.
    pub fn list_type(&self, path: &[&str]) -> ListType {
        let Some(node) = self.node_at(path) else {
            return ListType::Atomic;
        };
        match node.list_type.as_deref() {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(node.list_map_keys.clone()),
            _ => ListType::Atomic,
        }
    }

    /// Whether the object at `path` is replaced as a whole (`x-kubernetes-map-type: atomic`).
    pub fn map_is_atomic(&self, path: &[&str]) -> bool {
        self.node_at(path)
            .is_some_and(|n| n.map_type.as_deref() == Some("atomic"))
    }
}
