//! Label and field selectors, parsed, printed and matched the way k8s.io/apimachinery's
//! `labels` and `fields` packages do, error wording included, so a client sees the same answer
//! from the simulator as from kube-apiserver.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// A selector that could not be parsed or built; the message is apimachinery's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

impl SelectorError {
    /// The message, as kube-apiserver would put it in a `Status`.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// A label-selector operator (`k8s.io/apimachinery/pkg/selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value`
    Equals,
    /// `key==value`
    DoubleEquals,
    /// `key!=value`
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>1`
    GreaterThan,
    /// `key<1`
    LessThan,
}

impl Operator {
    /// The operator's name as `selection.Operator` spells it (`in`, `!=`, `exists`, `gt`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// One `key op values` term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Builds and validates a requirement as `labels.NewRequirement` does: the key must be a
    /// qualified name, each value a label value, and the value count must suit the operator.
    /// All problems are reported together, as apimachinery aggregates them.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, SelectorError> {
        let mut errs: Vec<String> = Vec::new();
        if let Some(e) = key_error(key, "key") {
            errs.push(e);
        }
        let shown = go_json_strings(&values);
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => errs.push(invalid(
                "values",
                &shown,
                "for 'in', 'notin' operators, values set can't be empty",
            )),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => errs
                .push(invalid(
                    "values",
                    &shown,
                    "exact-match compatibility requires one single value",
                )),
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(invalid(
                "values",
                &shown,
                "values set must be empty for exists and does not exist",
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid(
                        "values",
                        &shown,
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid(
                            &format!("values[{i}]"),
                            &crate::gostr::quote(v),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let msgs = label_value_errors(v);
            if !msgs.is_empty() {
                errs.push(invalid(
                    &format!("values[{i}][{key}]"),
                    &crate::gostr::quote(v),
                    &msgs.join("; "),
                ));
            }
        }
        if errs.is_empty() {
            Ok(Requirement {
                key: key.to_string(),
                operator,
                values,
            })
        } else {
            Err(SelectorError(aggregate(errs)))
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, in the order given (the string parser hands them over sorted and deduplicated).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a set of labels satisfies this requirement. A missing key satisfies `!=`, `notin`
    /// and `!key` only; `>`/`<` need both sides to parse as 64-bit integers.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let found = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                found.is_some_and(|v| self.values.iter().any(|x| x == v))
            }
            Operator::NotIn | Operator::NotEquals => {
                found.is_none_or(|v| !self.values.iter().any(|x| x == v))
            }
            Operator::Exists => found.is_some(),
            Operator::DoesNotExist => found.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = found.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (open, close) = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::In => (" in (", ")"),
            Operator::NotIn => (" notin (", ")"),
            Operator::Equals => ("=", ""),
            Operator::DoubleEquals => ("==", ""),
            Operator::NotEquals => ("!=", ""),
            Operator::GreaterThan => (">", ""),
            Operator::LessThan => ("<", ""),
        };
        // apimachinery prints multiple values sorted so that equal selectors print equally.
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        write!(f, "{open}{}{close}", values.join(","))
    }
}

/// A label selector: the AND of its requirements, or the selector that matches nothing (what a
/// missing `metav1.LabelSelector` means).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every label set.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no label set.
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the string form (`a=b,c in (d,e),!f,g>3`) exactly as `labels.Parse` does, including
    /// its error messages; requirements are kept sorted by key.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser::new(selector);
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Builds a selector from a `metav1.LabelSelector` object (`matchLabels` and
    /// `matchExpressions`) as `metav1.LabelSelectorAsSelector` does: `null` matches nothing, an
    /// empty selector matches everything.
    pub fn from_label_selector(selector: &Value) -> Result<Self, SelectorError> {
        let obj = match selector {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(obj) => obj,
            other => {
                return Err(SelectorError(format!(
                    "json: cannot unmarshal {} into Go value of type v1.LabelSelector",
                    json_kind(other)
                )));
            }
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let Value::String(v) = v else {
                        return Err(SelectorError(format!(
                            "json: cannot unmarshal {} into Go struct field LabelSelector.matchLabels of type string",
                            json_kind(v)
                        )));
                    };
                    requirements.push(Requirement::new(k, Operator::Equals, vec![v.clone()])?);
                }
            }
            Some(other) => {
                return Err(SelectorError(format!(
                    "json: cannot unmarshal {} into Go struct field LabelSelector.matchLabels of type map[string]string",
                    json_kind(other)
                )));
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for expr in exprs {
                    requirements.push(expression_requirement(expr)?);
                }
            }
            Some(other) => {
                return Err(SelectorError(format!(
                    "json: cannot unmarshal {} into Go struct field LabelSelector.matchExpressions of type []v1.LabelSelectorRequirement",
                    json_kind(other)
                )));
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// The selector `labels.SelectorFromSet` builds: `key=value` for every pair, unvalidated.
    pub fn from_set(labels: &BTreeMap<String, String>) -> Self {
        let requirements = labels
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                operator: Operator::Equals,
                values: vec![v.clone()],
            })
            .collect();
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// Whether a set of labels satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector places no restriction (apimachinery's `Empty`); the
    /// match-nothing selector is not empty.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether this is the selector that matches nothing.
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The single value a label must have for this selector to match, when the selector pins it
    /// (`key=v`, `key==v` or `key in (v)`), as `RequiresExactMatch` reports.
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabelSelector::parse(s)
    }
}

fn expression_requirement(expr: &Value) -> Result<Requirement, SelectorError> {
    let field = |name: &str| expr.get(name).and_then(Value::as_str).unwrap_or_default();
    let operator = match field("operator") {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(SelectorError(format!(
                "{} is not a valid label selector operator",
                crate::gostr::quote(other)
            )));
        }
    };
    let values = match expr.get("values") {
        Some(Value::Array(vs)) => vs
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect(),
        _ => Vec::new(),
    };
    Requirement::new(field("key"), operator, values)
}

// ---------------------------------------------------------------------------------------------
// The label-selector lexer and parser. Their structure follows apimachinery's closely because
// the error messages (and which inputs are errors at all) fall out of that structure.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    // A NUL byte ends the input, as it does for apimachinery's lexer.
    fn peek(&self) -> u8 {
        self.s.get(self.pos).copied().unwrap_or(0)
    }

    fn lex(&mut self) -> (Token, String) {
        while is_whitespace(self.peek()) {
            self.pos += 1;
        }
        let c = self.peek();
        if c == 0 {
            return (Token::End, String::new());
        }
        if is_special(c) {
            return self.special();
        }
        let start = self.pos;
        while self.peek() != 0 && !is_special(self.peek()) && !is_whitespace(self.peek()) {
            self.pos += 1;
        }
        let lit = &self.s[start..self.pos];
        let text = String::from_utf8_lossy(lit).into_owned();
        (keyword(lit).unwrap_or(Token::Identifier), text)
    }

    // Longest run of special characters that still spells an operator.
    fn special(&mut self) -> (Token, String) {
        let start = self.pos;
        let mut best: Option<(Token, usize)> = None;
        while is_special(self.peek()) {
            let candidate = &self.s[start..=self.pos];
            if let Some(tok) = keyword(candidate) {
                best = Some((tok, self.pos + 1));
            } else if best.is_some() {
                break;
            }
            self.pos += 1;
        }
        match best {
            Some((tok, end)) => {
                self.pos = end;
                (tok, String::from_utf8_lossy(&self.s[start..end]).into_owned())
            }
            None => (
                Token::Error,
                format!(
                    "error expected: keyword found '{}'",
                    String::from_utf8_lossy(&self.s[start..self.pos])
                ),
            ),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

impl Parser {
    fn new(selector: &str) -> Self {
        let mut lexer = Lexer {
            s: selector.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let end = item.0 == Token::End;
            items.push(item);
            if end {
                break;
            }
        }
        Parser { items, position: 0 }
    }

    fn item(&self, at: usize, ctx: Context) -> (Token, String) {
        let (tok, lit) = self.items.get(at).cloned().unwrap_or((Token::End, String::new()));
        // In value position the keywords `in` and `notin` are ordinary words.
        let tok = match (ctx, tok) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            _ => tok,
        };
        (tok, lit)
    }

    fn lookahead(&self, ctx: Context) -> (Token, String) {
        self.item(self.position, ctx)
    }

    fn consume(&mut self, ctx: Context) -> (Token, String) {
        let item = self.item(self.position, ctx);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| SelectorError(format!("unable to parse requirement: {}", e.0)))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(SelectorError(format!(
                                    "found '{l2}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(SelectorError(format!(
                                "found '{l}', expected: ',' or 'end of string'"
                            )));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                _ => {
                    return Err(SelectorError(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, unary) = self.key_and_inferred_operator()?;
        if let Some(op) = unary {
            return Requirement::new(&key, op, Vec::new());
        }
        let op = self.operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.values()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, op, values.into_iter().collect())
    }

    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<Operator>), SelectorError> {
        let mut unary = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            unary = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(SelectorError(format!("found '{lit}', expected: identifier")));
        }
        // apimachinery validates with a nil field path here, hence its "<nil>: " prefix.
        if let Some(e) = key_error(&lit, "<nil>") {
            return Err(SelectorError(e));
        }
        let (next, _) = self.lookahead(Context::Values);
        if unary.is_none() && matches!(next, Token::End | Token::Comma) {
            unary = Some(Operator::Exists);
        }
        Ok((lit, unary))
    }

    fn operator(&mut self) -> Result<Operator, SelectorError> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(SelectorError(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                )));
            }
        })
    }

    fn values(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(SelectorError(format!("found '{lit}' expected: '('")));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let set = self.identifiers()?;
                let (tok, _) = self.consume(Context::Values);
                if tok != Token::ClosedPar {
                    return Err(SelectorError(format!("found '{lit}', expected: ')'")));
                }
                Ok(set)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(SelectorError(format!(
                "found '{lit}', expected: ',', ')' or identifier"
            ))),
        }
    }

    // A comma-separated list in which empty entries stand for the empty value.
    fn identifiers(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let mut set = BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    set.insert(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set),
                        _ => return Err(SelectorError(format!("found '{lit2}', expected: ',' or ')'"))),
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Token::ClosedPar {
                        set.insert(String::new());
                        return Ok(set);
                    }
                    if tok2 == Token::Comma {
                        set.insert(String::new());
                    }
                }
                _ => {
                    return Err(SelectorError(format!(
                        "found '{lit}', expected: ',', or identifier"
                    )));
                }
            }
        }
    }

    fn exact_value(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (tok, _) = self.lookahead(Context::Values);
        if matches!(tok, Token::End | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            Ok(BTreeSet::from([lit]))
        } else {
            Err(SelectorError(format!("found '{lit}', expected: identifier")))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation of label keys and values, worded as apimachinery's `content` package words it.

const LABEL_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        examples.join(" or ")
    )
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_alphanumeric();
    let inner = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    match b {
        [] => false,
        [c] => edge(*c),
        [first, mid @ .., last] => edge(*first) && edge(*last) && mid.iter().all(|c| inner(*c)),
    }
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match b {
        [] => false,
        [c] => edge(*c),
        [first, mid @ .., last] => edge(*first) && edge(*last) && mid.iter().all(|c| edge(*c) || *c == b'-'),
    }
}

fn dns_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 bytes".to_string());
    }
    if !s.split('.').all(is_dns_label) {
        errs.push(regex_error(
            DNS_SUBDOMAIN_MSG,
            DNS_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// The problems `IsLabelKey` (a.k.a. `IsQualifiedName`) finds with a label key; empty when valid.
pub fn label_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(LABEL_KEY_MSG, LABEL_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 bytes".to_string());
    }
    if !is_label_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(LABEL_KEY_MSG, LABEL_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

/// The problems `IsLabelValue` finds with a label value; empty when valid (the empty string is).
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 bytes".to_string());
    }
    if !value.is_empty() && !is_label_name(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            &format!("({LABEL_FMT})?"),
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

fn key_error(key: &str, field: &str) -> Option<String> {
    let errs = label_key_errors(key);
    (!errs.is_empty()).then(|| invalid(field, &crate::gostr::quote(key), &errs.join("; ")))
}

fn invalid(field: &str, shown: &str, detail: &str) -> String {
    format!("{field}: Invalid value: {shown}: {detail}")
}

// Several errors print as `[a, b]` with duplicates dropped, one error prints bare.
fn aggregate(errs: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", seen.join(", ")),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

// How Go's encoding/json prints a []string (field errors show non-string bad values this way);
// a nil slice prints as `null`.
fn go_json_strings(values: &[String]) -> String {
    if values.is_empty() {
        return "null".to_string();
    }
    let parts: Vec<String> = values.iter().map(|v| crate::gostr::json_string(v)).collect();
    format!("[{}]", parts.join(","))
}

// ---------------------------------------------------------------------------------------------
// Field selectors.

/// A field-selector operator. `=` and `==` are the same requirement, as in apimachinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`
    Equals,
    /// `field!=value`
    NotEquals,
}

