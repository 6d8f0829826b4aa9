//! `x-kubernetes-validations`: the CEL rules of a CRD schema. Parsing and evaluation come from the
//! `cel` crate with the Kubernetes function libraries of `kube-cel`; this module adds what
//! kube-apiserver layers on top — the compile-time checks against the schema's types, the
//! conversion of object data into typed CEL values, transition rules, ratcheting, and the exact
//! error texts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kube_cel::KubeCelExt;
use kube_cel::cel::objects::{Key, Map as CelMap, OptionalValue};
use kube_cel::cel::parser::{Expression, Parser};
use kube_cel::cel::{Context, ExecutionError, Value as CelValue};
use serde_json::Value;

use super::Cause;
use super::errors::{self, Bad, FPath};
use super::formats;
use super::gofmt;
use super::node::Node;
use super::openapi::{map_list_get, ratchet_equal};

use kube_cel::cel::common::ast::{EntryExpr, Expr, LiteralValue};

/// One `x-kubernetes-validations` entry, parsed once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rule {
    pub rule: String,
    pub message: String,
    pub message_expression: String,
    pub reason: Option<String>,
    pub field_path: String,
    pub optional_old_self: Option<bool>,
    /// The parsed rule, absent when it does not parse or is blank.
    pub program: Option<Expression>,
    /// The parsed message expression.
    pub message_program: Option<Expression>,
    pub uses_old_self: bool,
}

/// Parses CEL as kube-apiserver's environment does (optional syntax enabled).
fn parse(src: &str) -> Result<Expression, kube_cel::cel::ParseErrors> {
    Parser::new().enable_optional_syntax(true).parse(src)
}

/// The function optional field selection is routed through (see [`runnable`]).
const OPT_SELECT_FN: &str = "__kubefoundry_optional_select";

/// Rewrites a parsed expression for evaluation: the `cel` crate's own `x.?f` fails on a missing
/// key and nests optionals when chained, so it is replaced by a function with CEL semantics.
fn runnable(mut e: Expression) -> Expression {
    rewrite(&mut e);
    e
}

fn rewrite(e: &mut Expression) {
    match &mut e.expr {
        Expr::Call(call) => {
            if call.func_name == "_?._" {
                call.func_name = OPT_SELECT_FN.to_string();
            }
            if let Some(t) = call.target.as_deref_mut() {
                rewrite(t);
            }
            call.args.iter_mut().for_each(rewrite);
        }
        Expr::Select(sel) => rewrite(&mut sel.operand),
        Expr::Comprehension(c) => {
            rewrite(&mut c.iter_range);
            rewrite(&mut c.accu_init);
            rewrite(&mut c.loop_cond);
            rewrite(&mut c.loop_step);
            rewrite(&mut c.result);
        }
        Expr::List(l) => l.elements.iter_mut().for_each(rewrite),
        Expr::Map(m) => {
            for entry in &mut m.entries {
                if let EntryExpr::MapEntry(me) = &mut entry.expr {
                    rewrite(&mut me.key);
                    rewrite(&mut me.value);
                }
            }
        }
        _ => {}
    }
}

/// `x.?f`: `optional.none()` when `x` is none or lacks `f`, else `optional.of(x.f)`.
fn optional_select(target: CelValue, field: Arc<String>) -> Result<CelValue, ExecutionError> {
    let inner = match &target {
        CelValue::Opaque(o) if o.runtime_type_name() == "optional_type" => {
            match <&OptionalValue>::try_from(&target)?.value() {
                Some(v) => v.clone(),
                None => return Ok(CelValue::Opaque(Arc::new(OptionalValue::none()))),
            }
        }
        other => other.clone(),
    };
    let found = match &inner {
        CelValue::Map(m) => m.map.get(&Key::String(field.clone())).cloned(),
        _ => return Err(ExecutionError::NoSuchOverload),
    };
    Ok(CelValue::Opaque(Arc::new(match found {
        Some(v) => OptionalValue::of(v),
        None => OptionalValue::none(),
    })))
}

/// `dyn(x)`: a type-checker hint, the identity at runtime.
fn dyn_identity(v: CelValue) -> Result<CelValue, ExecutionError> {
    Ok(v)
}

impl Rule {
    /// Reads a rule object; ill-typed members are treated as absent.
    pub(crate) fn parse(v: &Value) -> Rule {
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let rule = text("rule");
        let message_expression = text("messageExpression");
        let program = if rule.trim().is_empty() {
            None
        } else {
            parse(&rule).ok().map(runnable)
        };
        let message_program = if message_expression.trim().is_empty() {
            None
        } else {
            parse(&message_expression).ok().map(runnable)
        };
        let uses_old_self = program
            .as_ref()
            .is_some_and(|p| p.references().has_variable("oldSelf"));
        Rule {
            rule,
            message: text("message"),
            message_expression,
            reason: v.get("reason").and_then(Value::as_str).map(str::to_string),
            field_path: text("fieldPath"),
            optional_old_self: v.get("optionalOldSelf").and_then(Value::as_bool),
            program,
            message_program,
            uses_old_self,
        }
    }

