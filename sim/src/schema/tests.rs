//! Unit tests for CRD schema handling, with expectations taken from kube-apiserver's behaviour.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;

const BASE: &str = "spec.validation.openAPIV3Schema";

fn crd_schema(spec: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
        }
    })
}

fn compiled(spec: Value) -> CompiledSchema {
    match CompiledSchema::new(&crd_schema(spec)) {
        Ok(c) => c,
        Err(e) => panic!("schema rejected: {e:#?}"),
    }
}

fn obj(spec: Value) -> Value {
    json!({"apiVersion": "kubefoundry.dev/v1", "kind": "CFApp", "metadata": {"name": "x"}, "spec": spec})
}

fn lines(causes: &[Cause]) -> Vec<String> {
    causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect()
}

fn check(spec: Value, data: Value) -> Vec<String> {
    lines(&compiled(spec).validate(&obj(data), None))
}

fn spec_errors(spec: Value) -> Vec<String> {
    structural_errors(&crd_schema(spec))
}

// ---------------------------------------------------------------------------------------------
// Value validation.

#[test]
fn minimum_uses_apiserver_wording_and_field() {
    let s =
        compiled(json!({"type": "object", "properties": {"instances": {"type": "integer", "minimum": 0}}}));
    let causes = s.validate(&obj(json!({"instances": -1})), None);
    assert_eq!(
        causes,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: "Invalid value: -1: spec.instances in body should be greater than or equal to 0".into(),
            field: "spec.instances".into(),
        }]
    );
    assert_eq!(
        render(&causes),
        "spec.instances: Invalid value: -1: spec.instances in body should be greater than or equal to 0"
    );
}

#[test]
fn maximum_and_exclusive_bounds() {
    let spec = json!({"type": "object", "properties": {
        "a": {"type": "integer", "maximum": 10},
        "b": {"type": "integer", "maximum": 10, "exclusiveMaximum": true},
        "c": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
        "d": {"type": "number", "minimum": 0.5}
    }});
    assert_eq!(
        check(spec, json!({"a": 11, "b": 10, "c": 0, "d": 0.25})),
        vec![
            "spec.a: Invalid value: 11: spec.a in body should be less than or equal to 10",
            "spec.b: Invalid value: 10: spec.b in body should be less than 10",
            "spec.c: Invalid value: 0: spec.c in body should be greater than 0",
            "spec.d: Invalid value: 0.25: spec.d in body should be greater than or equal to 0.5",
        ]
    );
}

#[test]
fn types_integer_number_and_int_or_string() {
    let spec = json!({"type": "object", "properties": {
        "i": {"type": "integer"},
        "n": {"type": "number"},
        "p": {"x-kubernetes-int-or-string": true},
        "b": {"type": "boolean"},
        "o": {"type": "object"},
        "l": {"type": "array", "items": {"type": "string"}}
    }});
    assert_eq!(
        check(
            spec.clone(),
            json!({"i": 2.0, "n": 3, "p": 8080, "b": true, "o": {}, "l": []})
        ),
        Vec::<String>::new()
    );
    assert_eq!(check(spec.clone(), json!({"p": "http"})), Vec::<String>::new());
    let causes = compiled(spec.clone()).validate(&obj(json!({"i": "abc"})), None);
    assert_eq!(causes[0].reason, "FieldValueTypeInvalid");
    assert_eq!(
        check(
            spec,
            json!({"i": 1.5, "n": "x", "p": true, "b": "yes", "o": [], "l": {}})
        ),
        vec![
            r#"spec.b: Invalid value: "string": spec.b in body must be of type boolean: "string""#,
            r#"spec.i: Invalid value: "number": spec.i in body must be of type integer: "number""#,
            r#"<nil>: Invalid value: "": Checked value must be of type integer (default format) in spec.i"#,
            r#"spec.l: Invalid value: "object": spec.l in body must be of type array: "object""#,
            r#"spec.n: Invalid value: "string": spec.n in body must be of type number: "string""#,
            r#"spec.o: Invalid value: "array": spec.o in body must be of type object: "array""#,
            r#"spec.p: Invalid value: "boolean": spec.p in body must be of type integer,string: "boolean""#,
        ]
    );
}

#[test]
fn required_enum_and_strings() {
    let spec = json!({"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "maxLength": 3},
        "short": {"type": "string", "minLength": 2},
        "mode": {"type": "string", "enum": ["a", "b"]},
        "level": {"type": "integer", "enum": [1, 2]},
        "slug": {"type": "string", "pattern": "^[a-z]+$"}
    }});
    let causes = compiled(spec.clone()).validate(
        &obj(json!({"mode": "x", "level": 3, "short": "a", "slug": "ABC"})),
        None,
    );
    assert_eq!(
        lines(&causes),
        vec![
            r#"spec.level: Unsupported value: 3: supported values: "1", "2""#,
            r#"spec.mode: Unsupported value: "x": supported values: "a", "b""#,
            r#"spec.short: Invalid value: "a": spec.short in body should be at least 2 chars long"#,
            r#"spec.slug: Invalid value: "ABC": spec.slug in body should match '^[a-z]+$'"#,
            "spec.name: Required value",
        ]
    );
    assert_eq!(causes[0].reason, "FieldValueNotSupported");
    assert_eq!(causes[4].reason, "FieldValueRequired");
    let long = compiled(spec).validate(&obj(json!({"name": "abcd"})), None);
    assert_eq!(
        lines(&long),
        vec!["spec.name: Too long: may not be more than 3 bytes"]
    );
    assert_eq!(long[0].reason, "FieldValueTooLong");
}

