//! The OpenAPI value validation kube-apiserver runs on custom resources (kube-openapi's
//! `SchemaValidator`, with CRD validation ratcheting on update), reproduced rule by rule so the
//! causes, their order and their texts match.

use serde_json::Value;

use super::Cause;
use super::errors::{self, Bad, FPath};
use super::formats;
use super::gofmt::{self, Num};
use super::node::{Additional, Node};

/// The codes of kube-openapi's `errors.Validation` that the conversion to field errors tells apart.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Code {
    InvalidType,
    Required,
    TooLong,
    Enum,
    MaxItems,
    TooManyProperties,
    Other,
}

/// One kube-openapi error.
#[derive(Debug, Clone)]
enum OaErr {
    /// An `*errors.Validation`.
    Validation {
        code: Code,
        name: String,
        value: Option<Value>,
        valid: i64,
        values: Vec<Value>,
        message: String,
    },
    /// Any other error: reported at the validator's root path.
    Plain(String),
}

#[derive(Default)]
struct Res {
    errors: Vec<OaErr>,
    matches: usize,
}

impl Res {
    fn merge(&mut self, other: Res) {
        self.errors.extend(other.errors);
        self.matches += other.matches;
    }

    fn valid(&self) -> bool {
        self.errors.is_empty()
    }
}

const IN: &str = "body";

fn v_err(code: Code, name: &str, value: Option<Value>, message: String) -> OaErr {
    OaErr::Validation {
        code,
        name: name.to_string(),
        value,
        valid: -1,
        values: vec![],
        message,
    }
}

fn invalid_type(name: &str, ty: &str, value: &str) -> OaErr {
    let message = format!("{name} in {IN} must be of type {ty}: {}", gofmt::quote(value));
    v_err(
        Code::InvalidType,
        name,
        Some(Value::String(value.to_string())),
        message,
    )
}

fn num_value(n: Num) -> Value {
    match n {
        Num::Int(i) => Value::from(i),
        Num::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
    }
}

/// Validates `data` against `node` and converts the result into causes under `fld`
/// (`None` for a whole object, `Some("status")` for the status subresource, ...).
pub(crate) fn validate(node: &Node, data: &Value, old: Option<&Value>, fld: &FPath) -> Vec<Cause> {
    let v = Validator {
        ratchet: old.is_some(),
    };
    let res = v.node(node, data, "", old, true);
    res.errors.into_iter().map(|e| to_cause(e, fld)).collect()
}

fn to_cause(e: OaErr, fld: &FPath) -> Cause {
    match e {
        OaErr::Plain(msg) => errors::invalid(fld, Bad::Str(String::new()), &msg),
        OaErr::Validation {
            code,
            name,
            value,
            valid,
            values,
            message,
        } => {
            let path = if !name.is_empty() && name != "." {
                fld.child(name.trim_start_matches('.'))
            } else {
                fld.clone()
            };
            let bad = || value.as_ref().map_or(Bad::Str(String::new()), Bad::of);
            match code {
                Code::Required => errors::required(&path, ""),
                Code::Enum => {
                    let allowed: Vec<String> = values
                        .iter()
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => gofmt::json(other),
                        })
                        .collect();
                    let bad = value.as_ref().map_or(Bad::Nil, Bad::of);
                    errors::not_supported(&path, bad, &allowed)
                }
                Code::TooLong => errors::too_long(&path, valid),
                Code::MaxItems | Code::TooManyProperties => {
                    let actual = value.as_ref().and_then(Value::as_i64).unwrap_or(-1);
                    errors::too_many(&path, actual, valid)
                }
                Code::InvalidType => errors::type_invalid(&path, bad(), &message),
                Code::Other => errors::invalid(&path, bad(), &message),
            }
        }
    }
}