    /// The rule as the internal `apiextensions.ValidationRule` marshals to JSON (field names
    /// capitalized, since the internal type carries no JSON tags).
    pub(crate) fn go_json(&self) -> String {
        let opt = |s: &Option<String>| s.as_deref().map_or("null".to_string(), gofmt::json_string);
        format!(
            "{{\"Rule\":{},\"Message\":{},\"MessageExpression\":{},\"Reason\":{},\"FieldPath\":{},\"OptionalOldSelf\":{}}}",
            gofmt::json_string(&self.rule),
            gofmt::json_string(&self.message),
            gofmt::json_string(&self.message_expression),
            opt(&self.reason),
            gofmt::json_string(&self.field_path),
            self.optional_old_self
                .map_or("null".to_string(), |b| b.to_string()),
        )
    }

    fn error_string(&self) -> String {
        if self.message.is_empty() {
            self.rule.trim().to_string()
        } else {
            self.message.trim().to_string()
        }
    }

    fn message_or_default(&self) -> String {
        if self.message.is_empty() {
            format!("failed rule: {}", self.error_string())
        } else {
            self.message.trim().to_string()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Types, as kube-apiserver derives CEL declarations from a structural schema.

/// A CEL type as far as this checker knows it; `Unknown` means "do not judge".
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    Unknown,
    Dyn,
    Null,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Duration,
    Timestamp,
    Type,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    Object(Arc<BTreeMap<String, Ty>>),
    Optional(Box<Ty>),
}

impl Ty {
    /// Whether this is a concrete type other than `want` (so a mismatch is certain).
    fn certainly_not(&self, want: &Ty) -> bool {
        !matches!(self, Ty::Unknown | Ty::Dyn) && self != want
    }
}

/// `cel.Escape`: how a property name is spelled in CEL, or `None` when it cannot be accessed.
pub(crate) fn escape(ident: &str) -> Option<String> {
    const RESERVED: &[&str] = &[
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ];
    if ident.is_empty() || ident.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    if RESERVED.contains(&ident) {
        return Some(format!("__{ident}__"));
    }
    let mut out = String::with_capacity(ident.len());
    let chars: Vec<char> = ident.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '_' if chars.get(i + 1) == Some(&'_') => {
                out.push_str("__underscores__");
                i += 2;
                continue;
            }
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
        i += 1;
    }
    Some(out)
}

/// `SchemaDeclType`: the CEL type of values validated by `node`.
pub(crate) fn decl_type(node: &Node, resource_root: bool) -> Option<Ty> {
    if node.int_or_string {
        return Some(Ty::Dyn);
    }
    let base = match node.ty.as_str() {
        "array" => {
            let items = node.items.as_deref()?;
            Ty::List(Box::new(decl_type(items, items.embedded)?))
        }
        "object" => {
            if let Some(add) = node.additional_schema() {
                Ty::Map(Box::new(Ty::String), Box::new(decl_type(add, add.embedded)?))
            } else {
                let mut fields = BTreeMap::new();
                for (name, prop) in &node.properties {
                    if let (Some(t), Some(n)) = (decl_type(prop, prop.embedded), escape(name)) {
                        fields.insert(n, t);
                    }
                }
                Ty::Object(Arc::new(fields))
            }
        }
        "string" => match node.format.as_str() {
            "byte" => Ty::Bytes,
            "duration" => Ty::Duration,
            "date" | "date-time" => Ty::Timestamp,
            _ => Ty::String,
        },
        "boolean" => Ty::Bool,
        "number" => Ty::Double,
        "integer" => Ty::Int,
        _ => return None,
    };
    if !resource_root {
        return Some(base);
    }
    // Resource roots always expose their type meta and the name fields of their metadata.
    let mut fields = match base {
        Ty::Object(f) => (*f).clone(),
        _ => BTreeMap::new(),
    };
    let has_full_meta = fields.get("kind") == Some(&Ty::String)
        && fields.get("apiVersion") == Some(&Ty::String)
        && matches!(fields.get("metadata"), Some(Ty::Object(m)) if m.get("name") == Some(&Ty::String) && m.get("generateName") == Some(&Ty::String));
    if !has_full_meta {
        fields.insert("kind".into(), Ty::String);
        fields.insert("apiVersion".into(), Ty::String);
        let mut meta = BTreeMap::new();
        meta.insert("name".to_string(), Ty::String);
        meta.insert("generateName".to_string(), Ty::String);
        fields.insert("metadata".into(), Ty::Object(Arc::new(meta)));
    }
    Some(Ty::Object(Arc::new(fields)))
}

// ---------------------------------------------------------------------------------------------
// Compile-time checking.

/// Where a checker error points: a field selection (`.name`) or an identifier.
#[derive(Debug, Clone)]
enum Anchor {
    Select(String),
    Ident(String),
}

#[derive(Debug, Clone)]
struct CheckError {
    message: String,
    anchor: Anchor,
}

const NAMESPACES: &[&str] = &[
    "optional",
    "sets",
    "lists",
    "strings",
    "math",
    "base64",
    "format",
    "cel",
    "jsonpatch",
    "quantity",
];

const GLOBAL_FUNCTIONS: &[&str] = &[
    "size",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "dyn",
    "type",
    "duration",
    "timestamp",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "quantity",
    "isQuantity",
    "url",
    "isURL",
    "ip",
    "isIP",
    "cidr",
    "isCIDR",
    "semver",
    "isSemver",
    "has",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    "optional",
    "max",
    "min",
];

const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

struct Checker {
    errors: Vec<CheckError>,
}

impl Checker {
    fn check(&mut self, e: &Expression, scope: &HashMap<String, Ty>) -> Ty {
        match &e.expr {
            Expr::Unspecified => Ty::Unknown,
            Expr::Literal(l) => match l {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::Uint,
            },
            Expr::Ident(name) => {
                if let Some(t) = scope.get(name) {
                    t.clone()
                } else if TYPE_NAMES.contains(&name.as_str()) {
                    Ty::Type
                } else {
                    self.errors.push(CheckError {
                        message: format!("undeclared reference to '{name}' (in container '')"),
                        anchor: Anchor::Ident(name.clone()),
                    });
                    Ty::Unknown
                }
            }
            Expr::Select(sel) => {
                let operand = self.check(&sel.operand, scope);
                let t = self.select(&operand, &sel.field);
                if sel.test { Ty::Bool } else { t }
            }
            Expr::Call(call) => self.call(call, scope),
            Expr::Comprehension(c) => {
                let range = self.check(&c.iter_range, scope);
                let (first, second) = match &range {
                    Ty::List(t) => (
                        if c.iter_var2.is_some() {
                            Ty::Int
                        } else {
                            (**t).clone()
                        },
                        (**t).clone(),
                    ),
                    Ty::Map(k, v) => ((**k).clone(), (**v).clone()),
                    Ty::Unknown => (Ty::Unknown, Ty::Unknown),
                    _ => (Ty::Dyn, Ty::Dyn),
                };
                let accu = self.check(&c.accu_init, scope);
                let mut inner = scope.clone();
                inner.insert(c.iter_var.clone(), first);
                if let Some(v2) = &c.iter_var2 {
                    inner.insert(v2.clone(), second);
                }
                inner.insert(c.accu_var.clone(), accu.clone());
                self.check(&c.loop_cond, &inner);
                let step = self.check(&c.loop_step, &inner);
                let mut result_scope = scope.clone();
                let accu_ty = if accu == step { accu } else { Ty::Unknown };
                result_scope.insert(c.accu_var.clone(), accu_ty);
                self.check(&c.result, &result_scope)
            }
            Expr::List(l) => {
                let tys: Vec<Ty> = l.elements.iter().map(|x| self.check(x, scope)).collect();
                let elem = match tys.first() {
                    Some(first) if tys.iter().all(|t| t == first) => first.clone(),
                    Some(_) => Ty::Dyn,
                    None => Ty::Unknown,
                };
                Ty::List(Box::new(elem))
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        self.check(&me.key, scope);
                        self.check(&me.value, scope);
                    }
                }
                Ty::Map(Box::new(Ty::Unknown), Box::new(Ty::Unknown))
            }
            Expr::Struct(_) => Ty::Unknown,
        }
    }

    fn select(&mut self, operand: &Ty, field: &str) -> Ty {
        match operand {
            Ty::Object(fields) => match fields.get(field) {
                Some(t) => t.clone(),
                None => {
                    self.errors.push(CheckError {
                        message: format!("undefined field '{field}'"),
                        anchor: Anchor::Select(field.to_string()),
                    });
                    Ty::Unknown
                }
            },
            Ty::Map(_, v) => (**v).clone(),
            Ty::Dyn => Ty::Dyn,
            _ => Ty::Unknown,
        }
    }

    fn call(&mut self, call: &kube_cel::cel::common::ast::CallExpr, scope: &HashMap<String, Ty>) -> Ty {
        let name = call.func_name.as_str();
        // `ns.fn(...)` parses as a member call on an identifier that is not a variable.
        let namespaced = match call.target.as_deref().map(|t| &t.expr) {
            Some(Expr::Ident(ns)) if !scope.contains_key(ns) && NAMESPACES.contains(&ns.as_str()) => {
                Some(ns.clone())
            }
            _ => None,
        };
        let target = match (&call.target, &namespaced) {
            (Some(t), None) => Some(self.check(t, scope)),
            _ => None,
        };
        if name == "_?._" {
            let operand = call.args.first().map_or(Ty::Unknown, |a| self.check(a, scope));
            let field = match call.args.get(1).map(|a| &a.expr) {
                Some(Expr::Literal(LiteralValue::String(s))) => s.to_string(),
                _ => return Ty::Unknown,
            };
            let inner = match operand {
                Ty::Optional(t) => *t,
                t => t,
            };
            return Ty::Optional(Box::new(self.select(&inner, &field)));
        }
        let args: Vec<Ty> = call.args.iter().map(|a| self.check(a, scope)).collect();
        if call.target.is_none()
            && !name.starts_with('_')
            && !name.starts_with('@')
            && !name.starts_with('!')
            && !name.starts_with('-')
            && !GLOBAL_FUNCTIONS.contains(&name)
            && !name.contains('.')
        {
            self.errors.push(CheckError {
                message: format!("undeclared reference to '{name}' (in container '')"),
                anchor: Anchor::Ident(name.to_string()),
            });
            return Ty::Unknown;
        }
        if let Some(ns) = namespaced {
            return match (ns.as_str(), name) {
                ("optional", "none") => Ty::Optional(Box::new(Ty::Dyn)),
                ("optional", "of" | "ofNonZeroValue") => {
                    Ty::Optional(Box::new(args.first().cloned().unwrap_or(Ty::Unknown)))
                }
                ("sets", _) => Ty::Bool,
                ("strings", "quote") => Ty::String,
                ("lists", "range") => Ty::List(Box::new(Ty::Int)),
                _ => Ty::Unknown,
            };
        }
        let a0 = args.first().cloned().unwrap_or(Ty::Unknown);
        let a1 = args.get(1).cloned().unwrap_or(Ty::Unknown);
        match name {
            "_&&_"
            | "_||_"
            | "!_"
            | "_==_"
            | "_!=_"
            | "_<_"
            | "_<=_"
            | "_>_"
            | "_>=_"
            | "@in"
            | "@not_strictly_false" => Ty::Bool,
            "_?_:_" => {
                if a1 == args.get(2).cloned().unwrap_or(Ty::Unknown) {
                    a1
                } else {
                    Ty::Unknown
                }
            }
            "-_" => a0,
            "_+_" | "_-_" | "_*_" | "_/_" | "_%_" => arith(name, &a0, &a1),
            "_[_]" => match a0 {
                Ty::List(t) => *t,
                Ty::Map(_, v) => *v,
                Ty::Dyn => Ty::Dyn,
                _ => Ty::Unknown,
            },
            "_[?_]" => match a0 {
                Ty::List(t) => Ty::Optional(t),
                Ty::Map(_, v) => Ty::Optional(v),
                _ => Ty::Optional(Box::new(Ty::Unknown)),
            },
            "size" | "indexOf" | "lastIndexOf" | "int" | "getFullYear" | "getMonth" | "getDayOfYear"
            | "getDayOfMonth" | "getDate" | "getDayOfWeek" | "getHours" | "getMinutes" | "getSeconds"
            | "getMilliseconds" | "compareTo" | "major" | "minor" | "patch" | "sign" | "asInteger"
            | "prefixLength" => Ty::Int,
            "uint" => Ty::Uint,
            "double" | "asApproximateFloat" => Ty::Double,
            "string" | "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "charAt" | "join"
            | "format" | "getScheme" | "getHost" | "getHostname" | "getPort" | "getEscapedPath" | "find" => {
                Ty::String
            }
            "bytes" => Ty::Bytes,
            "duration" => Ty::Duration,
            "timestamp" => Ty::Timestamp,
            "dyn" => Ty::Dyn,
            "type" => Ty::Type,
            "split" | "findAll" => Ty::List(Box::new(Ty::String)),
            "contains"
            | "startsWith"
            | "endsWith"
            | "matches"
            | "isSorted"
            | "hasValue"
            | "isQuantity"
            | "isURL"
            | "isIP"
            | "isCIDR"
            | "isSemver"
            | "isGreaterThan"
            | "isLessThan"
            | "isInteger"
            | "containsIP"
            | "containsCIDR"
            | "isCanonical"
            | "isUnspecified"
            | "isLoopback"
            | "isLinkLocalMulticast"
            | "isLinkLocalUnicast"
            | "isGlobalUnicast"
            | "bool" => Ty::Bool,
            "value" | "orValue" => match target {
                Some(Ty::Optional(t)) => *t,
                _ => Ty::Unknown,
            },
            "or" => match target {
                Some(t @ Ty::Optional(_)) => t,
                _ => Ty::Unknown,
            },
            "reverse" => match target {
                Some(Ty::String) => Ty::String,
                Some(t @ Ty::List(_)) => t,
                _ => Ty::Unknown,
            },
            _ => Ty::Unknown,
        }
    }
}