#[test]
fn item_and_property_counts() {
    let spec = json!({"type": "object", "properties": {
        "l": {"type": "array", "maxItems": 2, "items": {"type": "integer"}},
        "m": {"type": "array", "minItems": 2, "items": {"type": "integer"}},
        "p": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}},
        "q": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}}
    }});
    let causes = compiled(spec).validate(
        &obj(json!({"l": [1, 2, 3], "m": [1], "p": {"a": "1", "b": "2"}, "q": {}})),
        None,
    );
    assert_eq!(
        lines(&causes),
        vec![
            "spec.l: Too many: 3: must have at most 2 items",
            "spec.m: Invalid value: 1: spec.m in body should have at least 2 items",
            "spec.p: Too many: 2: must have at most 1 item",
            "spec.q: Invalid value: 0: spec.q in body should have at least 1 properties",
        ]
    );
    assert_eq!(causes[0].reason, "FieldValueTooMany");
}

#[test]
fn multiple_of_and_formats() {
    let spec = json!({"type": "object", "properties": {
        "x": {"type": "integer", "multipleOf": 5},
        "t": {"type": "string", "format": "date-time"},
        "n": {"type": "integer", "format": "int32"},
        "u": {"type": "string", "format": "uuid"},
        "f": {"type": "string", "format": "not-a-known-format"}
    }});
    assert_eq!(
        check(
            spec.clone(),
            json!({"x": 10, "t": "2024-01-02T03:04:05Z", "n": 7, "u": "123e4567-e89b-12d3-a456-426614174000", "f": "?"})
        ),
        Vec::<String>::new()
    );
    let causes = compiled(spec).validate(
        &obj(json!({"x": 7, "t": "nope", "n": 3_000_000_000_i64, "u": "nope"})),
        None,
    );
    assert_eq!(
        lines(&causes),
        vec![
            r#"<nil>: Invalid value: "": Checked value must be of type integer with format int32 in spec.n"#,
            r#"spec.t: Invalid value: "nope": spec.t in body must be of type date-time: "nope""#,
            r#"spec.u: Invalid value: "nope": spec.u in body must be of type uuid: "nope""#,
            "spec.x: Invalid value: 7: spec.x in body should be a multiple of 5",
        ]
    );
    assert_eq!(causes[1].reason, "FieldValueTypeInvalid");
}

#[test]
fn nullable_and_nulls() {
    let spec = json!({"type": "object", "properties": {
        "a": {"type": "string", "nullable": true},
        "b": {"type": "string"}
    }});
    let s = compiled(spec);
    assert_eq!(
        lines(&s.validate(&obj(json!({"a": null})), None)),
        Vec::<String>::new()
    );
    assert_eq!(
        lines(&s.validate(&obj(json!({"b": null})), None)),
        vec![r#"spec.b: Invalid value: "null": spec.b in body must be of type string: "null""#]
    );
    let mut o = obj(json!({"a": null, "b": null}));
    s.prune(&mut o);
    assert_eq!(o["spec"], json!({"a": null}));
}

#[test]
fn additional_properties_values_are_validated() {
    let spec = json!({"type": "object", "properties": {
        "m": {"type": "object", "additionalProperties": {"type": "integer"}},
        "closed": {"type": "object", "additionalProperties": false}
    }});
    assert_eq!(
        check(spec, json!({"m": {"ok": 1, "foo": "x"}, "closed": {"k": 1}})),
        vec![
            r#"spec.closed: Invalid value: "k": spec.closed.k in body is a forbidden property"#,
            r#"spec.m.foo: Invalid value: "string": spec.m.foo in body must be of type integer: "string""#,
        ]
    );
}

#[test]
fn list_type_set_and_map_uniqueness() {
    let spec = json!({"type": "object", "properties": {
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}
        },
        "pairs": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a", "b"],
            "items": {"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}
        }
    }});
    let s = compiled(spec);
    let causes = s.validate(
        &obj(json!({
            "tags": ["a", "b", "a", "a"],
            "ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}],
            "pairs": [{"a": "x", "b": 1}, {"a": "x", "b": 2}, {"a": "x", "b": 1}]
        })),
        None,
    );
    assert_eq!(
        lines(&causes),
        vec![
            r#"spec.pairs[2]: Duplicate value: {"a":"x","b":1}"#,
            r#"spec.ports[1]: Duplicate value: {"name":"http"}"#,
            r#"spec.tags[2]: Duplicate value: "a""#,
        ]
    );
    assert!(causes.iter().all(|c| c.reason == "FieldValueDuplicate"));
    assert_eq!(s.list_type(&["spec", "tags"]), ListType::Set);
    assert_eq!(
        s.list_type(&["spec", "ports"]),
        ListType::Map(vec!["name".into()])
    );
    assert_eq!(s.list_type(&["spec", "ports", "name"]), ListType::Atomic);
    assert_eq!(s.list_type(&["spec", "nope"]), ListType::Atomic);
}