/// Deep equality as CRD validation ratcheting decides it (`CorrelatedObject.CachedDeepEqual`):
/// map-lists compare item by key, fields without a schema never compare equal.
pub(crate) fn ratchet_equal(node: Option<&Node>, old: &Value, new: &Value) -> bool {
    match (old, new) {
        (Value::Null, Value::Null) => true,
        (Value::Array(o), Value::Array(n)) => {
            if o.len() != n.len() {
                return false;
            }
            let Some(node) = node else {
                return false;
            };
            let is_map_list = node.ty == "array"
                && node.list_type.as_deref() == Some("map")
                && !node.list_map_keys.is_empty();
            if !is_map_list {
                return o == n;
            }
            n.iter().all(|item| match map_list_get(node, o, item) {
                Some(old_item) => ratchet_equal(node.items.as_deref(), old_item, item),
                None => false,
            })
        }
        (Value::Object(o), Value::Object(n)) => {
            if o.len() != n.len() {
                return false;
            }
            let Some(node) = node else {
                return false;
            };
            n.iter().all(|(k, v)| match (o.get(k), node.field(k)) {
                (Some(ov), Some(child)) => ratchet_equal(Some(child), ov, v),
                _ => false,
            })
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        (o, n) => o == n,
    }
}

/// The old item of a map-list that correlates with `item` (`MapList.Get`).
pub(crate) fn map_list_get<'a>(node: &Node, old: &'a [Value], item: &Value) -> Option<&'a Value> {
    if node.list_map_keys.is_empty() {
        return None;
    }
    let key_of = |v: &Value| -> Option<Vec<Value>> {
        let m = v.as_object()?;
        node.list_map_keys
            .iter()
            .map(|k| {
                m.get(k)
                    .filter(|x| !x.is_object() && !x.is_array() && !x.is_null())
                    .cloned()
            })
            .collect()
    };
    let key = key_of(item)?;
    old.iter().find(|o| key_of(o).as_ref() == Some(&key))
}

fn is_json_integer(f: f64) -> bool {
    f.is_finite() && f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0
}

struct Validator {
    ratchet: bool,
}

impl Validator {
    fn child_path(path: &str, name: &str) -> String {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    }

    /// `SchemaValidator.Validate`, wrapped by the ratcheting validator when `old` correlates.
    fn node(&self, node: &Node, data: &Value, path: &str, old: Option<&Value>, root: bool) -> Res {
        let mut res = self.node_inner(node, data, path, old, root);
        if self.ratchet
            && !res.valid()
            && let Some(o) = old
            && ratchet_equal(Some(node), o, data)
        {
            res.errors.clear();
        }
        res
    }

    fn node_inner(&self, node: &Node, data: &Value, path: &str, old: Option<&Value>, root: bool) -> Res {
        let mut res = Res::default();
        let types = node.types();
        let type_applies = !types.is_empty() || !node.format.is_empty();
        if data.is_null() {
            if type_applies && !types.is_empty() && !node.nullable {
                res.errors.push(invalid_type(path, &types.join(","), "null"));
            }
            if let Some(e) = enum_check(node, data, path) {
                res.errors.push(e);
            }
            return res;
        }
        if type_applies {
            res.merge(counted(type_check(node, &types, data, path)));
            res.matches += 1;
        }
        res.merge(self.junctions(node, data, path, old));
        res.matches += 1;
        if let Value::String(s) = data {
            res.merge(counted(string_check(node, s, path)));
            res.matches += 1;
            if !node.format.is_empty() && formats::is_string_format(&node.format) {
                let errs = if formats::validates(&node.format, s) {
                    vec![]
                } else {
                    vec![format_fail(path, &node.format, s)]
                };
                res.merge(counted(errs));
                res.matches += 1;
            }
        }
        if let Value::Number(n) = data {
            res.merge(counted(number_check(node, &types, Num::of(n), path)));
            res.matches += 1;
        }
        if let Value::Array(items) = data {
            res.merge(self.slice(node, items, path, old));
            res.matches += 1;
        }
        res.merge(counted(enum_check(node, data, path).into_iter().collect()));
        res.matches += 1;
        if let Value::Object(m) = data {
            res.merge(self.object(node, m, path, old, root));
            res.matches += 1;
        }
        res.matches += 1;
        res
    }