fn arith(op: &str, a: &Ty, b: &Ty) -> Ty {
    match (op, a, b) {
        (_, Ty::Int, Ty::Int) => Ty::Int,
        (_, Ty::Uint, Ty::Uint) => Ty::Uint,
        (_, Ty::Double, Ty::Double) => Ty::Double,
        ("_+_", Ty::String, Ty::String) => Ty::String,
        ("_+_", Ty::Bytes, Ty::Bytes) => Ty::Bytes,
        ("_+_", Ty::List(x), Ty::List(y)) => Ty::List(Box::new(if x == y { (**x).clone() } else { Ty::Dyn })),
        ("_+_" | "_-_", Ty::Duration, Ty::Duration) => Ty::Duration,
        ("_+_", Ty::Timestamp, Ty::Duration)
        | ("_+_", Ty::Duration, Ty::Timestamp)
        | ("_-_", Ty::Timestamp, Ty::Duration) => Ty::Timestamp,
        ("_-_", Ty::Timestamp, Ty::Timestamp) => Ty::Duration,
        _ => Ty::Unknown,
    }
}

/// Renders checker errors like cel-go's `Issues.String()`.
fn render_check_errors(src: &str, errs: &[CheckError]) -> String {
    let mut located: Vec<(usize, String)> = errs
        .iter()
        .map(|e| {
            let offset = locate(src, &e.anchor);
            (offset, e.message.clone())
        })
        .collect();
    located.sort_by_key(|(o, _)| *o);
    located.dedup();
    located
        .iter()
        .map(|(o, m)| display_error(src, *o, m))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Finds where cel-go would place an error: the `.` of a selection, or an identifier's start.
fn locate(src: &str, anchor: &Anchor) -> usize {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let (needle, select) = match anchor {
        Anchor::Select(f) => (f.as_str(), true),
        Anchor::Ident(i) => (i.as_str(), false),
    };
    let mut start = 0;
    while let Some(pos) = src[start..].find(needle) {
        let at = start + pos;
        let before = src[..at].chars().next_back();
        let after = src[at + needle.len()..].chars().next();
        let whole = !before.is_some_and(is_word) && !after.is_some_and(is_word);
        if whole {
            let prefix = src[..at].trim_end();
            let prefix = prefix.strip_suffix('?').map_or(prefix, str::trim_end);
            if select && prefix.ends_with('.') {
                return prefix.len() - 1;
            }
            if !select && !prefix.ends_with('.') {
                return at;
            }
        }
        start = at + needle.len().max(1);
    }
    0
}

/// One error in cel-go's display format, with the source line and a caret.
fn display_error(src: &str, offset: usize, msg: &str) -> String {
    let before = &src[..offset.min(src.len())];
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = src[line_start..offset.min(src.len())].chars().count();
    let line = src[line_start..]
        .split('\n')
        .next()
        .unwrap_or("")
        .replace('\t', " ");
    format_issue(&line, line_no, col, msg)
}

fn format_issue(line: &str, line_no: usize, col: usize, msg: &str) -> String {
    let mut out = format!("ERROR: <input>:{line_no}:{}: {msg}", col + 1);
    out.push_str("\n | ");
    out.push_str(line);
    out.push_str("\n | ");
    let mut chars = line.chars();
    for _ in 0..col {
        match chars.next() {
            Some(c) if c.len_utf8() > 1 => out.push('\u{ff0e}'),
            Some(_) => out.push('.'),
            None => break,
        }
    }
    match chars.next() {
        Some(c) if c.len_utf8() > 1 => out.push('\u{ff3e}'),
        _ => out.push('^'),
    }
    out
}

/// Renders parse errors like cel-go does.
fn render_parse_errors(src: &str, errs: &kube_cel::cel::ParseErrors) -> String {
    let lines: Vec<&str> = src.split('\n').collect();
    errs.errors
        .iter()
        .map(|e| {
            let line_no = e.pos.0.max(1) as usize;
            let col = (e.pos.1.max(1) - 1) as usize;
            let line = lines.get(line_no - 1).copied().unwrap_or("").replace('\t', " ");
            format_issue(&line, line_no, col, &e.msg)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The outcome of compiling one rule against its node's type.
pub(crate) struct Compiled {
    /// `compilation failed: ...` and friends, for the `rule` field.
    pub rule_error: Option<String>,
    /// Errors for the `messageExpression` field.
    pub message_error: Option<String>,
    pub uses_old_self: bool,
}

/// Compiles a rule as kube-apiserver does at CRD creation.
pub(crate) fn compile(rule: &Rule, self_ty: &Ty) -> Compiled {
    let mut out = Compiled {
        rule_error: None,
        message_error: None,
        uses_old_self: false,
    };
    if rule.rule.trim().is_empty() {
        return out;
    }
    let expr = match parse(&rule.rule) {
        Ok(e) => e,
        Err(errs) => {
            out.rule_error = Some(format!(
                "compilation failed: {}",
                render_parse_errors(&rule.rule, &errs)
            ));
            return out;
        }
    };
    let old_ty = if rule.optional_old_self == Some(true) {
        Ty::Optional(Box::new(self_ty.clone()))
    } else {
        self_ty.clone()
    };
    let mut scope = HashMap::new();
    scope.insert("self".to_string(), self_ty.clone());
    scope.insert("oldSelf".to_string(), old_ty);
    let mut checker = Checker { errors: vec![] };
    let ty = checker.check(&expr, &scope);
    if !checker.errors.is_empty() {
        out.rule_error = Some(format!(
            "compilation failed: {}",
            render_check_errors(&rule.rule, &checker.errors)
        ));
        return out;
    }
    if ty.certainly_not(&Ty::Bool) {
        out.rule_error = Some("cel expression must evaluate to a bool".into());
        return out;
    }
    out.uses_old_self = expr.references().has_variable("oldSelf");
    if !rule.message_expression.is_empty() {
        match parse(&rule.message_expression) {
            Err(errs) => {
                out.message_error = Some(format!(
                    "messageExpression compilation failed: {}",
                    render_parse_errors(&rule.message_expression, &errs)
                ));
            }
            Ok(msg) => {
                let mut checker = Checker { errors: vec![] };
                let ty = checker.check(&msg, &scope);
                if !checker.errors.is_empty() {
                    out.message_error = Some(format!(
                        "messageExpression compilation failed: {}",
                        render_check_errors(&rule.message_expression, &checker.errors)
                    ));
                } else if ty.certainly_not(&Ty::String) {
                    out.message_error = Some("messageExpression must evaluate to a string".into());
                }
            }
        }
    }
    out
}

/// `ValidFieldPath`: resolves a rule's `fieldPath` against `node`, returning the normalized path
/// appended to error fields.
pub(crate) fn valid_field_path(path: &str, node: &Node) -> Result<String, String> {
    let chars: Vec<char> = path.chars().collect();
    let mut tokens: Vec<String> = vec![];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '.' | '[' | ']') {
            tokens.push(c.to_string());
            i += 1;
            continue;
        }
        let mut j = i;
        if c == '\'' {
            j += 1;
            while j < chars.len() && !(chars[j] == '\'' && chars[j - 1] != '\\') {
                j += 1;
            }
            j = (j + 1).min(chars.len());
        } else {
            while j < chars.len() && !matches!(chars[j], '.' | '[' | ']') {
                j += 1;
            }
        }
        tokens.push(chars[i..j].iter().collect());
        i = j;
    }
    let mut out = FPath::root();
    let mut schema = node;
    let mut it = tokens.into_iter();
    while let Some(tok) = it.next() {
        let name = match tok.as_str() {
            "[" => {
                let quoted = it.next().ok_or("unexpected end of JSON path")?;
                if quoted.len() < 2 || !quoted.starts_with('\'') || !quoted.ends_with('\'') {
                    return Err(format!("expected single quoted string but got {quoted}"));
                }
                let name = unescape_single_quote(&quoted[1..quoted.len() - 1])?;
                if it.next().as_deref() != Some("]") {
                    return Err("expected ] but got something else".into());
                }
                name
            }
            "." => it.next().ok_or("unexpected end of JSON path")?,
            other => return Err(format!("expected [ or . but got: {other}")),
        };
        if !schema.properties.is_empty() {
            out = out.child(&name);
            schema = schema
                .properties
                .get(&name)
                .ok_or("does not refer to a valid field")?;
        } else if !matches!(schema.additional, super::node::Additional::None) {
            out = out.key(&name);
            schema = schema
                .additional_schema()
                .ok_or("does not refer to a valid field")?;
        } else {
            return Err("does not refer to a valid field".into());
        }
    }
    Ok(out.0.unwrap_or_default())
}

fn unescape_single_quote(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('a') => out.push('\u{7}'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('v') => out.push('\u{b}'),
            Some('\'') => out.push('\''),
            Some('\\') => out.push('\\'),
            Some(other) => return Err(format!("invalid string literal: invalid escape char \\{other}")),
            None => return Err("invalid string literal: invalid escape char \\".into()),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Values.

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    for chunk in bytes.chunks(4) {
        let mut acc: u32 = 0;
        let mut pad = 0;
        for &b in chunk {
            let v = match b {
                b'A'..=b'Z' => b - b'A',
                b'a'..=b'z' => b - b'a' + 26,
                b'0'..=b'9' => b - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' => {
                    pad += 1;
                    0
                }
                _ => return None,
            };
            acc = (acc << 6) | u32::from(v);
        }
        let bytes3 = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&bytes3[..3 - pad.min(2)]);
    }
    Some(out)
}

fn timestamp(s: &str, date_only: bool) -> Option<CelValue> {
    use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
    let utc = FixedOffset::east_opt(0)?;
    if date_only {
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
        return Some(CelValue::Timestamp(
            d.and_hms_opt(0, 0, 0)?.and_local_timezone(utc).single()?,
        ));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(CelValue::Timestamp(t));
    }
    let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok()?;
    Some(CelValue::Timestamp(local.and_local_timezone(utc).single()?))
}

fn string_map(entries: impl Iterator<Item = (String, CelValue)>) -> CelValue {
    let map: HashMap<Key, CelValue> = entries.map(|(k, v)| (Key::String(Arc::new(k)), v)).collect();
    CelValue::Map(CelMap { map: Arc::new(map) })
}

/// Converts object data into the CEL value kube-apiserver binds to `self` for `node`.
pub(crate) fn to_cel(v: &Value, node: Option<&Node>) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            let ty = node.map(|n| n.ty.as_str()).unwrap_or("");
            match (ty, n.as_i64(), n.as_f64()) {
                ("number", _, Some(f)) => CelValue::Float(f),
                (_, Some(i), _) => CelValue::Int(i),
                ("integer", None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => CelValue::Int(f as i64),
                (_, None, Some(f)) => CelValue::Float(f),
                _ => CelValue::Null,
            }
        }
        Value::String(s) => {
            let (ty, format) = node.map_or(("", ""), |n| (n.ty.as_str(), n.format.as_str()));
            let converted = if ty == "string" {
                match format {
                    "byte" => base64_decode(s).map(|b| CelValue::Bytes(Arc::new(b))),
                    "duration" => formats::parse_duration(s)
                        .and_then(|ns| i64::try_from(ns).ok())
                        .map(|ns| CelValue::Duration(chrono::Duration::nanoseconds(ns))),
                    "date-time" => timestamp(s, false),
                    "date" => timestamp(s, true),
                    _ => None,
                }
            } else {
                None
            };
            converted.unwrap_or_else(|| CelValue::String(Arc::new(s.clone())))
        }
        Value::Array(a) => {
            let items = node.and_then(|n| n.items.as_deref());
            CelValue::List(Arc::new(a.iter().map(|x| to_cel(x, items)).collect()))
        }
        Value::Object(m) => {
            if let Some(add) = node.and_then(Node::additional_schema) {
                return string_map(m.iter().map(|(k, x)| (k.clone(), to_cel(x, Some(add)))));
            }
            string_map(m.iter().filter_map(|(k, x)| {
                let field = node.and_then(|n| n.properties.get(k));
                escape(k).map(|name| (name, to_cel(x, field)))
            }))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

thread_local! {
    static BASE: Context<'static> = {
        let mut ctx = Context::default();
        ctx.register_all();
        ctx.add_function(OPT_SELECT_FN, optional_select);
        ctx.add_function("dyn", dyn_identity);
        ctx.add_function("matches", matches_cached);
        ctx
    };
}

/// `string.matches(pattern)` exactly as the `cel` crate defines it (same regex engine, same
/// error), but compiling each pattern once per thread: the crate compiles it on every call,
/// which was most of a CFApp write's CEL cost (its env rule calls `matches` once per key).
fn matches_cached(
    ftx: &kube_cel::cel::FunctionContext,
    kube_cel::cel::extractors::This(this): kube_cel::cel::extractors::This<Arc<String>>,
    pattern: Arc<String>,
) -> Result<bool, ExecutionError> {
    thread_local! {
        static COMPILED: std::cell::RefCell<HashMap<Arc<String>, regex::Regex>> =
            std::cell::RefCell::new(HashMap::new());
    }
    let cached = COMPILED.with(|c| c.borrow().get(&pattern).map(|re| re.is_match(&this)));
    if let Some(matched) = cached {
        return Ok(matched);
    }
    match regex::Regex::new(&pattern) {
        Ok(re) => {
            let matched = re.is_match(&this);
            COMPILED.with(|c| {
                let mut c = c.borrow_mut();
                // Patterns can come from object data, not only from rules: keep the cache small.
                if c.len() >= 256 {
                    c.clear();
                }
                c.insert(pattern, re);
            });
            Ok(matched)
        }
        Err(err) => Err(ftx.error(format!("'{pattern}' not a valid regex:\n{err}"))),
    }
}

/// Maps a `cel` runtime error onto cel-go's wording.
fn runtime_error_text(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::DivisionByZero(_) => "division by zero".into(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".into(),
        ExecutionError::Overflow(..) => "integer overflow".into(),
        ExecutionError::IndexOutOfBounds(i) => format!("index out of range: {}", cel_value_text(i)),
        ExecutionError::UndeclaredReference(r) => format!("no such attribute: {r}"),
        ExecutionError::FunctionError { message, .. } => message.clone(),
        _ => "no such overload".into(),
    }
}

fn cel_value_text(v: &CelValue) -> String {
    match v {
        CelValue::Int(i) => i.to_string(),
        CelValue::UInt(u) => u.to_string(),
        other => format!("{other:?}"),
    }
}

/// How far an update correlates with the old object, for ratcheting: the old/new pair of the
/// nearest correlated node at or above the current one.
#[derive(Clone, Copy)]
struct Correlation<'a> {
    current: Option<(&'a Node, &'a Value, &'a Value)>,
    nearest: Option<(&'a Node, &'a Value, &'a Value)>,
    root: bool,
}

impl<'a> Correlation<'a> {
    fn should_ratchet(&self) -> bool {
        match self.current.or(self.nearest) {
            Some((n, o, v)) => ratchet_equal(Some(n), o, v),
            None => false,
        }
    }

    fn key(&self, k: &str) -> Correlation<'a> {
        let Some((node, old, new)) = self.current else {
            return Correlation { root: false, ..*self };
        };
        if self.root && (k == "apiVersion" || k == "kind") {
            return Correlation {
                current: None,
                nearest: None,
                root: false,
            };
        }
        let child = match (old.get(k), new.get(k), node.field(k)) {
            (Some(o), Some(n), Some(s)) if old.is_object() && new.is_object() => Some((s, o, n)),
            _ => None,
        };
        Correlation {
            current: child,
            nearest: self.current,
            root: false,
        }
    }

    fn index(&self, i: usize) -> Correlation<'a> {
        let Some((node, old, new)) = self.current else {
            return Correlation { root: false, ..*self };
        };
        let child = match (
            old.as_array(),
            new.as_array().and_then(|a| a.get(i)),
            node.items.as_deref(),
        ) {
            (Some(o), Some(item), Some(items)) if node.list_type.as_deref() == Some("map") => {
                map_list_get(node, o, item).map(|old_item| (items, old_item, item))
            }
            _ => None,
        };
        Correlation {
            current: child,
            nearest: self.current,
            root: false,
        }
    }
}