impl FieldOperator {
    /// The operator as `selection.Operator` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        }
    }
}

/// One `field op value` term of a field selector, value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field path, e.g. `metadata.name`, exactly as written (no trimming).
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The value with `\,`, `\=` and `\\` unescaped.
    pub value: String,
}

impl FieldRequirement {
    /// Whether the field's value (missing counts as empty) satisfies this term.
    pub fn matches(&self, actual: Option<&str>) -> bool {
        let actual = actual.unwrap_or_default();
        match self.operator {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.field,
            self.operator.as_str(),
            escape_field_value(&self.value)
        )
    }
}

/// A field selector: the AND of `field=value` / `field!=value` terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses a field selector as `fields.ParseSelector` does: terms split on unescaped commas
    /// and sorted, each split at its first operator, values unescaped; a term with both field and
    /// value empty (`=`) is dropped.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(selector);
        parts.sort_unstable();
        let mut requirements = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((field, op, raw)) = split_term(part) else {
                return Err(SelectorError(format!(
                    "invalid selector: '{selector}'; can't understand '{part}'"
                )));
            };
            let value = unescape_field_value(raw)?;
            if field.is_empty() && value.is_empty() {
                continue;
            }
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator: op,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// The terms, in the sorted order the parser leaves them.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether the selector places no restriction.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object matches, given a lookup of its selectable fields; a field the lookup
    /// does not know compares as the empty string, as in kube-apiserver.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(get(&r.field).as_deref()))
    }

    /// The value a field must equal for this selector to match, if a term pins it.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(s)
    }
}