    fn junctions(&self, node: &Node, data: &Value, path: &str, old: Option<&Value>) -> Res {
        let mut main = Res::default();
        if !node.any_of.is_empty() {
            let mut best: Option<Res> = None;
            let mut first_success: Option<Res> = None;
            let mut succeeded = false;
            for branch in &node.any_of {
                let r = self.node_inner(branch, data, path, old, false);
                if r.valid() {
                    succeeded = true;
                    best = None;
                    first_success = Some(r);
                    break;
                }
                if best.as_ref().is_none_or(|b| r.matches > b.matches) {
                    best = Some(r);
                }
            }
            if !succeeded {
                main.errors.push(OaErr::Plain(format!(
                    "{} must validate at least one schema (anyOf)",
                    gofmt::quote(path)
                )));
            }
            if let Some(b) = best {
                main.merge(b);
            } else if let Some(s) = first_success {
                main.merge(s);
            }
        }
        if !node.one_of.is_empty() {
            let mut best: Option<Res> = None;
            let mut first_success: Option<Res> = None;
            let mut validated = 0;
            for branch in &node.one_of {
                let r = self.node_inner(branch, data, path, old, false);
                if r.valid() {
                    validated += 1;
                    best = None;
                    if first_success.is_none() {
                        first_success = Some(r);
                    }
                    continue;
                }
                if validated == 0 && best.as_ref().is_none_or(|b| r.matches > b.matches) {
                    best = Some(r);
                }
            }
            if validated != 1 {
                let extra = if validated == 0 {
                    "Found none valid".to_string()
                } else {
                    format!("Found {validated} valid alternatives")
                };
                main.errors.push(OaErr::Plain(format!(
                    "{} must validate one and only one schema (oneOf). {extra}",
                    gofmt::quote(path)
                )));
                if let Some(b) = best {
                    main.merge(b);
                }
            } else if let Some(s) = first_success {
                main.merge(s);
            }
        }
        if !node.all_of.is_empty() {
            let mut validated = 0;
            for branch in &node.all_of {
                let r = self.node_inner(branch, data, path, old, false);
                if r.valid() {
                    validated += 1;
                }
                main.merge(r);
            }
            if validated != node.all_of.len() {
                let extra = if validated == 0 { ". None validated" } else { "" };
                main.errors.push(OaErr::Plain(format!(
                    "{} must validate all the schemas (allOf){extra}",
                    gofmt::quote(path)
                )));
            }
        }
        if let Some(not) = &node.not
            && self.node_inner(not, data, path, old, false).valid()
        {
            main.errors.push(OaErr::Plain(format!(
                "{} must not validate the schema (not)",
                gofmt::quote(path)
            )));
        }
        main
    }

    fn slice(&self, node: &Node, items: &[Value], path: &str, old: Option<&Value>) -> Res {
        let mut res = Res::default();
        if let Some(item_schema) = &node.items {
            let old_items = old.and_then(Value::as_array);
            let is_map_list = node.ty == "array" && node.list_type.as_deref() == Some("map");
            for (i, item) in items.iter().enumerate() {
                let old_item = if is_map_list {
                    old_items.and_then(|o| map_list_get(node, o, item))
                } else {
                    None
                };
                res.merge(self.node(item_schema, item, &format!("{path}[{i}]"), old_item, false));
            }
        }
        let size = items.len() as i64;
        if let Some(min) = node.min_items
            && size < min
        {
            let msg = format!("{path} in {IN} should have at least {min} items");
            res.errors
                .push(v_err(Code::Other, path, Some(Value::from(size)), msg));
        }
        if let Some(max) = node.max_items
            && size > max
        {
            let msg = format!("{path} in {IN} should have at most {max} items");
            res.errors.push(OaErr::Validation {
                code: Code::MaxItems,
                name: path.to_string(),
                value: Some(Value::from(size)),
                valid: max,
                values: vec![],
                message: msg,
            });
        }
        if node.unique_items {
            let dup = items
                .iter()
                .enumerate()
                .any(|(i, a)| items[..i].iter().any(|b| b == a));
            if dup {
                res.errors.push(v_err(
                    Code::Other,
                    path,
                    None,
                    format!("{path} in {IN} shouldn't contain duplicates"),
                ));
            }
        }
        res
    }