/// Runs every rule of the tree on an object (`cel.Validator.Validate`), returning failures and
/// ratcheted failures (warnings).
pub(crate) fn validate(
    root: &Node,
    obj: &Value,
    old: Option<&Value>,
    causes: &mut Vec<Cause>,
    warnings: &mut Vec<String>,
) {
    let corr = Correlation {
        current: old.map(|o| (root, o, obj)),
        nearest: None,
        root: true,
    };
    BASE.with(|base| {
        let mut run = Run {
            base,
            causes,
            warnings,
        };
        run.node(root, &FPath::root(), obj, old, corr);
    });
}

struct Run<'c, 'o> {
    base: &'c Context<'static>,
    causes: &'o mut Vec<Cause>,
    warnings: &'o mut Vec<String>,
}

impl Run<'_, '_> {
    fn node<'a>(
        &mut self,
        node: &'a Node,
        path: &FPath,
        obj: &'a Value,
        old: Option<&'a Value>,
        corr: Correlation<'a>,
    ) {
        if obj.is_null() || !node.has_rules {
            return;
        }
        let old = old.filter(|o| !o.is_null());
        self.expressions(node, path, obj, old, corr);
        match obj {
            Value::Array(items) => {
                let Some(item_schema) = node.items.as_deref() else {
                    return;
                };
                let old_items = old.and_then(Value::as_array);
                let is_map_list = node.ty == "array" && node.list_type.as_deref() == Some("map");
                for (i, item) in items.iter().enumerate() {
                    let old_item = if is_map_list {
                        old_items.and_then(|o| map_list_get(node, o, item))
                    } else {
                        None
                    };
                    self.node(item_schema, &path.index(i), item, old_item, corr.index(i));
                }
            }
            Value::Object(m) => {
                let old_map = old.and_then(Value::as_object);
                if let Some(add) = node.additional_schema() {
                    for (k, v) in m {
                        self.node(add, &path.key(k), v, old_map.and_then(|o| o.get(k)), corr.key(k));
                    }
                }
                for (k, v) in m {
                    if let Some(prop) = node.properties.get(k) {
                        self.node(
                            prop,
                            &path.child(k),
                            v,
                            old_map.and_then(|o| o.get(k)),
                            corr.key(k),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn expressions(
        &mut self,
        node: &Node,
        path: &FPath,
        obj: &Value,
        old: Option<&Value>,
        corr: Correlation<'_>,
    ) {
        if node.rules.is_empty() {
            return;
        }
        let self_val = to_cel(obj, Some(node));
        let old_val = old.map(|o| to_cel(o, Some(node)));
        let type_value = Bad::Str(node.ty.clone());
        for rule in &node.rules {
            let Some(program) = &rule.program else { continue };
            let optional = rule.optional_old_self == Some(true);
            if rule.uses_old_self && old_val.is_none() && !optional {
                continue;
            }
            let mut scope = self.base.new_inner_scope();
            scope.add_variable_from_value("self", self_val.clone());
            if rule.uses_old_self {
                let bound = if optional {
                    let opt = match &old_val {
                        Some(v) => OptionalValue::of(v.clone()),
                        None => OptionalValue::none(),
                    };
                    CelValue::Opaque(Arc::new(opt))
                } else {
                    old_val.clone().unwrap_or(CelValue::Null)
                };
                scope.add_variable_from_value("oldSelf", bound);
            }
            let result = CelValue::resolve(program, &scope);
            let failure = match result {
                Ok(CelValue::Bool(true)) => continue,
                Ok(CelValue::Bool(false)) => None,
                Ok(_) => Some(ExecutionError::NoSuchOverload),
                Err(e) => Some(e),
            };
            if let Some(err) = failure {
                let text = runtime_error_text(&err);
                let detail = if text.starts_with("no such overload") {
                    format!(
                        "'{text}': call arguments did not match a supported operator, function or macro signature for rule: {}",
                        rule.error_string()
                    )
                } else {
                    format!("{text} evaluating rule: {}", rule.error_string())
                };
                self.causes
                    .push(errors::invalid(path, type_value.clone(), &detail));
                continue;
            }
            let mut field = path.clone();
            if !rule.field_path.is_empty()
                && let Ok(normalized) = valid_field_path(&rule.field_path, node)
                && !normalized.is_empty()
            {
                field = path.child(&normalized);
            }
            let mut detail = None;
            if let Some(msg_program) = &rule.message_program {
                // messageExpression sees oldSelf as a plain value even for optionalOldSelf rules.
                let mut msg_scope = self.base.new_inner_scope();
                msg_scope.add_variable_from_value("self", self_val.clone());
                if let Some(o) = &old_val {
                    msg_scope.add_variable_from_value("oldSelf", o.clone());
                }
                if let Ok(CelValue::String(s)) = CelValue::resolve(msg_program, &msg_scope) {
                    let trimmed = s.trim();
                    if !trimmed.is_empty() && !trimmed.contains('\n') && trimmed.len() <= 5 * 1024 {
                        detail = Some(trimmed.to_string());
                    }
                }
            }
            let detail = detail.unwrap_or_else(|| rule.message_or_default());
            let value = if node.ty == "object" || node.ty == "array" {
                Bad::Omit
            } else {
                Bad::of(obj)
            };
            let cause = match rule.reason.as_deref() {
                Some("FieldValueForbidden") => errors::forbidden(&field, &detail),
                Some("FieldValueRequired") => errors::required(&field, &detail),
                Some("FieldValueDuplicate") => errors::duplicate(&field, value),
                _ => errors::invalid(&field, value, &detail),
            };
            if !rule.uses_old_self && corr.should_ratchet() {
                self.warnings.push(errors::line(&cause));
            } else {
                self.causes.push(cause);
            }
        }
    }
}