/// Escapes `\`, `,` and `=` in a field-selector value (`fields.EscapeValue`).
pub fn escape_field_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undoes [`escape_field_value`], rejecting unknown escapes and bare `,`/`=`
/// (`fields.UnescapeValue`).
pub fn unescape_field_value(value: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut in_slash = false;
    for c in value.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                )));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // apimachinery prints the rune with %v, i.e. as its code point number.
            ',' | '=' => {
                return Err(SelectorError(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError(
            "invalid field selector: invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}

// Splits on commas that are not escaped; the escapes stay in the terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

// The field part cannot be escaped, so the first operator found splits the term; `!=` and `==`
// are tried before `=` so that neither leaves a stray character behind.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::Equals),
        ("=", FieldOperator::Equals),
    ];
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in OPS {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, value));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(sel) => panic!("{s:?} parsed as {sel}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn selector_parses_every_operator() {
        let sel = LabelSelector::parse("a=1,b==2,c!=3,d in (x,y),e notin (z),f,!g,h>5,i<7").unwrap();
        let ops: Vec<(String, Operator, Vec<String>)> = sel
            .requirements()
            .iter()
            .map(|r| (r.key().to_string(), r.operator(), r.values().to_vec()))
            .collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ops,
            vec![
                ("a".into(), Operator::Equals, s(&["1"])),
                ("b".into(), Operator::DoubleEquals, s(&["2"])),
                ("c".into(), Operator::NotEquals, s(&["3"])),
                ("d".into(), Operator::In, s(&["x", "y"])),
                ("e".into(), Operator::NotIn, s(&["z"])),
                ("f".into(), Operator::Exists, vec![]),
                ("g".into(), Operator::DoesNotExist, vec![]),
                ("h".into(), Operator::GreaterThan, s(&["5"])),
                ("i".into(), Operator::LessThan, s(&["7"])),
            ]
        );
        assert_eq!(
            sel.to_string(),
            "a=1,b==2,c!=3,d in (x,y),e notin (z),f,!g,h>5,i<7"
        );
    }

    #[test]
    fn selector_matches_each_operator() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "10")]);
        let yes = [
            "",
            "app=web",
            "app==web",
            "app!=db",
            "missing!=x",
            "app in (web,db)",
            "app notin (db)",
            "missing notin (db)",
            "app",
            "!missing",
            "n>9",
            "n<11",
            "app=web,tier=front",
        ];
        let no = [
            "app=db",
            "missing=x",
            "app!=web",
            "app in (db)",
            "missing in (web)",
            "app notin (web)",
            "missing",
            "!app",
            "n>10",
            "n<10",
            "app>1",
            "missing>1",
            "app=web,tier=back",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(&l), "{s} should match");
        }
        for s in no {
            assert!(
                !LabelSelector::parse(s).unwrap().matches(&l),
                "{s} should not match"
            );
        }
    }

    #[test]
    fn selector_tolerates_whitespace_and_empty_values() {
        let sel = LabelSelector::parse("  a  =  b ,\tc in ( d , e ) ,  !f ").unwrap();
        assert_eq!(sel.to_string(), "a=b,c in (d,e),!f");
        // Empty values are allowed in exact and set matches.
        let sel = LabelSelector::parse("a=,b in (x,,y),c notin ()").unwrap();
        assert_eq!(sel.requirements()[0].values(), [""]);
        assert_eq!(sel.requirements()[1].values(), ["", "x", "y"]);
        assert_eq!(sel.requirements()[2].values(), [""]);
        assert!(sel.matches(&labels(&[("a", ""), ("b", "")])));
        // `in` and `notin` are plain words in value position, and keys may be prefixed.
        let sel = LabelSelector::parse("example.com/in in (in,notin)").unwrap();
        assert!(sel.matches(&labels(&[("example.com/in", "notin")])));
        assert!(LabelSelector::parse("").unwrap().is_empty());
    }

    #[test]
    fn selector_sorts_by_key_and_values_when_printed() {
        let sel = LabelSelector::parse("z in (c,a,b),a=1").unwrap();
        assert_eq!(sel.to_string(), "a=1,z in (a,b,c)");
        assert_eq!(sel.requires_exact_match("a"), Some("1"));
        assert_eq!(sel.requires_exact_match("z"), None);
        let parsed: LabelSelector = "x".parse().unwrap();
        assert_eq!(parsed.to_string(), "x");
    }

    #[test]
    fn selector_errors_match_apimachinery() {
        assert_eq!(err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(
            err(",a"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(err("a,"), "found '', expected: identifier after ','");
        assert_eq!(err("a=b,,c"), "found ',', expected: identifier after ','");
        assert_eq!(
            err("a in b"),
            "unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            err("a in (b"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            err("a in (=)"),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            err("a in (b,=)"),
            "unable to parse requirement: found '=', expected: ',', or identifier"
        );
        assert_eq!(
            err("a==="),
            "unable to parse requirement: found '=', expected: identifier"
        );
        assert_eq!(
            err("a<=1"),
            "unable to parse requirement: found '=', expected: identifier"
        );
        assert_eq!(
            err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            err("!=a"),
            "found '!=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("! =a"),
            "unable to parse requirement: found '=', expected: identifier"
        );
        assert_eq!(err("!a=b"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(
            err("a>b"),
            "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
    }

    #[test]
    fn selector_validates_keys_and_values() {
        assert_eq!(
            err("a/b/c"),
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a valid label key must consist of \
             alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character \
             (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
             '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' \
             (e.g. 'example.com/MyName')"
        );
        assert_eq!(
            err("Bad_Prefix/x=1"),
            "unable to parse requirement: <nil>: Invalid value: \"Bad_Prefix/x\": prefix part a lowercase RFC \
             1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and \
             end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert_eq!(
            err("/x"),
            "unable to parse requirement: <nil>: Invalid value: \"/x\": prefix part must be non-empty"
        );
        let long = "k".repeat(64);
        assert_eq!(
            err(&long),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no more than 63 bytes"
            )
        );
        assert_eq!(
            err("a=-b"),
            "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be an empty \
             string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
             alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
             '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        let v = "v".repeat(64);
        assert_eq!(
            err(&format!("a={v}")),
            format!(
                "unable to parse requirement: values[0][a]: Invalid value: \"{v}\": must be no more than 63 bytes"
            )
        );
        assert!(LabelSelector::parse(&format!("{}/{}", "p".repeat(253), "n".repeat(63))).is_ok());
        assert!(LabelSelector::parse("app.kubernetes.io/name=my_app.v-1").is_ok());
    }

    #[test]
    fn requirement_new_aggregates_errors() {
        let e = Requirement::new("a", Operator::In, vec![]).unwrap_err();
        assert_eq!(
            e.0,
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
        );
        let e = Requirement::new("a", Operator::Exists, vec!["x".into()]).unwrap_err();
        assert_eq!(
            e.0,
            "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist"
        );
        let e = Requirement::new("-a", Operator::Equals, vec!["x".into(), "y".into()]).unwrap_err();
        assert!(
            e.0.starts_with("[key: Invalid value: \"-a\": name part must consist of"),
            "{}",
            e.0
        );
        assert!(e.0.ends_with(
            ", values: Invalid value: [\"x\",\"y\"]: exact-match compatibility requires one single value]"
        ));
    }

    #[test]
    fn from_label_selector_builds_from_metav1() {
        let sel = LabelSelector::from_label_selector(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        assert_eq!(
            sel.to_string(),
            "app=web,env notin (prod),!legacy,team,tier in (edge,front)"
        );
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "edge"), ("team", "x")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "edge")])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("tier", "edge"),
            ("team", "x"),
            ("legacy", "1")
        ])));

        let everything = LabelSelector::from_label_selector(&json!({})).unwrap();
        assert!(everything.is_empty() && everything.matches(&BTreeMap::new()));
        let nothing = LabelSelector::from_label_selector(&Value::Null).unwrap();
        assert!(!nothing.is_empty() && nothing.matches_nothing() && !nothing.matches(&BTreeMap::new()));

        let e = LabelSelector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "Gt"}]}),
        )
        .unwrap_err();
        assert_eq!(e.0, "\"Gt\" is not a valid label selector operator");
        let e = LabelSelector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
        );
        let e = LabelSelector::from_label_selector(&json!({"matchLabels": {"a": "b c"}})).unwrap_err();
        assert!(
            e.0.starts_with("values[0][a]: Invalid value: \"b c\": a valid label must be"),
            "{}",
            e.0
        );
    }

    #[test]
    fn from_set_matches_exactly() {
        let sel = LabelSelector::from_set(&labels(&[("b", "2"), ("a", "1")]));
        assert_eq!(sel.to_string(), "a=1,b=2");
        assert!(sel.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(!sel.matches(&labels(&[("a", "1")])));
    }

    #[test]
    fn field_selector_operators_and_matching() {
        let sel = FieldSelector::parse("metadata.name=web,status.phase!=Failed,spec.nodeName==n1").unwrap();
        let reqs: Vec<(&str, FieldOperator, &str)> = sel
            .requirements()
            .iter()
            .map(|r| (r.field.as_str(), r.operator, r.value.as_str()))
            .collect();
        assert_eq!(
            reqs,
            vec![
                ("metadata.name", FieldOperator::Equals, "web"),
                ("spec.nodeName", FieldOperator::Equals, "n1"),
                ("status.phase", FieldOperator::NotEquals, "Failed"),
            ]
        );
        let fields = BTreeMap::from([
            ("metadata.name", "web"),
            ("spec.nodeName", "n1"),
            ("status.phase", "Running"),
        ]);
        let get = |f: &str| fields.get(f).map(|v| v.to_string());
        assert!(sel.matches(get));
        assert_eq!(sel.requires_exact_match("metadata.name"), Some("web"));
        assert_eq!(
            sel.to_string(),
            "metadata.name=web,spec.nodeName=n1,status.phase!=Failed"
        );
        // A field the object lacks compares as "".
        assert!(FieldSelector::parse("spec.missing=").unwrap().matches(|_| None));
        assert!(!FieldSelector::parse("spec.missing=x").unwrap().matches(|_| None));
        assert!(FieldSelector::parse("spec.missing!=x").unwrap().matches(|_| None));
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(FieldSelector::parse(",=,").unwrap().is_empty());
    }

    #[test]
    fn field_selector_escaping() {
        let sel = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(sel.requirements()[0].value, r"a,b=c\d");
        assert_eq!(sel.to_string(), r"metadata.name=a\,b\=c\\d");
        assert_eq!(escape_field_value(r"x=y,z\"), r"x\=y\,z\\");
        assert_eq!(
            unescape_field_value(&escape_field_value("a,=\\b")).unwrap(),
            "a,=\\b"
        );
        // The operator is the first one found, so `=` may follow it in the value only escaped.
        assert_eq!(
            FieldSelector::parse("a==b=c").unwrap_err().0,
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\x").unwrap_err().0,
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\").unwrap_err().0,
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            FieldSelector::parse("a=b,nope").unwrap_err().0,
            "invalid selector: 'a=b,nope'; can't understand 'nope'"
        );
        // `!=` wins over `=` at the same position; whitespace is kept as part of the field.
        let sel = FieldSelector::parse("a !=b").unwrap();
        assert_eq!(sel.requirements()[0].field, "a ");
        assert_eq!(sel.requirements()[0].operator, FieldOperator::NotEquals);
    }
}