    fn object(
        &self,
        node: &Node,
        m: &serde_json::Map<String, Value>,
        path: &str,
        old: Option<&Value>,
        root: bool,
    ) -> Res {
        let mut res = Res::default();
        let n = m.len() as i64;
        if let Some(min) = node.min_properties
            && n < min
        {
            let msg = format!("{path} in {IN} should have at least {min} properties");
            res.errors
                .push(v_err(Code::Other, path, Some(Value::from(n)), msg));
        }
        if let Some(max) = node.max_properties
            && n > max
        {
            let msg = format!("{path} in {IN} should have at most {max} properties");
            res.errors.push(OaErr::Validation {
                code: Code::TooManyProperties,
                name: path.to_string(),
                value: Some(Value::from(n)),
                valid: max,
                values: vec![],
                message: msg,
            });
        }
        let old_map = old.and_then(Value::as_object);
        match &node.additional {
            Additional::Bool(false) => {
                for k in m.keys() {
                    if !node.properties.contains_key(k) {
                        let msg = format!("{path}.{k} in {IN} is a forbidden property");
                        res.errors
                            .push(v_err(Code::Other, path, Some(Value::String(k.clone())), msg));
                    }
                }
            }
            Additional::Schema(schema) => {
                for (k, v) in m {
                    if !node.properties.contains_key(k) {
                        let old_v = old_map.and_then(|o| o.get(k));
                        res.merge(self.node(schema, v, &format!("{path}.{k}"), old_v, false));
                    }
                }
            }
            _ => {}
        }
        for (name, prop) in &node.properties {
            if let Some(v) = m.get(name) {
                let correlates = !(root && (name == "kind" || name == "apiVersion"));
                let old_v = if correlates {
                    old_map.and_then(|o| o.get(name))
                } else {
                    None
                };
                res.merge(self.node(prop, v, &Self::child_path(path, name), old_v, false));
            }
        }
        for k in &node.required {
            if !m.contains_key(k) {
                let name = format!("{path}.{k}");
                let msg = format!("{name} in {IN} is required");
                res.errors.push(v_err(Code::Required, &name, None, msg));
            }
        }
        res
    }
}

fn counted(errors: Vec<OaErr>) -> Res {
    let matches = usize::from(errors.is_empty());
    Res { errors, matches }
}

fn format_fail(path: &str, format: &str, s: &str) -> OaErr {
    let message = format!("{path} in {IN} must be of type {format}: {}", gofmt::quote(s));
    v_err(
        Code::InvalidType,
        path,
        Some(Value::String(s.to_string())),
        message,
    )
}

/// kube-openapi's `typeValidator`.
fn type_check(node: &Node, types: &[&str], data: &Value, path: &str) -> Vec<OaErr> {
    let (sch_type, format, is_str_or_slice) = match data {
        Value::Bool(_) => ("boolean", "", false),
        Value::String(_) => ("string", "", true),
        Value::Number(n) => match Num::of(n) {
            Num::Int(_) => ("integer", "int64", false),
            Num::Float(_) => ("number", "double", false),
        },
        Value::Array(_) => ("array", "", true),
        Value::Object(_) => ("object", "", false),
        Value::Null => return vec![],
    };
    let has = |t: &str| types.contains(&t);
    let is_float_int = sch_type == "number" && data.as_f64().is_some_and(is_json_integer) && has("integer");
    let is_int_float = sch_type == "integer" && has("number");
    let fmt = node.format.as_str();
    // A format only judges non-string values whose type does not already match.
    let format_compatible = has(sch_type) || format == fmt || is_float_int || is_int_float;
    if !(is_str_or_slice || fmt.is_empty() || format_compatible) {
        return vec![invalid_type(path, fmt, format)];
    }
    // kube-openapi lets any string or array through when a non-numeric schema has a format.
    let numeric = has("number") || has("integer");
    if is_str_or_slice && !fmt.is_empty() && !numeric {
        return vec![];
    }
    if !(has(sch_type) || is_float_int || is_int_float) {
        return vec![invalid_type(path, &types.join(","), sch_type)];
    }
    vec![]
}

