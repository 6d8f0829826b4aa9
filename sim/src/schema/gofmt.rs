//! Renders values the way Go's `fmt`, `strconv` and `encoding/json` do, because kube-apiserver's
//! error texts embed values printed by those packages and clients compare the texts verbatim.

use serde_json::Value;

pub(crate) use crate::gostr::{json_string, quote};

/// Splits a finite, non-zero float into its shortest round-trip decimal digits and the decimal
/// exponent of the first digit, the representation Go's shortest formatting starts from.
fn shortest_digits(f: f64) -> (String, i32) {
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    (digits.to_string(), exp.parse().unwrap_or(0))
}

/// Go's `%e` rendering of shortest digits: `d.ddde±XX`.
fn exp_form(neg: bool, digits: &str, exp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        out.push('0');
    }
    out.push_str(&e.to_string());
    out
}

/// Go's `%f` rendering of shortest digits (no exponent, no trailing zeros).
fn plain_form(neg: bool, digits: &str, exp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let dp = exp + 1;
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..(-dp) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let dp = dp as usize;
        if digits.len() <= dp {
            out.push_str(digits);
            for _ in digits.len()..dp {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..dp]);
            out.push('.');
            out.push_str(&digits[dp..]);
        }
    }
    out
}

fn special(f: f64) -> Option<String> {
    if f.is_nan() {
        Some("NaN".into())
    } else if f.is_infinite() {
        Some(if f > 0.0 { "+Inf".into() } else { "-Inf".into() })
    } else if f == 0.0 {
        Some(if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        })
    } else {
        None
    }
}

/// `fmt.Sprintf("%v", f)` for a float64.
pub(crate) fn float_v(f: f64) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    let (digits, exp) = shortest_digits(f);
    if !(-4..6).contains(&exp) {
        exp_form(f < 0.0, &digits, exp)
    } else {
        plain_form(f < 0.0, &digits, exp)
    }
}

/// `strconv.FormatFloat(f, 'f', -1, 64)`.
pub(crate) fn float_f(f: f64) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    let (digits, exp) = shortest_digits(f);
    plain_form(f < 0.0, &digits, exp)
}

/// The float rendering of `encoding/json`.
fn float_json(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let abs = f.abs();
    let (digits, exp) = shortest_digits(f);
    if !(1e-6..1e21).contains(&abs) {
        let s = exp_form(f < 0.0, &digits, exp);
        // encoding/json trims the exponent's leading zero: e-07 becomes e-7.
        s.replacen("e-0", "e-", 1).replacen("e+0", "e+", 1)
    } else {
        plain_form(f < 0.0, &digits, exp)
    }
}

/// `json.Marshal` of a value decoded from JSON (maps sorted by key, as Go does).
pub(crate) fn json(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else {
                out.push_str(&float_json(n.as_f64().unwrap_or(f64::NAN)));
            }
        }
        Value::String(s) => out.push_str(&json_string(s)),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(k));
                out.push(':');
                if let Some(x) = m.get(k) {
                    write_json(x, out);
                }
            }
            out.push('}');
        }
    }
}

/// A value as Go's decoder for unstructured JSON would hold it: integers that fit `int64` stay
/// integers, every other number becomes a float64.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    /// An `int64`.
    Int(i64),
    /// A `float64`.
    Float(f64),
}

impl Num {
    /// Classifies a JSON number the way apimachinery's JSON decoding does.
    pub(crate) fn of(n: &serde_json::Number) -> Num {
        match n.as_i64() {
            Some(i) => Num::Int(i),
            None => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
        }
    }

    /// The value as a float64.
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// `%v` of the number.
    pub(crate) fn v(self) -> String {
        match self {
            Num::Int(i) => i.to_string(),
            Num::Float(f) => float_v(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_follow_go() {
        assert_eq!(float_v(1.5), "1.5");
        assert_eq!(float_v(1e6), "1e+06");
        assert_eq!(float_v(123456.0), "123456");
        assert_eq!(float_v(0.0001), "0.0001");
        assert_eq!(float_v(0.00001), "1e-05");
        assert_eq!(float_v(-2.25), "-2.25");
        assert_eq!(float_f(1e21), "1000000000000000000000");
        assert_eq!(float_json(1e21), "1e+21");
        assert_eq!(float_json(1e-7), "1e-7");
        assert_eq!(float_json(2.5), "2.5");
    }

    #[test]
    fn strings_follow_go() {
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(
            json(&serde_json::json!({"b": "<", "a": [1, 2.5]})),
            r#"{"a":[1,2.5],"b":"\u003c"}"#
        );
    }
}