#[test]
fn map_type_lookup_steps_through_lists_and_maps() {
    let s = compiled(json!({"type": "object", "properties": {
        "selector": {"type": "object", "x-kubernetes-map-type": "atomic", "additionalProperties": {"type": "string"}},
        "routes": {"type": "array", "items": {"type": "object", "properties": {
            "dest": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {"app": {"type": "string"}}},
            "hosts": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
        }}},
        "byName": {"type": "object", "additionalProperties": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
            "items": {"type": "object", "required": ["k"], "properties": {"k": {"type": "string"}}}
        }}
    }}));
    assert!(s.map_is_atomic(&["spec", "selector"]));
    assert!(s.map_is_atomic(&["spec", "routes", "dest"]));
    assert!(!s.map_is_atomic(&["spec"]));
    assert_eq!(s.list_type(&["spec", "routes", "hosts"]), ListType::Set);
    assert_eq!(s.list_type(&["spec", "routes"]), ListType::Atomic);
    assert_eq!(
        s.list_type(&["spec", "byName", "anykey"]),
        ListType::Map(vec!["k".into()])
    );
}

#[test]
fn embedded_resources_need_type_meta() {
    let spec = json!({"type": "object", "properties": {
        "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}
    }});
    assert_eq!(
        check(spec.clone(), json!({"template": {"spec": {}}})),
        vec![
            "spec.template.apiVersion: Required value",
            "spec.template.kind: Required value"
        ]
    );
    assert_eq!(
        check(
            spec,
            json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}})
        ),
        Vec::<String>::new()
    );
}

// ---------------------------------------------------------------------------------------------
// Pruning and defaulting.

#[test]
fn prune_drops_unknown_fields_and_reports_paths() {
    let s = compiled(json!({"type": "object", "properties": {
        "known": {"type": "string"},
        "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
        "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}
    }}));
    let mut o = obj(json!({
        "known": "k", "foo": 1,
        "list": [{"a": "x", "b": "y"}],
        "free": {"anything": {"deep": true}},
        "labels": {"x": {"v": "1", "w": "2"}},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1}, "spec": {}, "extra": 1}
    }));
    o["metadata"]["weird"] = json!(true);
    o["status"] = json!({"x": 1});
    let unknown = s.prune(&mut o);
    assert_eq!(
        unknown,
        vec![
            "spec.foo",
            "spec.labels.x.w",
            "spec.list[0].b",
            "spec.template.extra",
            "spec.template.metadata.bogus",
            "status",
        ]
    );
    assert_eq!(o["metadata"]["weird"], json!(true));
    assert_eq!(o["kind"], json!("CFApp"));
    assert_eq!(
        o["spec"],
        json!({
            "known": "k",
            "list": [{"a": "x"}],
            "free": {"anything": {"deep": true}},
            "labels": {"x": {"v": "1"}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
        })
    );
}

#[test]
fn defaults_apply_only_where_parent_exists() {
    let schema = crd_schema(json!({"type": "object", "properties": {
        "replicas": {"type": "integer", "default": 1},
        "nested": {"type": "object", "default": {}, "properties": {"x": {"type": "integer", "default": 5}}},
        "opt": {"type": "object", "properties": {"y": {"type": "string", "default": "d"}}},
        "nul": {"type": "string", "default": "n"},
        "keep": {"type": "string", "nullable": true, "default": "k"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"z": {"type": "boolean", "default": false}}}}
    }}));
    let s = match CompiledSchema::new(&schema) {
        Ok(s) => s,
        Err(e) => panic!("{e:?}"),
    };
    let mut o = obj(json!({"nul": null, "keep": null, "items": [{}, {"z": true}]}));
    s.default(&mut o);
    assert_eq!(
        o["spec"],
        json!({"replicas": 1, "nested": {"x": 5}, "nul": "n", "keep": null, "items": [{"z": false}, {"z": true}]})
    );
    let mut bare = json!({"apiVersion": "v", "kind": "K", "metadata": {}});
    s.default(&mut bare);
    assert_eq!(bare.get("spec"), None);
}

// ---------------------------------------------------------------------------------------------
// CEL rules.

