//! apimachinery's `field.Path` and `field.Error` rendering, so every cause this module emits reads
//! exactly like the one kube-apiserver would put in a `Status`.

use serde_json::Value;

use super::Cause;
use super::gofmt;

/// A `*field.Path`; `None` is Go's nil path, which prints as `<nil>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FPath(pub Option<String>);

impl FPath {
    /// The nil path.
    pub(crate) fn root() -> FPath {
        FPath(None)
    }

    /// `field.NewPath(name)`.
    pub(crate) fn new(name: &str) -> FPath {
        FPath(Some(name.to_string()))
    }

    /// `p.Child(name)`.
    pub(crate) fn child(&self, name: &str) -> FPath {
        match &self.0 {
            None => FPath(Some(name.to_string())),
            Some(p) => FPath(Some(format!("{p}.{name}"))),
        }
    }

    /// `p.Index(i)`.
    pub(crate) fn index(&self, i: usize) -> FPath {
        FPath(Some(format!("{}[{i}]", self.0.as_deref().unwrap_or(""))))
    }

    /// `p.Key(k)`.
    pub(crate) fn key(&self, k: &str) -> FPath {
        FPath(Some(format!("{}[{k}]", self.0.as_deref().unwrap_or(""))))
    }

    /// `p.String()`.
    pub(crate) fn render(&self) -> String {
        self.0.clone().unwrap_or_else(|| "<nil>".into())
    }
}

/// A field error's `BadValue`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bad {
    /// `field.OmitValueType{}`.
    Omit,
    /// Go nil.
    Nil,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Anything else, already JSON-encoded.
    Json(String),
}

impl Bad {
    /// A decoded JSON value as Go would hold it.
    pub(crate) fn of(v: &Value) -> Bad {
        match v {
            Value::Null => Bad::Nil,
            Value::Bool(b) => Bad::Bool(*b),
            Value::Number(n) => match gofmt::Num::of(n) {
                gofmt::Num::Int(i) => Bad::Int(i),
                gofmt::Num::Float(f) => Bad::Float(f),
            },
            Value::String(s) => Bad::Str(s.clone()),
            other => Bad::Json(gofmt::json(other)),
        }
    }

    fn render(&self) -> Option<String> {
        match self {
            Bad::Omit => None,
            Bad::Nil => Some("null".into()),
            Bad::Str(s) => Some(gofmt::quote(s)),
            Bad::Int(i) => Some(i.to_string()),
            Bad::Float(f) => Some(gofmt::float_v(*f)),
            Bad::Bool(b) => Some(b.to_string()),
            Bad::Json(j) => Some(j.clone()),
        }
    }
}

fn cause(reason: &str, path: &FPath, body: String) -> Cause {
    Cause {
        reason: reason.into(),
        message: body,
        field: path.render(),
    }
}

fn with_value(kind: &str, value: &Bad, detail: &str) -> String {
    let mut s = match value.render() {
        Some(v) => format!("{kind}: {v}"),
        None => kind.to_string(),
    };
    if !detail.is_empty() {
        s.push_str(": ");
        s.push_str(detail);
    }
    s
}

fn bare(kind: &str, detail: &str) -> String {
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

/// `field.Invalid`.
pub(crate) fn invalid(path: &FPath, value: Bad, detail: &str) -> Cause {
    cause(
        "FieldValueInvalid",
        path,
        with_value("Invalid value", &value, detail),
    )
}

/// `field.TypeInvalid`.
pub(crate) fn type_invalid(path: &FPath, value: Bad, detail: &str) -> Cause {
    cause(
        "FieldValueTypeInvalid",
        path,
        with_value("Invalid value", &value, detail),
    )
}

/// `field.Required`.
pub(crate) fn required(path: &FPath, detail: &str) -> Cause {
    cause("FieldValueRequired", path, bare("Required value", detail))
}

/// `field.Forbidden`.
pub(crate) fn forbidden(path: &FPath, detail: &str) -> Cause {
    cause("FieldValueForbidden", path, bare("Forbidden", detail))
}

/// `field.Duplicate`.
pub(crate) fn duplicate(path: &FPath, value: Bad) -> Cause {
    cause(
        "FieldValueDuplicate",
        path,
        with_value("Duplicate value", &value, ""),
    )
}

/// `field.NotSupported`.
pub(crate) fn not_supported(path: &FPath, value: Bad, valid: &[String]) -> Cause {
    let detail = if valid.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = valid.iter().map(|v| gofmt::quote(v)).collect();
        format!("supported values: {}", quoted.join(", "))
    };
    cause(
        "FieldValueNotSupported",
        path,
        with_value("Unsupported value", &value, &detail),
    )
}

/// `field.TooLong`.
pub(crate) fn too_long(path: &FPath, max: i64) -> Cause {
    let detail = if max >= 0 {
        format!(
            "may not be more than {max} {}",
            if max == 1 { "byte" } else { "bytes" }
        )
    } else {
        "value is too long".into()
    };
    cause("FieldValueTooLong", path, bare("Too long", &detail))
}

/// `field.TooMany`.
pub(crate) fn too_many(path: &FPath, actual: i64, max: i64) -> Cause {
    let detail = if max >= 0 {
        format!(
            "must have at most {max} {}",
            if max == 1 { "item" } else { "items" }
        )
    } else {
        "has too many items".into()
    };
    let value = if actual >= 0 { Bad::Int(actual) } else { Bad::Omit };
    cause("FieldValueTooMany", path, with_value("Too many", &value, &detail))
}

/// `field.InternalError`.
pub(crate) fn internal(path: &FPath, detail: &str) -> Cause {
    cause("InternalError", path, bare("Internal error", detail))
}

/// The full `field: body` text of a cause, as `field.Error.Error()` prints it.
pub(crate) fn line(c: &Cause) -> String {
    format!("{}: {}", c.field, c.message)
}