/// kube-openapi's `stringValidator`, which stops at the first failure.
fn string_check(node: &Node, s: &str, path: &str) -> Vec<OaErr> {
    let len = s.chars().count() as i64;
    let value = || Some(Value::String(s.to_string()));
    if let Some(max) = node.max_length
        && len > max
    {
        let msg = format!("{path} in {IN} should be at most {max} chars long");
        return vec![OaErr::Validation {
            code: Code::TooLong,
            name: path.into(),
            value: value(),
            valid: max,
            values: vec![],
            message: msg,
        }];
    }
    if let Some(min) = node.min_length
        && len < min
    {
        return vec![v_err(
            Code::Other,
            path,
            value(),
            format!("{path} in {IN} should be at least {min} chars long"),
        )];
    }
    if let Some((pattern, re)) = &node.pattern {
        match re {
            Some(re) if re.is_match(s) => {}
            Some(_) => {
                return vec![v_err(
                    Code::Other,
                    path,
                    value(),
                    format!("{path} in {IN} should match '{pattern}'"),
                )];
            }
            None => {
                let err = super::regexp::compile(pattern).err().unwrap_or_default();
                let msg = format!("{path} in {IN} should match '{pattern}, but pattern is invalid: {err}'");
                return vec![v_err(Code::Other, path, value(), msg)];
            }
        }
    }
    vec![]
}

/// kube-openapi's `IsValueValidAgainstRange`.
fn range_check(val: Num, type_name: &str, format: &str, prefix: &str, path: &str) -> Option<OaErr> {
    let rep = match val {
        Num::Int(i) => i.to_string(),
        Num::Float(f) => gofmt::float_f(f),
    };
    let bad = match type_name {
        "integer" => match format {
            "int32" => rep.parse::<i32>().is_err(),
            _ => rep.parse::<i64>().is_err(),
        },
        _ => match format {
            "float" => rep
                .parse::<f64>()
                .map_or(true, |f| f.is_finite() && f.abs() > f64::from(f32::MAX)),
            _ => false,
        },
    };
    if !bad {
        return None;
    }
    Some(OaErr::Plain(if format.is_empty() {
        format!("{prefix} value must be of type {type_name} (default format) in {path}")
    } else {
        format!("{prefix} value must be of type {type_name} with format {format} in {path}")
    }))
}