#[test]
fn cel_immutability_is_a_transition_rule() {
    let s = compiled(json!({"type": "object", "properties": {
        "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "is immutable"}]}
    }}));
    assert_eq!(
        lines(&s.validate(&obj(json!({"name": "a"})), None)),
        Vec::<String>::new()
    );
    let old = obj(json!({"name": "a"}));
    assert_eq!(
        lines(&s.validate(&obj(json!({"name": "a"})), Some(&old))),
        Vec::<String>::new()
    );
    let causes = s.validate(&obj(json!({"name": "b"})), Some(&old));
    assert_eq!(
        lines(&causes),
        vec![r#"spec.name: Invalid value: "b": is immutable"#]
    );
    assert_eq!(causes[0].reason, "FieldValueInvalid");
    // A field absent before has no old value, so the transition rule does not run.
    assert_eq!(
        lines(&s.validate(&obj(json!({"name": "b"})), Some(&obj(json!({}))))),
        Vec::<String>::new()
    );
}

#[test]
fn cel_cross_field_rule_with_field_path() {
    let s = compiled(json!({
        "type": "object",
        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min must not exceed max", "fieldPath": ".min"}]
    }));
    assert_eq!(
        lines(&s.validate(&obj(json!({"min": 1, "max": 2})), None)),
        Vec::<String>::new()
    );
    let causes = s.validate(&obj(json!({"min": 3, "max": 2})), None);
    assert_eq!(
        lines(&causes),
        vec!["spec.min: Invalid value: min must not exceed max"]
    );
    assert_eq!(
        render(&causes),
        "spec.min: Invalid value: min must not exceed max"
    );
}

#[test]
fn cel_messages_reasons_and_defaults() {
    let s = compiled(json!({
        "type": "object",
        "properties": {
            "replicas": {"type": "integer"},
            "a": {"type": "integer", "x-kubernetes-validations": [{"rule": "self > 0"}]},
            "f": {"type": "string", "x-kubernetes-validations": [{"rule": "self != 'x'", "message": "x is reserved", "reason": "FieldValueForbidden"}]},
            "r": {"type": "string", "x-kubernetes-validations": [{"rule": "self != ''", "message": "must be set", "reason": "FieldValueRequired"}]}
        },
        "x-kubernetes-validations": [{
            "rule": "self.replicas <= 5",
            "messageExpression": "'replicas ' + string(self.replicas) + ' exceeds 5'"
        }]
    }));
    let causes = s.validate(&obj(json!({"replicas": 7, "a": 0, "f": "x", "r": ""})), None);
    assert_eq!(
        lines(&causes),
        vec![
            "spec: Invalid value: replicas 7 exceeds 5",
            "spec.a: Invalid value: 0: failed rule: self > 0",
            "spec.f: Forbidden: x is reserved",
            "spec.r: Required value: must be set",
        ]
    );
    assert_eq!(causes[2].reason, "FieldValueForbidden");
    assert_eq!(causes[3].reason, "FieldValueRequired");
}

#[test]
fn cel_root_rules_report_nil_field() {
    let schema = json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}},
        "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('app-')", "message": "name must start with app-"}]
    });
    let s = match CompiledSchema::new(&schema) {
        Ok(s) => s,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(
        lines(&s.validate(&obj(json!({})), None)),
        vec!["<nil>: Invalid value: name must start with app-"]
    );
}

#[test]
fn cel_optional_old_self() {
    let s = compiled(json!({"type": "object", "properties": {
        "gen": {"type": "integer", "x-kubernetes-validations": [{
            "rule": "!oldSelf.hasValue() || self >= oldSelf.value()",
            "message": "may not decrease",
            "optionalOldSelf": true
        }]}
    }}));
    assert_eq!(
        lines(&s.validate(&obj(json!({"gen": 3})), None)),
        Vec::<String>::new()
    );
    let old = obj(json!({"gen": 3}));
    assert_eq!(
        lines(&s.validate(&obj(json!({"gen": 4})), Some(&old))),
        Vec::<String>::new()
    );
    assert_eq!(
        lines(&s.validate(&obj(json!({"gen": 2})), Some(&old))),
        vec!["spec.gen: Invalid value: 2: may not decrease"]
    );
}

