//! The typed view of an `openAPIV3Schema` that request handling works from, parsed once per CRD
//! version so pruning, defaulting and validation do not re-read JSON for every object.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Map, Value};

use super::cel::Rule;
use super::formats;

/// What `additionalProperties` says.
#[derive(Debug, Clone, Default)]
pub(crate) enum Additional {
    /// Absent.
    #[default]
    None,
    /// `true` or `false`.
    Bool(bool),
    /// A schema for the values.
    Schema(Box<Node>),
}

/// One schema node.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub ty: String,
    pub format: String,
    pub nullable: bool,
    pub properties: BTreeMap<String, Node>,
    pub items: Option<Box<Node>>,
    pub additional: Additional,
    pub required: Vec<String>,
    pub enum_values: Option<Vec<Value>>,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub max_length: Option<i64>,
    pub min_length: Option<i64>,
    pub max_items: Option<i64>,
    pub min_items: Option<i64>,
    pub max_properties: Option<i64>,
    pub min_properties: Option<i64>,
    pub unique_items: bool,
    pub multiple_of: Option<f64>,
    /// The pattern and, when it compiles, its regex (Go semantics).
    pub pattern: Option<(String, Option<Regex>)>,
    pub all_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    pub default: Option<Value>,
    pub preserve_unknown: bool,
    pub embedded: bool,
    pub int_or_string: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub map_type: Option<String>,
    pub rules: Vec<Rule>,
    /// Whether this node or any node below it carries `x-kubernetes-validations`.
    pub has_rules: bool,
}

fn int(m: &Map<String, Value>, k: &str) -> Option<i64> {
    m.get(k)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

fn float(m: &Map<String, Value>, k: &str) -> Option<f64> {
    m.get(k).and_then(Value::as_f64)
}

fn flag(m: &Map<String, Value>, k: &str) -> bool {
    m.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn string(m: &Map<String, Value>, k: &str) -> String {
    m.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn nodes(m: &Map<String, Value>, k: &str) -> Vec<Node> {
    m.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Node::parse).collect())
        .unwrap_or_default()
}

impl Node {
    /// Parses a schema; ill-typed keywords are ignored (the CRD decoder would have refused them).
    pub(crate) fn parse(v: &Value) -> Node {
        let Some(m) = v.as_object() else {
            return Node::default();
        };
        let ty = string(m, "type");
        let int_or_string = flag(m, "x-kubernetes-int-or-string");
        let raw_format = string(m, "format");
        let types: Vec<&str> = if int_or_string {
            vec!["integer", "string"]
        } else if ty.is_empty() {
            vec![]
        } else {
            vec![ty.as_str()]
        };
        let format = formats::effective_format(&types, &raw_format);
        let properties = m
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.iter().map(|(k, v)| (k.clone(), Node::parse(v))).collect())
            .unwrap_or_default();
        let additional = match m.get("additionalProperties") {
            Some(Value::Bool(b)) => Additional::Bool(*b),
            Some(v @ Value::Object(_)) => Additional::Schema(Box::new(Node::parse(v))),
            _ => Additional::None,
        };
        let pattern = m
            .get("pattern")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let re = super::regexp::compile(p).ok();
                (p.to_string(), re)
            });
        let rules = m
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(Rule::parse).collect())
            .unwrap_or_default();
        let mut node = Node {
            ty,
            format,
            nullable: flag(m, "nullable"),
            properties,
            items: m
                .get("items")
                .filter(|v| v.is_object())
                .map(|v| Box::new(Node::parse(v))),
            additional,
            required: m
                .get("required")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            enum_values: m
                .get("enum")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .cloned(),
            maximum: float(m, "maximum"),
            exclusive_maximum: flag(m, "exclusiveMaximum"),
            minimum: float(m, "minimum"),
            exclusive_minimum: flag(m, "exclusiveMinimum"),
            max_length: int(m, "maxLength"),
            min_length: int(m, "minLength"),
            max_items: int(m, "maxItems"),
            min_items: int(m, "minItems"),
            max_properties: int(m, "maxProperties"),
            min_properties: int(m, "minProperties"),
            unique_items: flag(m, "uniqueItems"),
            multiple_of: float(m, "multipleOf"),
            pattern,
            all_of: nodes(m, "allOf"),
            any_of: nodes(m, "anyOf"),
            one_of: nodes(m, "oneOf"),
            not: m
                .get("not")
                .filter(|v| v.is_object())
                .map(|v| Box::new(Node::parse(v))),
            default: m.get("default").cloned(),
            preserve_unknown: flag(m, "x-kubernetes-preserve-unknown-fields"),
            embedded: flag(m, "x-kubernetes-embedded-resource"),
            int_or_string,
            list_type: m
                .get("x-kubernetes-list-type")
                .and_then(Value::as_str)
                .map(str::to_string),
            list_map_keys: m
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            map_type: m
                .get("x-kubernetes-map-type")
                .and_then(Value::as_str)
                .map(str::to_string),
            rules,
            has_rules: false,
        };
        node.has_rules = !node.rules.is_empty()
            || node.items.as_deref().is_some_and(|n| n.has_rules)
            || node.properties.values().any(|n| n.has_rules)
            || node.additional_schema().is_some_and(|n| n.has_rules);
        node
    }

    /// The schema for the values of a map node.
    pub(crate) fn additional_schema(&self) -> Option<&Node> {
        match &self.additional {
            Additional::Schema(s) => Some(s),
            _ => None,
        }
    }

    /// The types kube-openapi validates against (`x-kubernetes-int-or-string` is both).
    pub(crate) fn types(&self) -> Vec<&str> {
        if self.int_or_string {
            vec!["integer", "string"]
        } else if self.ty.is_empty() {
            vec![]
        } else {
            vec![self.ty.as_str()]
        }
    }

    /// The schema that applies to the field `key` of an object validated by this node.
    pub(crate) fn field(&self, key: &str) -> Option<&Node> {
        self.properties.get(key).or_else(|| self.additional_schema())
    }
}