/// kube-openapi's `numberValidator`.
fn number_check(node: &Node, types: &[&str], val: Num, path: &str) -> Vec<OaErr> {
    let (type_name, format) = match types {
        ["integer"] => (
            "integer",
            if matches!(node.format.as_str(), "int32" | "int64") {
                node.format.as_str()
            } else {
                ""
            },
        ),
        ["number"] => (
            "number",
            if matches!(node.format.as_str(), "float" | "double") {
                node.format.as_str()
            } else {
                ""
            },
        ),
        _ => ("", ""),
    };
    let mut out: Vec<OaErr> = range_check(val, type_name, format, "Checked", path)
        .into_iter()
        .collect();
    let data = num_value(val);
    let mut multiple = vec![];
    if let Some(factor) = node.multiple_of {
        let bound = range_check(Num::Float(factor), type_name, format, "MultipleOf", path);
        let native = bound.is_none();
        multiple.extend(bound);
        let msg_of = |f: String| format!("{path} in {IN} should be a multiple of {f}");
        match val {
            Num::Int(i) if native => {
                let f = factor as i64;
                if f <= 0 {
                    multiple.push(v_err(
                        Code::Other,
                        path,
                        Some(Value::from(f)),
                        format!("factor MultipleOf declared for {path} must be positive: {f}"),
                    ));
                } else if (i / f) * f != i {
                    multiple.push(v_err(
                        Code::Other,
                        path,
                        Some(data.clone()),
                        msg_of(f.to_string()),
                    ));
                }
            }
            _ => {
                let d = val.as_f64();
                if factor <= 0.0 {
                    multiple.push(v_err(
                        Code::Other,
                        path,
                        Some(num_value(Num::Float(factor))),
                        format!(
                            "factor MultipleOf declared for {path} must be positive: {}",
                            gofmt::float_v(factor)
                        ),
                    ));
                } else {
                    let mult = if factor < 1.0 {
                        1.0 / factor * d
                    } else {
                        d / factor
                    };
                    if !is_json_integer(mult) {
                        multiple.push(v_err(
                            Code::Other,
                            path,
                            Some(data.clone()),
                            msg_of(gofmt::float_v(factor)),
                        ));
                    }
                }
            }
        }
    }
    let bound_check = |bound: f64, exclusive: bool, is_max: bool, prefix: &str| -> Vec<OaErr> {
        let mut errs: Vec<OaErr> = vec![];
        let range = range_check(Num::Float(bound), type_name, format, prefix, path);
        let native = range.is_none();
        errs.extend(range);
        let word = match (is_max, exclusive) {
            (true, false) => "less than or equal to",
            (true, true) => "less than",
            (false, false) => "greater than or equal to",
            (false, true) => "greater than",
        };
        let (fails, shown) = match val {
            Num::Int(i) if native => {
                let b = bound as i64;
                let fails = if is_max {
                    (!exclusive && i > b) || (exclusive && i >= b)
                } else {
                    (!exclusive && i < b) || (exclusive && i <= b)
                };
                (fails, b.to_string())
            }
            _ => {
                let d = val.as_f64();
                let fails = if is_max {
                    (!exclusive && d > bound) || (exclusive && d >= bound)
                } else {
                    (!exclusive && d < bound) || (exclusive && d <= bound)
                };
                (fails, gofmt::float_v(bound))
            }
        };
        if fails {
            errs.push(v_err(
                Code::Other,
                path,
                Some(data.clone()),
                format!("{path} in {IN} should be {word} {shown}"),
            ));
        }
        errs
    };
    let maximum = node
        .maximum
        .map(|m| bound_check(m, node.exclusive_maximum, true, "Maximum boundary"))
        .unwrap_or_default();
    let minimum = node
        .minimum
        .map(|m| bound_check(m, node.exclusive_minimum, false, "Minimum boundary"))
        .unwrap_or_default();
    out.extend(multiple);
    out.extend(minimum);
    out.extend(maximum);
    out
}

/// Whether `data` equals `allowed` after Go's `reflect.Value.Convert` to the enum value's type.
fn enum_matches(data: &Value, allowed: &Value) -> bool {
    match (data, allowed) {
        (Value::Null, _) => false,
        (Value::Number(d), Value::Number(a)) => match (Num::of(d), Num::of(a)) {
            (Num::Int(x), Num::Int(y)) => x == y,
            (Num::Float(x), Num::Int(y)) => x.is_finite() && (x as i64) == y,
            (x, Num::Float(y)) => x.as_f64() == y,
        },
        // Go converts an integer to the string holding that code point.
        (Value::Number(d), Value::String(a)) => match Num::of(d) {
            Num::Int(i) => {
                let c = u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}');
                a.chars().count() == 1 && a.starts_with(c)
            }
            Num::Float(_) => false,
        },
        (d, a) => d == a,
    }
}

fn enum_check(node: &Node, data: &Value, path: &str) -> Option<OaErr> {
    let allowed = node.enum_values.as_ref()?;
    if allowed.iter().any(|a| enum_matches(data, a)) {
        return None;
    }
    let listed: Vec<String> = allowed.iter().map(go_sprint).collect();
    let message = format!("{path} in {IN} should be one of [{}]", listed.join(" "));
    Some(OaErr::Validation {
        code: Code::Enum,
        name: path.to_string(),
        value: if data.is_null() { None } else { Some(data.clone()) },
        valid: -1,
        values: allowed.clone(),
        message,
    })
}

/// `fmt.Sprint` of a decoded JSON value, for the (unused by callers) enum failure text.
fn go_sprint(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => Num::of(n).v(),
        Value::Null => "<nil>".into(),
        other => gofmt::json(other),
    }
}