#[test]
fn cel_transition_rules_correlate_map_list_items_by_key() {
    let s = compiled(json!({"type": "object", "properties": {
        "ports": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.port == oldSelf.port", "message": "port is immutable"}]
            }
        }
    }}));
    let old = obj(json!({"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]}));
    let reordered =
        obj(json!({"ports": [{"name": "b", "port": 2}, {"name": "a", "port": 1}, {"name": "c", "port": 9}]}));
    assert_eq!(lines(&s.validate(&reordered, Some(&old))), Vec::<String>::new());
    let changed = obj(json!({"ports": [{"name": "b", "port": 3}]}));
    assert_eq!(
        lines(&s.validate(&changed, Some(&old))),
        vec!["spec.ports[0]: Invalid value: port is immutable"]
    );
}

#[test]
fn cel_is_skipped_when_the_object_is_broken() {
    let s = compiled(json!({
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.n > 100", "message": "too small"}]
    }));
    assert_eq!(
        lines(&s.validate(&obj(json!({"n": "x"})), None)),
        vec![
            r#"spec.n: Invalid value: "string": spec.n in body must be of type integer: "string""#,
            "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ]
    );
    let earlier = vec![Cause {
        reason: "FieldValueRequired".into(),
        message: "Required value".into(),
        field: "metadata.name".into(),
    }];
    let v = s.validate_full(&obj(json!({"n": 1})), None, &earlier);
    assert_eq!(v.causes.len(), 1);
    assert!(
        v.causes[0]
            .message
            .contains("some validation rules were not checked")
    );
}

#[test]
fn cel_runtime_errors_use_cel_go_wording() {
    let s = compiled(json!({
        "type": "object",
        "properties": {"opt": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.opt == 'x'"}]
    }));
    assert_eq!(
        lines(&s.validate(&obj(json!({})), None)),
        vec![r#"spec: Invalid value: "object": no such key: opt evaluating rule: self.opt == 'x'"#]
    );
}

#[test]
fn cel_matches_caches_patterns_and_keeps_the_crate_error() {
    let s = compiled(json!({
        "type": "object",
        "properties": {"s": {"type": "string"}, "p": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.s.matches(self.p)", "message": "no match"}]
    }));
    // Twice: the second evaluation of each pattern comes from the cache.
    for _ in 0..2 {
        assert_eq!(
            lines(&s.validate(&obj(json!({"s": "abc", "p": "^a"})), None)),
            Vec::<String>::new()
        );
        assert_eq!(
            lines(&s.validate(&obj(json!({"s": "xbc", "p": "^a"})), None)),
            vec!["spec: Invalid value: no match"]
        );
    }
    let broken = lines(&s.validate(&obj(json!({"s": "abc", "p": "("})), None));
    assert!(
        broken.len() == 1 && broken[0].contains("'(' not a valid regex"),
        "{broken:?}"
    );
}

#[test]
fn ratcheting_lets_unchanged_invalid_values_through() {
    let s = compiled(json!({"type": "object", "properties": {
        "n": {"type": "integer", "maximum": 5},
        "m": {"type": "integer", "maximum": 5},
        "s": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() < 3", "message": "too long"}]}
    }}));
    let old = obj(json!({"n": 9, "s": "long"}));
    let v = s.validate_full(&obj(json!({"n": 9, "m": 6, "s": "long"})), Some(&old), &[]);
    assert_eq!(
        lines(&v.causes),
        vec!["spec.m: Invalid value: 6: spec.m in body should be less than or equal to 5"]
    );
    assert_eq!(
        v.warnings,
        vec![r#"spec.s: Invalid value: "long": too long"#.to_string()]
    );
    let changed = s.validate(&obj(json!({"n": 10, "s": "longer"})), Some(&old));
    assert_eq!(
        lines(&changed),
        vec![
            "spec.n: Invalid value: 10: spec.n in body should be less than or equal to 5",
            r#"spec.s: Invalid value: "longer": too long"#,
        ]
    );
}

#[test]
fn status_subresource_validation_words_paths_from_status() {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {"a": {"type": "integer", "maximum": 1}}},
            "status": {"type": "object", "properties": {"num": {"type": "integer", "maximum": 10}}}
        }
    });
    let s = match CompiledSchema::new(&schema) {
        Ok(s) => s,
        Err(e) => panic!("{e:?}"),
    };
    let v = s.validate_status(
        &json!({"spec": {"a": 5}, "status": {"num": 15}}),
        Some(&json!({"spec": {"a": 5}})),
    );
    assert_eq!(
        lines(&v.causes),
        vec!["status.num: Invalid value: 15: num in body should be less than or equal to 10"]
    );
}

#[test]
fn render_joins_and_dedups() {
    let a = Cause {
        reason: "FieldValueRequired".into(),
        message: "Required value".into(),
        field: "spec.a".into(),
    };
    let b = Cause {
        reason: "FieldValueRequired".into(),
        message: "Required value".into(),
        field: "spec.b".into(),
    };
    assert_eq!(render(&[]), "");
    assert_eq!(render(std::slice::from_ref(&a)), "spec.a: Required value");
    assert_eq!(
        render(&[a.clone(), b, a]),
        "[spec.a: Required value, spec.b: Required value]"
    );
}

// ---------------------------------------------------------------------------------------------
// CRD admission.

#[test]
fn accepts_a_well_formed_schema() {
    let errs = spec_errors(json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "is immutable"}]},
            "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "ports": {
                "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
            },
            "replicas": {"type": "integer", "default": 1, "minimum": 0}
        },
        "x-kubernetes-validations": [{"rule": "has(self.replicas) && self.replicas >= 0", "fieldPath": ".replicas"}]
    }));
    assert_eq!(errs, Vec::<String>::new());
}

#[test]
fn missing_types_are_required() {
    let errs = structural_errors(&json!({
        "properties": {
            "spec": {"type": "object", "properties": {"foo": {}, "list": {"type": "array", "items": {}}, "arr": {"type": "array"}}}
        }
    }));
    assert_eq!(
        errs,
        vec![
            format!("{BASE}.properties[spec].properties[arr].items: Required value: must be specified"),
            format!(
                "{BASE}.properties[spec].properties[foo].type: Required value: must not be empty for specified object fields"
            ),
            format!(
                "{BASE}.properties[spec].properties[list].items.type: Required value: must not be empty for specified array items"
            ),
            format!("{BASE}.type: Required value: must not be empty at the root"),
        ]
    );
}

#[test]
fn additional_properties_rules() {
    assert_eq!(
        spec_errors(
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}})
        ),
        vec![format!(
            "{BASE}.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        )]
    );
    assert_eq!(
        spec_errors(
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false})
        ),
        vec![format!(
            "{BASE}.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        )]
    );
    assert_eq!(
        structural_errors(&json!({"type": "object", "additionalProperties": false})),
        vec![format!(
            "{BASE}.additionalProperties: Forbidden: must not be used at the root"
        )]
    );
    assert_eq!(
        spec_errors(json!({"type": "object", "additionalProperties": {"type": "string"}})),
        Vec::<String>::new()
    );
}

#[test]
fn value_validations_may_not_carry_types() {
    assert_eq!(
        spec_errors(
            json!({"type": "object", "anyOf": [{"type": "object", "required": ["a"]}, {"required": ["b"], "description": "d"}]})
        ),
        vec![
            format!("{BASE}.properties[spec].anyOf[0].type: Forbidden: must be empty to be structural"),
            format!(
                "{BASE}.properties[spec].anyOf[1].description: Forbidden: must be empty to be structural"
            ),
        ]
    );
    assert_eq!(
        structural_errors(
            &json!({"type": "object", "properties": {"spec": {"type": "object"}}, "allOf": [{"properties": {"status": {"required": ["x"]}}}]})
        ),
        vec![format!(
            "{BASE}.properties[status]: Required value: because it is defined in {BASE}.allOf[0].properties[status]"
        )]
    );
}

