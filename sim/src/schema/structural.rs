//! The checks kube-apiserver applies to an `openAPIV3Schema` when a CRD is created or updated:
//! structural-schema invariants, default validation, the apiextensions schema rules and the
//! compilation of `x-kubernetes-validations`, in that order and with the same texts.

use serde_json::{Map, Value};

use super::Cause;
use super::cel::{self, Rule, Ty};
use super::errors::{self, Bad, FPath};
use super::gofmt;
use super::node::Node;
use super::objects;
use super::openapi;

type Obj = Map<String, Value>;

fn obj(v: &Value) -> Option<&Obj> {
    v.as_object()
}

fn s(m: &Obj, k: &str) -> String {
    m.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn flag(m: &Obj, k: &str) -> bool {
    m.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn props(m: &Obj) -> Vec<(&String, &Value)> {
    let mut v: Vec<(&String, &Value)> = m
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

fn prop<'a>(m: &'a Obj, k: &str) -> Option<&'a Obj> {
    m.get("properties")
        .and_then(|p| p.get(k))
        .and_then(Value::as_object)
}

fn list<'a>(m: &'a Obj, k: &str) -> Vec<&'a Value> {
    m.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn non_empty_map(m: &Obj, k: &str) -> bool {
    m.get(k).and_then(Value::as_object).is_some_and(|o| !o.is_empty())
}

fn items_schema(m: &Obj) -> Option<&Obj> {
    m.get("items").and_then(Value::as_object)
}

fn items_array(m: &Obj) -> Option<&Vec<Value>> {
    m.get("items").and_then(Value::as_array)
}

fn additional(m: &Obj) -> Option<&Value> {
    m.get("additionalProperties")
        .filter(|v| v.is_boolean() || v.is_object())
}

/// Checks a CRD version's schema; `base` is the path of `openAPIV3Schema` itself.
pub(crate) fn check(schema: &Value, base: &FPath, status_subresource: bool) -> Vec<Cause> {
    let mut all: Vec<Cause> = vec![];
    let Some(root) = obj(schema) else {
        return all;
    };
    if status_subresource {
        status_root_check(root, base, &mut all);
    }
    if flag(root, "nullable") {
        all.push(errors::forbidden(
            &base.child("nullable"),
            "nullable cannot be true at the root",
        ));
    }
    let mut init_errs = vec![];
    let mut cel_enabled = false;
    if let Some(err) = new_structural_error(root) {
        init_errs.push(errors::invalid(base, Bad::Str(String::new()), &err));
    } else {
        let mut structural = vec![];
        invariants(root, Level::Root, base, &mut structural);
        completeness(root, base, &mut structural);
        structural.sort_by_key(errors::line);
        if !structural.is_empty() {
            all.extend(structural);
        } else {
            let defaults = validate_defaults(schema, base);
            if !defaults.is_empty() {
                all.extend(defaults);
            } else {
                cel_enabled = true;
            }
        }
    }
    let ssv = Ssv {
        inside_meta: false,
        forbidden_defaults: None,
        uncorrelatable: None,
    };
    let (schema_errs, cel_errs) = openapi_schema(root, base, &ssv, true, cel_enabled);
    all.extend(schema_errs);
    all.extend(cel_errs);
    if all.is_empty() {
        all.extend(init_errs);
    }
    all
}

/// The root restrictions when the status subresource is enabled.
fn status_root_check(root: &Obj, base: &FPath, out: &mut Vec<Cause>) {
    const ORDER: &[(&str, bool)] = &[
        ("id", false),
        ("$schema", false),
        ("$ref", false),
        ("description", true),
        ("type", true),
        ("nullable", false),
        ("format", true),
        ("title", true),
        ("default", false),
        ("maximum", true),
        ("exclusiveMaximum", true),
        ("minimum", true),
        ("exclusiveMinimum", true),
        ("maxLength", true),
        ("minLength", true),
        ("pattern", true),
        ("maxItems", true),
        ("minItems", true),
        ("uniqueItems", true),
        ("multipleOf", true),
        ("enum", false),
        ("maxProperties", false),
        ("minProperties", false),
        ("required", true),
        ("items", true),
        ("allOf", false),
        ("oneOf", false),
        ("anyOf", false),
        ("not", false),
        ("properties", true),
        ("additionalProperties", false),
        ("patternProperties", false),
        ("dependencies", false),
        ("additionalItems", false),
        ("definitions", false),
        ("externalDocs", true),
        ("example", true),
        ("x-kubernetes-preserve-unknown-fields", true),
        ("x-kubernetes-embedded-resource", false),
        ("x-kubernetes-int-or-string", false),
        ("x-kubernetes-list-map-keys", false),
        ("x-kubernetes-list-type", false),
        ("x-kubernetes-map-type", false),
        ("x-kubernetes-validations", true),
    ];
    for (key, allowed) in ORDER {
        let Some(v) = root.get(*key) else { continue };
        let zero = match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty() && *key != "items",
            Value::Object(o) => {
                o.is_empty()
                    && matches!(
                        *key,
                        "properties" | "patternProperties" | "definitions" | "dependencies"
                    )
            }
            Value::Number(_) => false,
        };
        if zero {
            continue;
        }
        if *key == "type" {
            let t = s(root, "type");
            if t != "object" {
                out.push(errors::invalid(
                    &base.child("type"),
                    Bad::Str(t),
                    "only \"object\" is allowed as the type at the root of the schema if the status subresource is enabled",
                ));
                break;
            }
            continue;
        }
        if !allowed {
            out.push(errors::invalid(
                base,
                Bad::Json(gofmt::json(&Value::Object(root.clone()))),
                "only [Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations] fields are allowed at the root of the schema if the status subresource is enabled",
            ));
            break;
        }
    }
}

