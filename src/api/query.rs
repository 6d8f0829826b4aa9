//! Query parameters the CF way: keys and values percent-decoded before splitting on commas,
//! an empty value meaning "equals the empty string", unknown parameters rejected, `page`,
//! `per_page` and `order_by` validated, and label selectors and timestamp filters parsed.

use std::collections::BTreeMap;

use super::error::{CfError, CfResult};

/// A request's query, decoded.
#[derive(Debug, Clone, Default)]
pub struct Query {
    params: BTreeMap<String, String>,
}

/// Shared by every list endpoint.
pub const PAGING: &[&str] = &[
    "page",
    "per_page",
    "order_by",
    "label_selector",
    "created_ats",
    "updated_ats",
];

impl Query {
    /// Decodes a raw query string (`a=1&b=x%2Cy`).
    pub fn parse(raw: &str) -> CfResult<Self> {
        let mut params = BTreeMap::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k)?;
            let v = decode(v)?;
            params.insert(k, v);
        }
        Ok(Self { params })
    }

    /// Rejects parameters not in `allowed` (plus the paging ones), as Cloud Controller does.
    pub fn allow(&self, allowed: &[&str]) -> CfResult<()> {
        let unknown: Vec<&String> = self
            .params
            .keys()
            .filter(|k| {
                let base = k.split('[').next().unwrap_or(k);
                !allowed.contains(&base) && !PAGING.contains(&base)
            })
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let listed = |keys: Vec<String>| {
            keys.iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut valid: Vec<String> = PAGING.iter().chain(allowed).map(|s| (*s).to_owned()).collect();
        valid.sort();
        Err(CfError::BadQuery(format!(
            "Unknown query parameter(s): {}. Valid parameters are: {}",
            listed(unknown.into_iter().cloned().collect()),
            listed(valid)
        )))
    }

    /// Every parameter, in key order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A single value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// A comma-separated list filter; `Some(vec![""])` for `names=`.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        self.params
            .get(key)
            .map(|v| v.split(',').map(str::to_owned).collect())
    }

    /// Timestamp filters such as `created_ats[gt]=…`, as (operator, values).
    pub fn timestamps(&self, key: &str) -> Vec<(String, Vec<String>)> {
        self.params
            .iter()
            .filter_map(|(k, v)| {
                let op = if k == key {
                    "eq".to_owned()
                } else {
                    k.strip_prefix(key)?
                        .strip_prefix('[')?
                        .strip_suffix(']')?
                        .to_owned()
                };
                Some((op, v.split(',').map(str::to_owned).collect()))
            })
            .collect()
    }
}

fn decode(s: &str) -> CfResult<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(
                    byte.ok_or_else(|| CfError::BadQuery(format!("invalid percent-encoding in {s:?}")))?,
                );
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| CfError::BadQuery(format!("{s:?} is not UTF-8")))
}

/// Checks a timestamp filter's operator and values, returning a predicate over RFC 3339 strings.
pub fn timestamp_filter(op: &str, values: &[String]) -> CfResult<impl Fn(&str) -> bool + use<>> {
    let parse = |v: &str| -> CfResult<k8s_openapi::jiff::Timestamp> {
        v.parse()
            .map_err(|_| CfError::BadQuery(format!("'{v}' is not a valid timestamp")))
    };
    let parsed: Vec<k8s_openapi::jiff::Timestamp> =
        values.iter().map(|v| parse(v)).collect::<CfResult<_>>()?;
    if op != "eq" && parsed.len() != 1 {
        return Err(CfError::BadQuery(format!(
            "only one timestamp may be given with [{op}]"
        )));
    }
    if !matches!(op, "eq" | "lt" | "lte" | "gt" | "gte") {
        return Err(CfError::BadQuery(format!("Invalid relational operator - '{op}'")));
    }
    let op = op.to_owned();
    Ok(move |ts: &str| {
        let Ok(t) = ts.parse::<k8s_openapi::jiff::Timestamp>() else {
            return false;
        };
        match op.as_str() {
            "eq" => parsed.contains(&t),
            "lt" => t < parsed[0],
            "lte" => t <= parsed[0],
            "gt" => t > parsed[0],
            _ => t >= parsed[0],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_decoded_before_splitting() {
        let q = Query::parse("names=a%2Cb&label_selector=env%3Dprod&empty=").unwrap();
        assert_eq!(q.list("names"), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(q.get("label_selector"), Some("env=prod"));
        assert_eq!(
            q.list("empty"),
            Some(vec![String::new()]),
            "an empty value means the empty string"
        );
    }

    #[test]
    fn unknown_parameters_are_rejected_with_the_valid_list() {
        let q = Query::parse("names=x&bogus=1").unwrap();
        let err = q.allow(&["names"]).unwrap_err().to_string();
        assert!(err.contains("Unknown query parameter(s): 'bogus'"), "{err}");
        assert!(err.contains("'names'") && err.contains("'per_page'"), "{err}");
        assert!(
            Query::parse("created_ats%5Bgt%5D=2020-01-01T00:00:00Z")
                .unwrap()
                .allow(&[])
                .is_ok()
        );
    }

    #[test]
    fn timestamp_operators() {
        let q = Query::parse("created_ats%5Bgte%5D=2020-01-02T00:00:00Z").unwrap();
        let (op, values) = q.timestamps("created_ats").remove(0);
        let f = timestamp_filter(&op, &values).unwrap();
        assert!(f("2020-01-02T00:00:00Z"));
        assert!(!f("2020-01-01T23:59:59Z"));
        assert!(timestamp_filter("between", &values).is_err());
        assert!(timestamp_filter("eq", &["yesterday".to_owned()]).is_err());
    }
}