#[test]
fn list_map_keys_rules() {
    assert_eq!(
        spec_errors(json!({"type": "object", "properties": {"l": {
            "type": "array", "x-kubernetes-list-type": "map",
            "items": {"type": "object", "properties": {"name": {"type": "string"}}}
        }}})),
        vec![format!(
            "{BASE}.properties[spec].properties[l].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
        )]
    );
    assert_eq!(
        spec_errors(json!({"type": "object", "properties": {"l": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "other"],
            "items": {"type": "object", "properties": {"name": {"type": "string", "nullable": true}}}
        }}})),
        vec![
            format!(
                r#"{BASE}.properties[spec].properties[l].x-kubernetes-list-map-keys: Invalid value: ["name","other"]: entries must all be names of item properties"#
            ),
            format!(
                "{BASE}.properties[spec].properties[l].items.properties[name].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
            ),
            format!(
                "{BASE}.properties[spec].properties[l].items.properties[name].nullable: Forbidden: this property is in x-kubernetes-list-map-keys, so it cannot be nullable"
            ),
        ]
    );
    assert_eq!(
        spec_errors(
            json!({"type": "object", "properties": {"l": {"type": "string", "x-kubernetes-list-type": "bogus"}}})
        ),
        vec![
            format!(
                r#"{BASE}.properties[spec].properties[l].type: Invalid value: "string": must be array if x-kubernetes-list-type is specified"#
            ),
            format!(
                r#"{BASE}.properties[spec].properties[l].x-kubernetes-list-type: Unsupported value: "bogus": supported values: "atomic", "set", "map""#
            ),
        ]
    );
}

#[test]
fn metadata_and_root_rules() {
    assert_eq!(
        structural_errors(&json!({"type": "object", "nullable": true, "properties": {
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}
        }})),
        vec![
            format!("{BASE}.nullable: Forbidden: nullable cannot be true at the root"),
            format!(
                "{BASE}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            ),
        ]
    );
    assert_eq!(
        structural_errors(&json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}}
        }})),
        Vec::<String>::new()
    );
    assert_eq!(
        structural_errors(
            &json!({"type": "object", "properties": {"metadata": {"type": "object", "default": {}}}})
        ),
        vec![format!(
            "{BASE}.properties[metadata].default: Forbidden: must not be set in top-level metadata"
        )]
    );
}

#[test]
fn misc_schema_rules() {
    assert_eq!(
        spec_errors(json!({"type": "object", "properties": {
            "u": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
            "p": {"type": "string", "pattern": "(abc"},
            "t": {"type": "strin"},
            "e": {"type": "string", "x-kubernetes-embedded-resource": true}
        }})),
        vec![
            format!(
                r#"{BASE}.properties[spec].properties[e].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"#
            ),
            format!(
                r#"{BASE}.properties[spec].properties[e].type: Invalid value: "string": must be object if x-kubernetes-embedded-resource is true"#
            ),
            format!(
                "{BASE}.properties[spec].properties[p].pattern: Invalid value: \"(abc\": must be a valid regular expression, but isn't: error parsing regexp: missing closing ): `(abc`"
            ),
            format!(
                r#"{BASE}.properties[spec].properties[t].type: Unsupported value: "strin": supported values: "array", "boolean", "integer", "number", "object", "string""#
            ),
            format!(
                "{BASE}.properties[spec].properties[u].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
            ),
        ]
    );
    assert_eq!(
        spec_errors(json!({"type": "object", "properties": {
            "u": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
            "t": {"type": "strin"}
        }})),
        vec![
            format!(
                r#"{BASE}.properties[spec].properties[t].type: Unsupported value: "strin": supported values: "array", "boolean", "integer", "number", "object", "string""#
            ),
            format!(
                "{BASE}.properties[spec].properties[u].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
            ),
        ]
    );
}

#[test]
fn defaults_must_validate_and_be_pruned() {
    assert_eq!(
        spec_errors(json!({"type": "object", "properties": {
            "r": {"type": "integer", "minimum": 1, "default": 0},
            "o": {"type": "object", "properties": {"a": {"type": "string"}}, "default": {"a": "x", "b": "y"}}
        }})),
        vec![
            format!(
                r#"{BASE}.properties[spec].properties[o].default: Invalid value: {{"a":"x","b":"y"}}: must not have unknown fields"#
            ),
            format!(
                "{BASE}.properties[spec].properties[r].default: Invalid value: 0:  in body should be greater than or equal to 1"
            ),
        ]
    );
}