/// `structuralschema.NewStructural`'s refusals; the first one found wins.
fn new_structural_error(m: &Obj) -> Option<String> {
    if !s(m, "id").is_empty() {
        return Some("OpenAPIV3Schema 'id' is not supported".into());
    }
    if !s(m, "$schema").is_empty() {
        return Some("OpenAPIV3Schema 'schema' is not supported".into());
    }
    if !s(m, "$ref").is_empty() {
        return Some("OpenAPIV3Schema '$ref' is not supported".into());
    }
    if non_empty_map(m, "patternProperties") {
        return Some("OpenAPIV3Schema 'patternProperties' is not supported".into());
    }
    if non_empty_map(m, "dependencies") {
        return Some("OpenAPIV3Schema 'dependencies' is not supported".into());
    }
    if m.get("additionalItems")
        .is_some_and(|v| v.is_boolean() || v.is_object())
    {
        return Some("OpenAPIV3Schema 'additionalItems' is not supported".into());
    }
    if non_empty_map(m, "definitions") {
        return Some("OpenAPIV3Schema 'definitions' is not supported".into());
    }
    if let Some(not) = m.get("not").and_then(Value::as_object)
        && let Some(e) = new_structural_error(not)
    {
        return Some(e);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for x in list(m, key) {
            if let Some(e) = x.as_object().and_then(new_structural_error) {
                return Some(e);
            }
        }
    }
    if m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        return Some(
            "internal error: 'x-kubernetes-preserve-unknown-fields' must be true or undefined".into(),
        );
    }
    if items_array(m).is_some_and(|a| !a.is_empty()) {
        return Some("OpenAPIV3Schema 'items' must be a schema, but is an array".into());
    }
    if let Some(items) = items_schema(m)
        && let Some(e) = new_structural_error(items)
    {
        return Some(e);
    }
    for (_, p) in props(m) {
        if let Some(e) = p.as_object().and_then(new_structural_error) {
            return Some(e);
        }
    }
    if let Some(a) = m.get("additionalProperties").and_then(Value::as_object) {
        return new_structural_error(a);
    }
    None
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

fn is_int_or_string_any_of(anyof: &[&Value]) -> bool {
    anyof.len() == 2
        && anyof[0]
            .as_object()
            .is_some_and(|o| o.len() == 1 && s(o, "type") == "integer")
        && anyof[1]
            .as_object()
            .is_some_and(|o| o.len() == 1 && s(o, "type") == "string")
}

