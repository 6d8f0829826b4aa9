//! Paging, ordering and the list envelope every CF list shares: `pagination` with absolute
//! `first`/`last`/`next`/`previous` links that keep the caller's other parameters, then
//! `resources`.

use serde_json::{Value, json};

use super::{
    error::{CfError, CfResult},
    query::Query,
};

/// `page`, `per_page` and `order_by`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageParams {
    /// 1-based page.
    pub page: usize,
    /// Items per page, 1 to 5000.
    pub per_page: usize,
    /// Field to order by, and whether descending.
    pub order_by: (String, bool),
}

impl PageParams {
    /// Reads and checks the paging parameters; `orders` are the fields this list orders by
    /// (the first is the default).
    pub fn from_query(q: &Query, orders: &[&str]) -> CfResult<Self> {
        let number = |key: &str, default: usize| -> CfResult<usize> {
            match q.get(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<usize>()
                    .map_err(|_| CfError::BadQuery(format!("{key} must be an integer"))),
            }
        };
        let page = number("page", 1)?;
        if page < 1 {
            return Err(CfError::BadQuery("Page must be greater than 0".into()));
        }
        let per_page = number("per_page", 50)?;
        if !(1..=5000).contains(&per_page) {
            return Err(CfError::BadQuery("Per page must be between 1 and 5000".into()));
        }
        let order = q
            .get("order_by")
            .unwrap_or(orders.first().copied().unwrap_or("created_at"));
        let (field, descending) = match order.strip_prefix('-') {
            Some(f) => (f, true),
            None => (order.strip_prefix('+').unwrap_or(order), false),
        };
        if !orders.contains(&field) {
            let listed = orders
                .iter()
                .map(|o| format!("'{o}'"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(CfError::BadQuery(format!("Order by can only be: {listed}")));
        }
        Ok(Self {
            page,
            per_page,
            order_by: (field.to_owned(), descending),
        })
    }
}

/// The list envelope for one page of already filtered and ordered `resources`.
pub fn page(base: &str, path: &str, q: &Query, params: &PageParams, all: Vec<Value>) -> Value {
    let total = all.len();
    let start = (params.page - 1).saturating_mul(params.per_page);
    let resources: Vec<Value> = all.into_iter().skip(start).take(params.per_page).collect();
    page_of(base, path, q, params, total, resources)
}

/// The list envelope for `resources`, the requested page already cut out of `total` results.
pub fn page_of(
    base: &str,
    path: &str,
    q: &Query,
    params: &PageParams,
    total: usize,
    resources: Vec<Value>,
) -> Value {
    let total_pages = total.div_ceil(params.per_page);
    let link = |page: usize| {
        let mut pairs: Vec<String> = q
            .pairs()
            .filter(|(k, _)| *k != "page" && *k != "per_page")
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        pairs.push(format!("page={page}"));
        pairs.push(format!("per_page={}", params.per_page));
        pairs.sort();
        json!({"href": format!("{base}{path}?{}", pairs.join("&"))})
    };
    let mut body = json!({
        "pagination": {
            "total_results": total,
            "total_pages": total_pages,
            "first": link(1),
            "last": link(total_pages.max(1)),
            "next": if params.page < total_pages { link(params.page + 1) } else { Value::Null },
            "previous": if params.page > 1 && params.page <= total_pages.max(1) + 1 { link(params.page - 1) } else { Value::Null },
        },
    });
    // Moved in, not through `json!`, which would copy every resource by serializing it.
    body["resources"] = Value::Array(resources);
    body
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Orders resources by a presented field (`created_at`, `updated_at`, `name`, …).
pub fn order(resources: &mut [Value], params: &PageParams) {
    let (field, descending) = &params.order_by;
    resources.sort_by(|a, b| {
        let key = |v: &Value| order_key(v, field);
        let ordering = key(a).cmp(&key(b)).then_with(|| key_guid(a).cmp(&key_guid(b)));
        if *descending { ordering.reverse() } else { ordering }
    });
}

/// What ordering by `field` compares: the presented field, as a string.
pub fn order_key(v: &Value, field: &str) -> String {
    v.get(field)
        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
        .unwrap_or_default()
}

fn key_guid(v: &Value) -> String {
    v["guid"].as_str().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| json!({"guid": format!("g{i:02}"), "name": format!("n{i:02}")}))
            .collect()
    }

    #[test]
    fn links_are_absolute_and_keep_other_parameters() {
        let q = Query::parse("names=a%2Cb&per_page=2&page=2").unwrap();
        let params = PageParams::from_query(&q, &["created_at", "name"]).unwrap();
        let body = page("https://api.example", "/v3/apps", &q, &params, items(5));
        assert_eq!(body["pagination"]["total_results"], 5);
        assert_eq!(body["pagination"]["total_pages"], 3);
        assert_eq!(
            body["pagination"]["next"]["href"],
            "https://api.example/v3/apps?names=a%2Cb&page=3&per_page=2"
        );
        assert_eq!(
            body["pagination"]["previous"]["href"],
            "https://api.example/v3/apps?names=a%2Cb&page=1&per_page=2"
        );
        assert_eq!(
            body["pagination"]["first"]["href"],
            "https://api.example/v3/apps?names=a%2Cb&page=1&per_page=2"
        );
        assert_eq!(body["resources"].as_array().unwrap().len(), 2);
        assert_eq!(body["resources"][0]["guid"], "g02");
    }

    #[test]
    fn an_empty_list_has_one_page_and_no_next() {
        let q = Query::default();
        let params = PageParams::from_query(&q, &["created_at"]).unwrap();
        let body = page("http://x", "/v3/apps", &q, &params, vec![]);
        assert_eq!(body["pagination"]["total_pages"], 0);
        assert_eq!(
            body["pagination"]["last"]["href"],
            "http://x/v3/apps?page=1&per_page=50"
        );
        assert!(body["pagination"]["next"].is_null());
        assert_eq!(body["resources"], json!([]));
    }

    #[test]
    fn paging_parameters_are_checked() {
        let check = |raw: &str| PageParams::from_query(&Query::parse(raw).unwrap(), &["created_at", "name"]);
        assert!(
            check("page=0")
                .unwrap_err()
                .to_string()
                .contains("Page must be greater than 0")
        );
        assert!(
            check("per_page=5001")
                .unwrap_err()
                .to_string()
                .contains("Per page must be between 1 and 5000")
        );
        assert!(
            check("order_by=size")
                .unwrap_err()
                .to_string()
                .contains("Order by can only be: 'created_at', 'name'")
        );
        assert_eq!(
            check("order_by=-name").unwrap().order_by,
            ("name".to_owned(), true)
        );
    }

    #[test]
    fn ordering_descends_on_minus() {
        let mut list = items(3);
        let params = PageParams::from_query(&Query::parse("order_by=-name").unwrap(), &["name"]).unwrap();
        order(&mut list, &params);
        assert_eq!(list[0]["name"], "n02");
    }
}