#[test]
fn cel_rules_must_compile() {
    let errs = spec_errors(json!({
        "type": "object",
        "properties": {"foo": {"type": "string"}},
        "x-kubernetes-validations": [
            {"rule": "self.foo >"},
            {"rule": "self.bar == 'x'"},
            {"rule": "self.foo"},
            {"rule": "self.foo == 'a'", "optionalOldSelf": true},
            {"rule": "self.foo == 'a'", "reason": "Nope"}
        ]
    }));
    assert_eq!(
        errs,
        vec![format!(
            r#"{BASE}.properties[spec].x-kubernetes-validations[4].reason: Unsupported value: "Nope": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired""#
        ),]
    );
    let errs = spec_errors(json!({
        "type": "object",
        "properties": {"foo": {"type": "string"}},
        "x-kubernetes-validations": [
            {"rule": "self.foo >"},
            {"rule": "self.bar == 'x'"},
            {"rule": "self.foo"},
            {"rule": "self.foo == 'a'", "optionalOldSelf": true}
        ]
    }));
    assert_eq!(
        errs,
        vec![
            format!(
                "{BASE}.properties[spec].x-kubernetes-validations[0].rule: Invalid value: {{\"Rule\":\"self.foo \\u003e\",\"Message\":\"\",\"MessageExpression\":\"\",\"Reason\":null,\"FieldPath\":\"\",\"OptionalOldSelf\":null}}: compilation failed: ERROR: <input>:1:11: Syntax error: mismatched input '<EOF>' expecting {{'[', '{{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}}\n | self.foo >\n | ..........^"
            ),
            format!(
                "{BASE}.properties[spec].x-kubernetes-validations[1].rule: Invalid value: {{\"Rule\":\"self.bar == 'x'\",\"Message\":\"\",\"MessageExpression\":\"\",\"Reason\":null,\"FieldPath\":\"\",\"OptionalOldSelf\":null}}: compilation failed: ERROR: <input>:1:5: undefined field 'bar'\n | self.bar == 'x'\n | ....^"
            ),
            format!(
                "{BASE}.properties[spec].x-kubernetes-validations[2].rule: Invalid value: {{\"Rule\":\"self.foo\",\"Message\":\"\",\"MessageExpression\":\"\",\"Reason\":null,\"FieldPath\":\"\",\"OptionalOldSelf\":null}}: cel expression must evaluate to a bool"
            ),
            format!(
                "{BASE}.properties[spec].x-kubernetes-validations[3].optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule"
            ),
        ]
    );
}

#[test]
fn old_self_is_forbidden_where_items_do_not_correlate() {
    let errs = spec_errors(json!({"type": "object", "properties": {"list": {
        "type": "array",
        "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}
    }}}));
    assert_eq!(
        errs,
        vec![format!(
            r#"{BASE}.properties[spec].properties[list].items.x-kubernetes-validations[0].rule: Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion of the schema within {BASE}.properties[spec].properties[list]"#
        )]
    );
}

#[test]
fn field_paths_and_messages_are_checked() {
    let errs = spec_errors(json!({
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "x-kubernetes-validations": [
            {"rule": "true", "fieldPath": ".b"},
            {"rule": "true", "message": "   "},
            {"rule": "true\n&& true"}
        ]
    }));
    assert_eq!(
        errs,
        vec![
            format!(
                r#"{BASE}.properties[spec].x-kubernetes-validations[0].fieldPath: Invalid value: ".b": must be a valid path"#
            ),
            format!(
                r#"{BASE}.properties[spec].x-kubernetes-validations[1].message: Invalid value: "   ": must be non-empty if specified"#
            ),
            format!(
                "{BASE}.properties[spec].x-kubernetes-validations[2].message: Required value: message must be specified if rule contains line breaks"
            ),
        ]
    );
}

#[test]
fn compiled_schema_refuses_bad_schemas() {
    let Err(errs) = CompiledSchema::new(&json!({"type": "string"})) else {
        panic!("accepted a non-object root");
    };
    assert_eq!(
        errs,
        vec![format!(
            r#"{BASE}.type: Invalid value: "string": must be object at the root"#
        )]
    );
}

#[test]
fn per_version_paths() {
    assert_eq!(
        structural_errors_at(
            &json!({"type": "object", "properties": {"a": {}}}),
            "spec.versions[1].schema.openAPIV3Schema",
            false
        ),
        vec![
            "spec.versions[1].schema.openAPIV3Schema.properties[a].type: Required value: must not be empty for specified object fields"
        ]
    );
}

#[test]
fn cel_values_follow_schema_types() {
    let s = compiled(json!({
        "type": "object",
        "properties": {
            "start": {"type": "string", "format": "date-time"},
            "timeout": {"type": "string", "format": "duration"},
            "ratio": {"type": "number"},
            "dash-name": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "mem": {"type": "string"},
            "opt": {"type": "string"}
        },
        "x-kubernetes-validations": [
            {"rule": "self.start < timestamp('2030-01-01T00:00:00Z')", "message": "start too late"},
            {"rule": "self.timeout > duration('1s')", "message": "timeout too short"},
            {"rule": "self.ratio * 2.0 < 3.0", "message": "ratio too big"},
            {"rule": "self.dash__dash__name.startsWith('a')", "message": "dash"},
            {"rule": "'app.kubernetes.io/name' in self.labels", "message": "label"},
            {"rule": "isQuantity(self.mem) && quantity(self.mem).isLessThan(quantity('1Gi'))", "message": "mem"},
            {"rule": "self.?opt.orValue('none') != 'bad'", "message": "opt"},
            {"rule": "!has(self.opt) || self.opt.matches('^[a-z]+$')", "message": "opt format"}
        ]
    }));
    let good = obj(json!({
        "start": "2024-05-01T10:00:00Z", "timeout": "5s", "ratio": 1, "dash-name": "abc",
        "labels": {"app.kubernetes.io/name": "x"}, "mem": "512Mi"
    }));
    assert_eq!(lines(&s.validate(&good, None)), Vec::<String>::new());
    let bad = obj(json!({
        "start": "2031-05-01T10:00:00Z", "timeout": "500ms", "ratio": 2, "dash-name": "zzz",
        "labels": {}, "mem": "2Gi", "opt": "bad"
    }));
    assert_eq!(
        lines(&s.validate(&bad, None)),
        vec![
            "spec: Invalid value: start too late",
            "spec: Invalid value: timeout too short",
            "spec: Invalid value: ratio too big",
            "spec: Invalid value: dash",
            "spec: Invalid value: label",
            "spec: Invalid value: mem",
            "spec: Invalid value: opt",
        ]
    );
}