/// `validateStructuralInvariants`.
fn invariants(m: &Obj, lvl: Level, path: &FPath, out: &mut Vec<Cause>) {
    let ty = s(m, "type");
    if ty == "array" && items_schema(m).is_none() {
        out.push(errors::required(&path.child("items"), "must be specified"));
    }
    if let Some(items) = items_schema(m) {
        invariants(items, Level::Item, &path.child("items"), out);
    }
    for (k, v) in props(m) {
        if let Some(p) = v.as_object() {
            invariants(p, Level::Field, &path.child("properties").key(k), out);
        }
    }
    if let Some(add) = additional(m) {
        if lvl == Level::Root {
            out.push(errors::forbidden(
                &path.child("additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Some(a) = add.as_object() {
            invariants(a, Level::Field, &path.child("additionalProperties"), out);
        }
    }
    let ios = flag(m, "x-kubernetes-int-or-string");
    let preserve = flag(m, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(m, "x-kubernetes-embedded-resource");
    if ios && preserve {
        out.push(errors::invalid(
            &path.child("x-kubernetes-preserve-unknown-fields"),
            Bad::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if ios && embedded {
        out.push(errors::invalid(
            &path.child("x-kubernetes-embedded-resource"),
            Bad::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    let any_of = list(m, "anyOf");
    let all_of = list(m, "allOf");
    let skip_any_of = is_int_or_string_any_of(&any_of);
    let skip_first_all_of = all_of
        .first()
        .and_then(|x| x.as_object())
        .is_some_and(|o| is_int_or_string_any_of(&list(o, "anyOf")));
    value_validation(m, skip_any_of, skip_first_all_of, path, out);

    let check_meta = lvl == Level::Root || embedded;
    if embedded && ty != "object" {
        if ty.is_empty() {
            out.push(errors::required(
                &path.child("type"),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else {
            out.push(errors::invalid(
                &path.child("type"),
                Bad::Str(ty.clone()),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if ty.is_empty() && !ios && !preserve {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        out.push(errors::required(&path.child("type"), detail));
    }
    if embedded && additional(m).is_some() {
        out.push(errors::forbidden(
            &path.child("additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        out.push(errors::invalid(
            &path.child("type"),
            Bad::Str(ty.clone()),
            "must be object at the root",
        ));
    }
    for meta in ["kind", "apiVersion"] {
        if let Some(p) = prop(m, meta)
            && check_meta
            && s(p, "type") != "string"
        {
            out.push(errors::invalid(
                &path.child("properties").key(meta).child("type"),
                Bad::Str(s(p, "type")),
                "must be string",
            ));
        }
    }
    if let Some(meta) = prop(m, "metadata") {
        let mpath = path.child("properties").key("metadata");
        if check_meta && s(meta, "type") != "object" {
            out.push(errors::invalid(
                &mpath.child("type"),
                Bad::Str(s(meta, "type")),
                "must be object",
            ));
        }
        if lvl == Level::Root && !metadata_is_name_only(meta) {
            out.push(errors::forbidden(&mpath, "must not specify anything other than name and generateName, but metadata is implicitly specified"));
        }
    }
    let has_props = m
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    if embedded && !preserve && !has_props {
        out.push(errors::required(
            &path.child("properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// Whether root `metadata` restricts nothing but `name` and `generateName`.
fn metadata_is_name_only(meta: &Obj) -> bool {
    for (k, v) in meta {
        let ok = match k.as_str() {
            "type" | "default" => true,
            "properties" => {
                let p = v.as_object();
                p.is_none_or(|p| p.is_empty() || p.keys().all(|k| k == "name" || k == "generateName"))
            }
            "nullable"
            | "uniqueItems"
            | "exclusiveMaximum"
            | "exclusiveMinimum"
            | "x-kubernetes-embedded-resource"
            | "x-kubernetes-int-or-string" => v == &Value::Bool(false),
            "description" | "title" | "format" | "pattern" => v.as_str() == Some(""),
            "required"
            | "enum"
            | "allOf"
            | "anyOf"
            | "oneOf"
            | "x-kubernetes-list-map-keys"
            | "x-kubernetes-validations" => v.as_array().is_some_and(Vec::is_empty),
            _ => v.is_null(),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// `validateValueValidation`.
fn value_validation(
    m: &Obj,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &FPath,
    out: &mut Vec<Cause>,
) {
    if !skip_any_of {
        for (i, x) in list(m, "anyOf").into_iter().enumerate() {
            if let Some(o) = x.as_object() {
                nested(o, false, &path.child("anyOf").index(i), out);
            }
        }
    }
    for (i, x) in list(m, "allOf").into_iter().enumerate() {
        if let Some(o) = x.as_object() {
            nested(
                o,
                skip_first_all_of_any_of && i == 0,
                &path.child("allOf").index(i),
                out,
            );
        }
    }
    for (i, x) in list(m, "oneOf").into_iter().enumerate() {
        if let Some(o) = x.as_object() {
            nested(o, false, &path.child("oneOf").index(i), out);
        }
    }
    if let Some(not) = m.get("not").and_then(Value::as_object) {
        nested(not, false, &path.child("not"), out);
    }
    let pattern = s(m, "pattern");
    if !pattern.is_empty()
        && let Err(e) = super::regexp::compile(&pattern)
    {
        out.push(errors::invalid(
            &path.child("pattern"),
            Bad::Str(pattern),
            &format!("must be a valid regular expression, but isn't: {e}"),
        ));
    }
}

/// `validateNestedValueValidation`: what may not appear under a logical junctor.
fn nested(m: &Obj, skip_any_of: bool, path: &FPath, out: &mut Vec<Cause>) {
    value_validation(m, skip_any_of, false, path, out);
    if let Some(items) = items_schema(m) {
        nested(items, false, &path.child("items"), out);
    }
    for (k, v) in props(m) {
        if let Some(p) = v.as_object() {
            nested(p, false, &path.child("properties").key(k), out);
        }
    }
    if !s(m, "type").is_empty() {
        out.push(errors::forbidden(
            &path.child("type"),
            "must be empty to be structural",
        ));
    }
    match m.get("additionalProperties") {
        Some(Value::Object(_)) | Some(Value::Bool(true)) => {
            out.push(errors::forbidden(
                &path.child("additionalProperties"),
                "must be undefined to be structural",
            ));
        }
        _ => {}
    }
    if m.get("default").is_some_and(|d| !d.is_null()) {
        out.push(errors::forbidden(
            &path.child("default"),
            "must be undefined to be structural",
        ));
    }
    if !s(m, "title").is_empty() {
        out.push(errors::forbidden(
            &path.child("title"),
            "must be empty to be structural",
        ));
    }
    if !s(m, "description").is_empty() {
        out.push(errors::forbidden(
            &path.child("description"),
            "must be empty to be structural",
        ));
    }
    if flag(m, "nullable") {
        out.push(errors::forbidden(
            &path.child("nullable"),
            "must be false to be structural",
        ));
    }
    for ext in [
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
    ] {
        if flag(m, ext) {
            out.push(errors::forbidden(
                &path.child(ext),
                "must be false to be structural",
            ));
        }
    }
    if !list(m, "x-kubernetes-list-map-keys").is_empty() {
        out.push(errors::forbidden(
            &path.child("x-kubernetes-list-map-keys"),
            "must be empty to be structural",
        ));
    }
    if m.get("x-kubernetes-list-type").is_some_and(Value::is_string) {
        out.push(errors::forbidden(
            &path.child("x-kubernetes-list-type"),
            "must be undefined to be structural",
        ));
    }
    if m.get("x-kubernetes-map-type").is_some_and(Value::is_string) {
        out.push(errors::forbidden(
            &path.child("x-kubernetes-map-type"),
            "must be undefined to be structural",
        ));
    }
    if !list(m, "x-kubernetes-validations").is_empty() {
        out.push(errors::forbidden(
            &path.child("x-kubernetes-validations"),
            "must be empty to be structural",
        ));
    }
    if m.get("properties").and_then(|p| p.get("metadata")).is_some() {
        out.push(errors::forbidden(
            &path.child("properties").key("metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// `validateStructuralCompleteness`: what value validations mention must exist structurally.
fn completeness(root: &Obj, path: &FPath, out: &mut Vec<Cause>) {
    vv_completeness(root, Some(root), path, path, out);
}

fn vv_completeness(v: &Obj, s: Option<&Obj>, s_path: &FPath, v_path: &FPath, out: &mut Vec<Cause>) {
    let Some(s) = s else {
        out.push(errors::required(
            s_path,
            &format!("because it is defined in {}", v_path.render()),
        ));
        return;
    };
    if let Some(not) = v.get("not").and_then(Value::as_object) {
        nested_completeness(not, Some(s), s_path, &v_path.child("not"), out);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, x) in list(v, key).into_iter().enumerate() {
            if let Some(o) = x.as_object() {
                nested_completeness(o, Some(s), s_path, &v_path.child(key).index(i), out);
            }
        }
    }
}

fn nested_completeness(v: &Obj, s: Option<&Obj>, s_path: &FPath, v_path: &FPath, out: &mut Vec<Cause>) {
    let Some(s) = s else {
        out.push(errors::required(
            s_path,
            &format!("because it is defined in {}", v_path.render()),
        ));
        return;
    };
    vv_completeness(v, Some(s), s_path, v_path, out);
    if let Some(items) = items_schema(v) {
        nested_completeness(
            items,
            items_schema(s),
            &s_path.child("items"),
            &v_path.child("items"),
            out,
        );
    }
    for (k, x) in props(v) {
        let Some(vp) = x.as_object() else { continue };
        match prop(s, k) {
            None => out.push(errors::required(
                &s_path.child("properties").key(k),
                &format!(
                    "because it is defined in {}",
                    v_path.child("properties").key(k).render()
                ),
            )),
            Some(sp) => nested_completeness(
                vp,
                Some(sp),
                &s_path.child("properties").key(k),
                &v_path.child("properties").key(k),
                out,
            ),
        }
    }
}

/// `structuraldefaulting.ValidateDefaults`: defaults must be pruned and valid, except inside
/// type and object meta, which it checks differently (not reproduced here).
fn validate_defaults(schema: &Value, base: &FPath) -> Vec<Cause> {
    let mut root = Node::parse(schema);
    // The resource root is treated as an embedded resource, so its meta fields count as meta.
    root.embedded = true;
    let mut out = vec![];
    defaults_node(&root, base, false, &mut out);
    out
}

fn defaults_node(s: &Node, path: &FPath, inside_meta: bool, out: &mut Vec<Cause>) {
    let inside_meta = inside_meta && !s.embedded;
    if let Some(d) = &s.default
        && !inside_meta
        && !d.is_null()
    {
        let dpath = path.child("default");
        let mut pruned = d.clone();
        let mut unknown = vec![];
        objects::prune(&mut pruned, Some(s), s.embedded, "", &mut unknown);
        if &pruned != d {
            out.push(errors::invalid(
                &dpath,
                Bad::of(d),
                "must not have unknown fields",
            ));
        }
        let mut meta_errs = vec![];
        objects::validate_embedded(&dpath, d, Some(s), &mut meta_errs);
        if !meta_errs.is_empty() {
            out.extend(meta_errs);
        } else {
            let schema_errs = openapi::validate(s, d, None, &dpath);
            if !schema_errs.is_empty() {
                out.extend(schema_errs);
            } else if s.has_rules {
                let mut causes = vec![];
                let mut warnings = vec![];
                // Transition rules see the default as both old and new value, then as new only.
                cel_with_prefix(s, d, Some(d), &dpath, &mut causes, &mut warnings);
                if causes.is_empty() {
                    cel_with_prefix(s, d, None, &dpath, &mut causes, &mut warnings);
                }
                out.extend(causes);
            }
        }
    }
    if let Some(items) = s.items.as_deref() {
        defaults_node(items, &path.child("items"), inside_meta, out);
    }
    for (k, p) in &s.properties {
        let sub_meta =
            inside_meta || (s.embedded && ["metadata", "apiVersion", "kind"].contains(&k.as_str()));
        defaults_node(p, &path.child("properties").key(k), sub_meta, out);
    }
}

/// Runs CEL rules with error fields rooted at `prefix` instead of the object root.
fn cel_with_prefix(
    node: &Node,
    obj: &Value,
    old: Option<&Value>,
    prefix: &FPath,
    causes: &mut Vec<Cause>,
    warnings: &mut Vec<String>,
) {
    let mut local = vec![];
    cel::validate(node, obj, old, &mut local, warnings);
    for mut c in local {
        c.field = if c.field == "<nil>" {
            prefix.render()
        } else if c.field.starts_with('[') {
            format!("{}{}", prefix.render(), c.field)
        } else {
            format!("{}.{}", prefix.render(), c.field)
        };
        causes.push(c);
    }
}

/// The state `specStandardValidatorV3` threads through the recursion.
#[derive(Clone)]
struct Ssv {
    inside_meta: bool,
    forbidden_defaults: Option<String>,
    uncorrelatable: Option<FPath>,
}

impl Ssv {
    fn forbid_defaults(&self, reason: &str) -> Ssv {
        Ssv {
            forbidden_defaults: Some(reason.to_string()),
            ..self.clone()
        }
    }

    fn forbid_old_self(&self, path: &FPath) -> Ssv {
        if self.uncorrelatable.is_some() {
            return self.clone();
        }
        Ssv {
            uncorrelatable: Some(path.clone()),
            ..self.clone()
        }
    }

    fn validate(&self, m: &Obj, path: &FPath, out: &mut Vec<Cause>) {
        const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];
        let ty = s(m, "type");
        if !ty.is_empty() && !TYPES.contains(&ty.as_str()) {
            let valid: Vec<String> = TYPES.iter().map(|t| t.to_string()).collect();
            out.push(errors::not_supported(
                &path.child("type"),
                Bad::Str(ty.clone()),
                &valid,
            ));
        }
        if m.get("default").is_some_and(|d| !d.is_null())
            && let Some(reason) = &self.forbidden_defaults
        {
            out.push(errors::forbidden(
                &path.child("default"),
                &format!("must not be set {reason}"),
            ));
        }
        if !s(m, "id").is_empty() {
            out.push(errors::forbidden(&path.child("id"), "id is not supported"));
        }
        if m.get("additionalItems")
            .is_some_and(|v| v.is_boolean() || v.is_object())
        {
            out.push(errors::forbidden(
                &path.child("additionalItems"),
                "additionalItems is not supported",
            ));
        }
        if non_empty_map(m, "patternProperties") {
            out.push(errors::forbidden(
                &path.child("patternProperties"),
                "patternProperties is not supported",
            ));
        }
        if non_empty_map(m, "definitions") {
            out.push(errors::forbidden(
                &path.child("definitions"),
                "definitions is not supported",
            ));
        }
        if m.get("dependencies").is_some_and(Value::is_object) {
            out.push(errors::forbidden(
                &path.child("dependencies"),
                "dependencies is not supported",
            ));
        }
        if m.get("$ref").is_some_and(Value::is_string) {
            out.push(errors::forbidden(&path.child("$ref"), "$ref is not supported"));
        }
        if ty == "null" {
            out.push(errors::forbidden(
                &path.child("type"),
                "type cannot be set to null, use nullable as an alternative",
            ));
        }
        if items_array(m).is_some_and(|a| !a.is_empty()) {
            out.push(errors::forbidden(
                &path.child("items"),
                "items must be a schema object and not an array",
            ));
        }
        if self.inside_meta && flag(m, "x-kubernetes-embedded-resource") {
            out.push(errors::forbidden(
                &path.child("x-kubernetes-embedded-resource"),
                "must not be used inside of resource meta",
            ));
        }
    }
}

/// `ValidateCustomResourceDefinitionOpenAPISchema`: returns schema errors and CEL errors.
fn openapi_schema(
    m: &Obj,
    path: &FPath,
    ssv: &Ssv,
    is_root: bool,
    cel_enabled: bool,
) -> (Vec<Cause>, Vec<Cause>) {
    let mut schema_errs = vec![];
    let mut cel_errs = vec![];
    ssv.validate(m, path, &mut schema_errs);
    if flag(m, "uniqueItems") {
        schema_errs.push(errors::forbidden(
            &path.child("uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let has_props = m
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    let embedded = flag(m, "x-kubernetes-embedded-resource");
    if let Some(add) = additional(m) {
        if has_props && (add == &Value::Bool(false) || add.is_object()) {
            schema_errs.push(errors::forbidden(
                &path.child("additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if let Some(a) = add.as_object() {
            let sub = if ssv.inside_meta {
                ssv.forbid_defaults("inside additionalProperties applying to object metadata")
            } else {
                ssv.clone()
            };
            let (se, ce) = openapi_schema(a, &path.child("additionalProperties"), &sub, false, cel_enabled);
            schema_errs.extend(se);
            cel_errs.extend(ce);
        }
    }
    let map_type = m.get("x-kubernetes-map-type").and_then(Value::as_str);
    for (k, v) in props(m) {
        let Some(p) = v.as_object() else { continue };
        let mut sub = ssv.clone();
        if map_type.is_some_and(|t| t != "granular" && t != "atomic") {
            sub = sub.forbid_old_self(path);
        }
        if (is_root || embedded) && ["metadata", "kind", "apiVersion"].contains(&k.as_str()) {
            sub.inside_meta = true;
            if is_root {
                sub = sub.forbid_defaults(&format!("in top-level {k}"));
            }
        }
        let (se, ce) = openapi_schema(p, &path.child("properties").key(k), &sub, false, cel_enabled);
        schema_errs.extend(se);
        cel_errs.extend(ce);
    }
    if let Some(not) = m.get("not").and_then(Value::as_object) {
        let (se, ce) = openapi_schema(not, &path.child("not"), ssv, false, false);
        schema_errs.extend(se);
        cel_errs.extend(ce);
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for (i, x) in list(m, key).into_iter().enumerate() {
            if let Some(o) = x.as_object() {
                let (se, ce) = openapi_schema(o, &path.child(key).index(i), ssv, false, false);
                schema_errs.extend(se);
                cel_errs.extend(ce);
            }
        }
    }
    if let Some(defs) = m.get("definitions").and_then(Value::as_object) {
        let mut keys: Vec<&String> = defs.keys().collect();
        keys.sort();
        for k in keys {
            if let Some(o) = defs.get(k).and_then(Value::as_object) {
                let (se, ce) = openapi_schema(o, &path.child("definitions").key(k), ssv, false, false);
                schema_errs.extend(se);
                cel_errs.extend(ce);
            }
        }
    }
    let list_type = m.get("x-kubernetes-list-type").and_then(Value::as_str);
    if m.contains_key("items") {
        let sub = if list_type != Some("map") {
            ssv.forbid_old_self(path)
        } else {
            ssv.clone()
        };
        if let Some(items) = items_schema(m) {
            let (se, ce) = openapi_schema(items, &path.child("items"), &sub, false, cel_enabled);
            schema_errs.extend(se);
            cel_errs.extend(ce);
        }
        for (i, x) in items_array(m).into_iter().flatten().enumerate() {
            if let Some(o) = x.as_object() {
                let (se, ce) = openapi_schema(o, &path.child("items").index(i), &sub, false, cel_enabled);
                schema_errs.extend(se);
                cel_errs.extend(ce);
            }
        }
    }
    if let Some(deps) = m.get("dependencies").and_then(Value::as_object) {
        let mut keys: Vec<&String> = deps.keys().collect();
        keys.sort();
        for k in keys {
            if let Some(o) = deps.get(k).and_then(Value::as_object) {
                let (se, ce) = openapi_schema(o, &path.child("dependencies").key(k), ssv, false, false);
                schema_errs.extend(se);
                cel_errs.extend(ce);
            }
        }
    }
    if m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        schema_errs.push(errors::invalid(
            &path.child("x-kubernetes-preserve-unknown-fields"),
            Bad::Bool(false),
            "must be true or undefined",
        ));
    }
    let ty = s(m, "type");
    if let Some(mt) = map_type {
        if ty != "object" {
            let detail = "must be object if x-kubernetes-map-type is specified";
            schema_errs.push(if ty.is_empty() {
                errors::required(&path.child("type"), detail)
            } else {
                errors::invalid(&path.child("type"), Bad::Str(ty.clone()), detail)
            });
        }
        if mt != "atomic" && mt != "granular" {
            schema_errs.push(errors::not_supported(
                &path.child("x-kubernetes-map-type"),
                Bad::Str(mt.into()),
                &["atomic".into(), "granular".into()],
            ));
        }
    }
    if let Some(lt) = list_type {
        if ty != "array" {
            let detail = "must be array if x-kubernetes-list-type is specified";
            schema_errs.push(if ty.is_empty() {
                errors::required(&path.child("type"), detail)
            } else {
                errors::invalid(&path.child("type"), Bad::Str(ty.clone()), detail)
            });
        } else if lt == "set"
            && let Some(is) = items_schema(m)
        {
            let item_list_type = is.get("x-kubernetes-list-type").and_then(Value::as_str);
            let item_list_bad = || item_list_type.map_or(Bad::Nil, |t| Bad::Str(t.into()));
            match s(is, "type").as_str() {
                "array" if item_list_type.is_some_and(|t| t != "atomic") => {
                    schema_errs.push(errors::invalid(
                        &path.child("items").child("x-kubernetes-list-type"),
                        item_list_bad(),
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    ));
                }
                "object" if is.get("x-kubernetes-map-type").and_then(Value::as_str) != Some("atomic") => {
                    schema_errs.push(errors::invalid(
                        &path.child("items").child("x-kubernetes-map-type"),
                        item_list_bad(),
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    ));
                }
                _ => {}
            }
        }
        if lt != "atomic" && lt != "set" && lt != "map" {
            schema_errs.push(errors::not_supported(
                &path.child("x-kubernetes-list-type"),
                Bad::Str(lt.into()),
                &["atomic".into(), "set".into(), "map".into()],
            ));
        }
    }
    let map_keys: Vec<&Value> = list(m, "x-kubernetes-list-map-keys");
    if !map_keys.is_empty() {
        match list_type {
            None => schema_errs.push(errors::required(
                &path.child("x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some(lt) if lt != "map" => schema_errs.push(errors::invalid(
                &path.child("x-kubernetes-list-type"),
                Bad::Str(lt.into()),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            _ => {}
        }
    }
    if list_type == Some("map") {
        if map_keys.is_empty() {
            schema_errs.push(errors::required(
                &path.child("x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        if !m.contains_key("items") {
            schema_errs.push(errors::required(
                &path.child("items"),
                "must have a schema if x-kubernetes-list-type is map",
            ));
        }
        if let Some(arr) = items_array(m) {
            schema_errs.push(errors::invalid(
                &path.child("items"),
                Bad::Json(gofmt::json(&Value::Array(arr.clone()))),
                "must only have a single schema if x-kubernetes-list-type is map",
            ));
        }
        if let Some(is) = items_schema(m) {
            let item_ty = s(is, "type");
            if item_ty != "object" {
                schema_errs.push(errors::invalid(
                    &path.child("items").child("type"),
                    Bad::Str(item_ty.clone()),
                    "must be object if parent array's x-kubernetes-list-type is map",
                ));
            } else {
                let keys_json = Bad::Json(gofmt::json(&Value::Array(
                    map_keys.iter().map(|v| (*v).clone()).collect(),
                )));
                let mut seen = std::collections::HashSet::new();
                for key in &map_keys {
                    let k = key.as_str().unwrap_or_default();
                    match prop(is, k) {
                        Some(p) => {
                            let pt = s(p, "type");
                            if pt == "array" || pt == "object" {
                                schema_errs.push(errors::invalid(
                                    &path.child("items").child("properties").key(k).child("type"),
                                    Bad::Str(item_ty.clone()),
                                    "must be a scalar type if parent array's x-kubernetes-list-type is map",
                                ));
                            }
                        }
                        None => schema_errs.push(errors::invalid(
                            &path.child("x-kubernetes-list-map-keys"),
                            keys_json.clone(),
                            "entries must all be names of item properties",
                        )),
                    }
                    if !seen.insert(k) {
                        schema_errs.push(errors::invalid(
                            &path.child("x-kubernetes-list-map-keys"),
                            keys_json.clone(),
                            "must not contain duplicate entries",
                        ));
                    }
                }
            }
        }
    }
    map_list_keys_map_set(m, path, &mut schema_errs);
    let rules = list(m, "x-kubernetes-validations");
    if !rules.is_empty() {
        let parsed: Vec<Rule> = rules.iter().map(|r| Rule::parse(r)).collect();
        let node_for_paths = Node::parse(&Value::Object(m.clone()));
        for (i, rule) in parsed.iter().enumerate() {
            let rpath = path.child("x-kubernetes-validations").index(i);
            let trimmed_rule = rule.rule.trim();
            let trimmed_msg = rule.message.trim();
            let has_newline = |x: &str| x.contains('\n') || x.contains('\r');
            if trimmed_rule.is_empty() {
                schema_errs.push(errors::required(&rpath.child("rule"), "rule is not specified"));
            } else if !rule.message.is_empty() && trimmed_msg.is_empty() {
                schema_errs.push(errors::invalid(
                    &rpath.child("message"),
                    Bad::Str(rule.message.clone()),
                    "must be non-empty if specified",
                ));
            } else if has_newline(trimmed_msg) {
                schema_errs.push(errors::invalid(
                    &rpath.child("message"),
                    Bad::Str(rule.message.clone()),
                    "must not contain line breaks",
                ));
            } else if has_newline(trimmed_rule) && trimmed_msg.is_empty() {
                schema_errs.push(errors::required(
                    &rpath.child("message"),
                    "message must be specified if rule contains line breaks",
                ));
            }
            if !rule.message_expression.is_empty() && rule.message_expression.trim().is_empty() {
                schema_errs.push(errors::required(
                    &rpath.child("messageExpression"),
                    "messageExpression must be non-empty if specified",
                ));
            }
            if let Some(reason) = &rule.reason {
                const REASONS: [&str; 4] = [
                    "FieldValueDuplicate",
                    "FieldValueForbidden",
                    "FieldValueInvalid",
                    "FieldValueRequired",
                ];
                if !REASONS.contains(&reason.as_str()) {
                    let valid: Vec<String> = REASONS.iter().map(|r| r.to_string()).collect();
                    schema_errs.push(errors::not_supported(
                        &rpath.child("reason"),
                        Bad::Str(reason.clone()),
                        &valid,
                    ));
                }
            }
            if !rule.field_path.is_empty() {
                if rule.field_path.trim().is_empty() {
                    schema_errs.push(errors::invalid(
                        &rpath.child("fieldPath"),
                        Bad::Str(rule.field_path.clone()),
                        "must be non-empty if specified",
                    ));
                }
                if has_newline(&rule.field_path) {
                    schema_errs.push(errors::invalid(
                        &rpath.child("fieldPath"),
                        Bad::Str(rule.field_path.clone()),
                        "must not contain line breaks",
                    ));
                }
                if new_structural_error(m).is_none()
                    && cel::valid_field_path(&rule.field_path, &node_for_paths).is_err()
                {
                    schema_errs.push(errors::invalid(
                        &rpath.child("fieldPath"),
                        Bad::Str(rule.field_path.clone()),
                        "must be a valid path",
                    ));
                }
            }
        }
        if schema_errs.is_empty() && cel_enabled {
            compile_rules(
                &node_for_paths,
                &parsed,
                path,
                ssv,
                is_root || embedded,
                &mut cel_errs,
            );
        }
    }
    (schema_errs, cel_errs)
}

fn compile_rules(
    node: &Node,
    rules: &[Rule],
    path: &FPath,
    ssv: &Ssv,
    resource_root: bool,
    out: &mut Vec<Cause>,
) {
    let Some(self_ty) = cel::decl_type(node, resource_root) else {
        out.push(errors::internal(
            &path.child("x-kubernetes-validations"),
            "internal error: failed to construct type information for x-kubernetes-validations rules: unable to convert structural schema to CEL declarations",
        ));
        return;
    };
    let self_ty: Ty = self_ty;
    for (i, rule) in rules.iter().enumerate() {
        let rpath = path.child("x-kubernetes-validations").index(i);
        let compiled = cel::compile(rule, &self_ty);
        if let Some(e) = &compiled.rule_error {
            out.push(errors::invalid(
                &rpath.child("rule"),
                Bad::Json(rule.go_json()),
                e,
            ));
        }
        if let Some(e) = &compiled.message_error {
            out.push(errors::invalid(
                &rpath.child("messageExpression"),
                Bad::Json(rule.go_json()),
                e,
            ));
        }
        if compiled.uses_old_self {
            if let Some(p) = &ssv.uncorrelatable {
                out.push(errors::invalid(
                    &rpath.child("rule"),
                    Bad::Str(rule.rule.clone()),
                    &format!(
                        "oldSelf cannot be used on the uncorrelatable portion of the schema within {}",
                        p.render()
                    ),
                ));
            }
        } else if let Some(b) = rule.optional_old_self {
            out.push(errors::invalid(
                &rpath.child("optionalOldSelf"),
                Bad::Bool(b),
                "may not be set if oldSelf is not used in rule",
            ));
        }
    }
}

/// `validateMapListKeysMapSet`.
fn map_list_keys_map_set(m: &Obj, path: &FPath, out: &mut Vec<Cause>) {
    let Some(is) = items_schema(m) else { return };
    let Some(lt) = m.get("x-kubernetes-list-type").and_then(Value::as_str) else {
        return;
    };
    if lt != "set" && lt != "map" {
        return;
    }
    if flag(is, "nullable") {
        out.push(errors::forbidden(
            &path.child("items").child("nullable"),
            &format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
        ));
    }
    if lt == "map" {
        let required: Vec<&str> = list(is, "required")
            .into_iter()
            .filter_map(Value::as_str)
            .collect();
        for key in list(m, "x-kubernetes-list-map-keys") {
            let k = key.as_str().unwrap_or_default();
            let Some(p) = prop(is, k) else { continue };
            let ppath = path.child("items").child("properties").key(k);
            if !required.contains(&k) && p.get("default").is_none_or(Value::is_null) {
                out.push(errors::required(
                    &ppath.child("default"),
                    "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                ));
            }
            if flag(p, "nullable") {
                out.push(errors::forbidden(
                    &ppath.child("nullable"),
                    "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                ));
            }
        }
    }
}