#[test]
fn cel_message_expression_sees_old_self() {
    let s = compiled(json!({"type": "object", "properties": {
        "size": {"type": "integer", "x-kubernetes-validations": [{
            "rule": "self >= oldSelf",
            "messageExpression": "'cannot shrink from ' + string(oldSelf) + ' to ' + string(self)"
        }]}
    }}));
    let old = obj(json!({"size": 10}));
    assert_eq!(
        lines(&s.validate(&obj(json!({"size": 5})), Some(&old))),
        vec!["spec.size: Invalid value: 5: cannot shrink from 10 to 5"]
    );
}

#[test]
fn cel_compile_checks_know_the_resource_root() {
    let schema = json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}},
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.size() < 10 && self.kind == 'CFApp' && has(self.spec.a)"},
            {"rule": "self.metadata.labels.size() > 0"},
            {"rule": "[1, 2].all(k, k > 0) && [1, 2].exists(x, x == nope)"}
        ]
    });
    assert_eq!(
        structural_errors(&schema),
        vec![
            format!(
                "{BASE}.x-kubernetes-validations[1].rule: Invalid value: {{\"Rule\":\"self.metadata.labels.size() \\u003e 0\",\"Message\":\"\",\"MessageExpression\":\"\",\"Reason\":null,\"FieldPath\":\"\",\"OptionalOldSelf\":null}}: compilation failed: ERROR: <input>:1:14: undefined field 'labels'\n | self.metadata.labels.size() > 0\n | .............^"
            ),
            format!(
                "{BASE}.x-kubernetes-validations[2].rule: Invalid value: {{\"Rule\":\"[1, 2].all(k, k \\u003e 0) \\u0026\\u0026 [1, 2].exists(x, x == nope)\",\"Message\":\"\",\"MessageExpression\":\"\",\"Reason\":null,\"FieldPath\":\"\",\"OptionalOldSelf\":null}}: compilation failed: ERROR: <input>:1:47: undeclared reference to 'nope' (in container '')\n | [1, 2].all(k, k > 0) && [1, 2].exists(x, x == nope)\n | ..............................................^"
            ),
        ]
    );
}

#[test]
fn int_or_string_any_of_pattern_is_structural() {
    assert_eq!(
        spec_errors(json!({"type": "object", "properties": {
            "a": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "b": {"x-kubernetes-int-or-string": true, "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"pattern": "^[0-9]+%?$"}]},
            "c": {"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true}
        }})),
        vec![format!(
            "{BASE}.properties[spec].properties[c].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true"
        )]
    );
}

#[test]
fn status_subresource_restricts_the_root() {
    let schema = json!({"type": "object", "properties": {"status": {"type": "object"}}, "anyOf": [{"required": ["status"]}]});
    let errs = structural_errors_at(&schema, BASE, true);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with(&format!("{BASE}: Invalid value: {{")));
    assert!(
        errs[0]
            .ends_with("fields are allowed at the root of the schema if the status subresource is enabled")
    );
    assert_eq!(
        structural_errors_at(&json!({"type": "object"}), BASE, true),
        Vec::<String>::new()
    );
}

#[test]
fn embedded_metadata_is_checked() {
    let spec = json!({"type": "object", "properties": {
        "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}
    }});
    assert_eq!(
        check(
            spec,
            json!({"template": {"apiVersion": "a/b/c", "kind": "9Pod", "metadata": {"name": "a/b"}}})
        ),
        vec![
            r#"spec.template.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c"#,
            r#"spec.template.kind: Invalid value: "9Pod": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
            r#"spec.template.metadata.name: Invalid value: "a/b": may not contain '/'"#,
        ]
    );
}

#[test]
fn preserve_unknown_fields_still_prunes_declared_children() {
    let s = compiled(
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
            "strict": {"type": "object", "properties": {"a": {"type": "string"}}}
        }}),
    );
    let mut o = obj(json!({"anything": 1, "strict": {"a": "x", "b": "y"}}));
    assert_eq!(s.prune(&mut o), vec!["spec.strict.b"]);
    assert_eq!(o["spec"], json!({"anything": 1, "strict": {"a": "x"}}));
}

#[test]
fn list_duplicates_ratchet_on_update() {
    let s = compiled(json!({"type": "object", "properties": {
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
    }}));
    let old = obj(json!({"tags": ["a", "a"]}));
    assert_eq!(
        lines(&s.validate(&obj(json!({"tags": ["a", "a", "b"]})), Some(&old))),
        Vec::<String>::new()
    );
    let clean_old = obj(json!({"tags": ["a"]}));
    assert_eq!(
        lines(&s.validate(&obj(json!({"tags": ["a", "a"]})), Some(&clean_old))),
        vec![r#"spec.tags[1]: Duplicate value: "a""#]
    );
}

#[test]
fn compiled_schema_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledSchema>();
    let s = std::sync::Arc::new(compiled(json!({"type": "object", "properties": {
        "n": {"type": "integer", "x-kubernetes-validations": [{"rule": "self < 10", "message": "too big"}]}
    }})));
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || lines(&s.validate(&obj(json!({"n": 9 + i})), None)))
        })
        .collect();
    let results: Vec<Vec<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        results,
        vec![vec![], vec!["spec.n: Invalid value: 10: too big".to_string()]]
    );
}
