//! Manifests: `POST /v3/spaces/{guid}/actions/apply_manifest` (what `cf push` really does:
//! create or update apps, processes, routes and bindings from CC's manifest schema),
//! `POST /v3/spaces/{guid}/manifest_diff` and `GET /v3/apps/{guid}/manifest`. A manifest is
//! validated whole before anything is written, with Cloud Controller's messages, so an
//! invalid one changes nothing; failures of later steps fail the job the CLI polls.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use kube::ResourceExt;
use serde_json::{Map, Value, json};

use super::{
    apps::{create_app, lifecycle_json},
    domains::{default_domain, usable_by},
    jobs,
    resource::{self, Caller},
    routes::{check_address, claim as route_claim},
    service_bindings::{ALREADY_BOUND, claim as binding_claim},
};
use crate::{
    api::{ApiState, CfError, CfResult, body::MetadataBody},
    controller::{app::build::new_process, names},
    crd::{
        BindingType, CFApp, CFDomain, CFProcess, CFRoute, CFRouteSpec, CFServiceBinding,
        CFServiceBindingSpec, Destination, HealthCheckType, Lifecycle, LifecycleType, PackageType,
        RouteProtocol, ServiceInstanceType,
    },
    labels::{DOMAIN_GUID, SPACE_GUID},
};

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/spaces/{guid}/actions/apply_manifest", post(apply))
        .route("/v3/spaces/{guid}/manifest_diff", post(diff))
        .route("/v3/apps/{guid}/manifest", get(show))
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation
// ---------------------------------------------------------------------------------------------

/// Why a manifest was refused: one CF error, or CC's compound 422 (one error per problem).
#[derive(Debug)]
pub enum ManifestError {
    /// A single error (bad YAML, no applications, invisible space, …).
    Cf(CfError),
    /// Every validation failure, each already prefixed with its application.
    Invalid(Vec<String>),
}

impl From<CfError> for ManifestError {
    fn from(e: CfError) -> Self {
        Self::Cf(e)
    }
}

impl IntoResponse for ManifestError {
    fn into_response(self) -> Response {
        match self {
            Self::Cf(e) => e.into_response(),
            Self::Invalid(messages) => {
                let errors: Vec<Value> = messages
                    .into_iter()
                    .map(|m| {
                        let e = CfError::Unprocessable(m);
                        let (_, title, code) = e.parts();
                        json!({"detail": e.to_string(), "title": title, "code": code})
                    })
                    .collect();
                (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"errors": errors}))).into_response()
            }
        }
    }
}

/// One process's settings from a manifest (the top level describes `web`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcessManifest {
    /// The process type.
    pub type_: String,
    /// Instances.
    pub instances: Option<i32>,
    /// Memory in MB.
    pub memory_mb: Option<i64>,
    /// Disk in MB.
    pub disk_mb: Option<i64>,
    /// Log rate limit in bytes per second (-1 unlimited).
    pub log_rate: Option<i64>,
    /// The command: `Some(None)` resets it to the droplet's.
    pub command: Option<Option<String>>,
    /// The health check type.
    pub health_check_type: Option<HealthCheckType>,
    /// The HTTP health check endpoint.
    pub endpoint: Option<String>,
    /// Seconds one check may take.
    pub invocation_timeout: Option<i32>,
    /// Seconds an instance has to become healthy.
    pub timeout: Option<i32>,
    /// Seconds between checks.
    pub interval: Option<i32>,
}

/// A route of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteManifest {
    /// As written, `host.domain/path` or `domain:port`.
    pub route: String,
    /// The destination protocol, if given.
    pub protocol: Option<RouteProtocol>,
}

/// A service binding of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceManifest {
    /// The service instance's name in the space.
    pub name: String,
    /// The binding's name.
    pub binding_name: Option<String>,
    /// Whether binding parameters were given.
    pub parameters: bool,
}

/// One application of a manifest, validated.
#[derive(Debug, Clone, Default)]
pub struct AppManifest {
    /// The app's name.
    pub name: String,
    /// `docker.image`: the app is a docker app.
    pub docker_image: Option<String>,
    /// An explicit `lifecycle`.
    pub lifecycle: Option<LifecycleType>,
    /// `buildpacks` (or the singular `buildpack`).
    pub buildpacks: Option<Vec<String>>,
    /// `stack`.
    pub stack: Option<String>,
    /// `env`, values as strings.
    pub env: Option<BTreeMap<String, String>>,
    /// Per process type, `web` first when present.
    pub processes: Vec<ProcessManifest>,
    /// `routes`.
    pub routes: Option<Vec<RouteManifest>>,
    /// `no-route: true`.
    pub no_route: bool,
    /// `random-route: true`.
    pub random_route: bool,
    /// `default-route: true`.
    pub default_route: bool,
    /// `services`.
    pub services: Option<Vec<ServiceManifest>>,
    /// `metadata`.
    pub metadata: Option<MetadataBody>,
}

/// Whether a request's Content-Type is YAML.
fn is_yaml(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .is_some_and(|v| {
            matches!(
                v.as_str(),
                "application/x-yaml" | "application/yaml" | "text/yaml" | "text/x-yaml"
            )
        })
}

/// The `applications` of a YAML manifest, as JSON values, with CC's document-level errors.
pub fn parse_document(body: &[u8]) -> Result<Vec<Value>, ManifestError> {
    let doc: Value =
        serde_yaml::from_slice(body).map_err(|e| CfError::MessageParse(format!("invalid YAML: {e}")))?;
    let Value::Object(doc) = doc else {
        return Err(CfError::MessageParse("invalid request body".into()).into());
    };
    match doc.get("version") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_i64() == Some(1) => {}
        Some(_) => {
            return Err(CfError::Unprocessable(
                "Unsupported manifest schema version. Currently supported versions: [1].".into(),
            )
            .into());
        }
    }
    match doc.get("applications") {
        Some(Value::Array(apps)) if !apps.is_empty() => Ok(apps.clone()),
        Some(Value::Array(_) | Value::Null) | None => {
            Err(CfError::Unprocessable("Cannot parse manifest with no 'applications' field.".into()).into())
        }
        Some(_) => Err(CfError::Unprocessable("Applications must be an array of applications".into()).into()),
    }
}

/// Validates every application, CC-style: all problems, each prefixed with its application.
pub fn parse_apps(apps: &[Value]) -> Result<Vec<AppManifest>, ManifestError> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, app) in apps.iter().enumerate() {
        match parse_app(app) {
            Ok(m) => out.push(m),
            Err(problems) => {
                let prefix = match app
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.trim().is_empty())
                {
                    Some(name) => format!("For application '{name}': "),
                    None => format!("For application at index {i}: "),
                };
                errors.extend(problems.into_iter().map(|p| format!("{prefix}{p}")));
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ManifestError::Invalid(errors))
    }
}

/// A manifest key with dashes as underscores (CC underscores keys before validating).
fn underscored(map: &Map<String, Value>) -> BTreeMap<String, Value> {
    map.iter()
        .map(|(k, v)| (k.replace('-', "_"), v.clone()))
        .collect()
}

/// Why a byte quantity was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ByteError {
    /// No number in front.
    NotANumber,
    /// A number without a supported unit.
    BadUnit,
}

/// Bytes in a CC byte quantity (`256M`, `1G`, `1.5GB`, `512MiB`, `100B`); units are base 2.
pub fn to_bytes(text: &str) -> Result<f64, ByteError> {
    let t = text.trim();
    let digits_end = t
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && c == '-')))
        .map_or(t.len(), |(i, _)| i);
    let (number, unit) = t.split_at(digits_end);
    let starts_numeric = number
        .trim_start_matches('-')
        .starts_with(|c: char| c.is_ascii_digit());
    if !starts_numeric {
        return Err(ByteError::NotANumber);
    }
    let value: f64 = number.parse().map_err(|_| ByteError::BadUnit)?;
    let unit = unit.to_ascii_uppercase();
    let factor: f64 = match unit.as_str() {
        "B" => 1.0,
        "K" | "KB" | "KIB" | "KI" => 1024.0,
        "M" | "MB" | "MIB" | "MI" => 1024.0 * 1024.0,
        "G" | "GB" | "GIB" | "GI" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TB" | "TIB" | "TI" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(ByteError::BadUnit),
    };
    Ok(value * factor)
}

/// Megabytes in a byte quantity (whole, rounded down).
pub fn to_mb(text: &str) -> Result<i64, ByteError> {
    #[allow(clippy::cast_possible_truncation)]
    Ok((to_bytes(text)? / (1024.0 * 1024.0)).floor() as i64)
}

/// A byte quantity in CC's human form: the largest unit that divides it (`1G`, `512M`).
pub fn human_bytes(bytes: i64) -> String {
    for (unit, size) in [("T", 1_i64 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if bytes != 0 && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

/// The text of a scalar (CC reads YAML scalars as strings for byte quantities).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A byte field in MB: `None` when absent or blank, else CC's errors.
fn mb_field(v: Option<&Value>, label: &str, errors: &mut Vec<String>) -> Option<i64> {
    let text = scalar_text(v?).filter(|t| !t.trim().is_empty())?;
    match to_mb(&text) {
        Ok(mb) if mb > 0 => Some(mb),
        Ok(_) => {
            errors.push(format!("{label} must be greater than 0MB"));
            None
        }
        Err(ByteError::BadUnit) => {
            errors.push(format!(
                "{label} must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB"
            ));
            None
        }
        Err(ByteError::NotANumber) => {
            errors.push(format!("{label} is not a number"));
            None
        }
    }
}

/// The log rate limit in bytes per second; `-1` (unlimited) and `0` need no unit.
fn log_rate_field(v: Option<&Value>, errors: &mut Vec<String>) -> Option<i64> {
    let text = scalar_text(v?).filter(|t| !t.trim().is_empty())?;
    let t = text.trim();
    if t == "-1" || t == "0" {
        return t.parse().ok();
    }
    match to_bytes(t) {
        #[allow(clippy::cast_possible_truncation)]
        Ok(b) if b >= -1.0 => Some(b.floor() as i64),
        Ok(_) => {
            errors.push("Log rate limit must be an integer greater than or equal to -1".into());
            None
        }
        Err(ByteError::BadUnit) => {
            errors.push(
                "Log rate limit per second must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB"
                    .into(),
            );
            None
        }
        Err(ByteError::NotANumber) => {
            errors.push("Log rate limit per second is not a number".into());
            None
        }
    }
}

/// An integer field with Rails' numericality messages.
fn int_field(v: Option<&Value>, label: &str, min: i64, max: i64, errors: &mut Vec<String>) -> Option<i32> {
    let v = v?;
    let n = match v {
        Value::Null => return None,
        Value::Number(n) => match n.as_i64() {
            Some(i) => i,
            None => {
                errors.push(format!("{label} must be an integer"));
                return None;
            }
        },
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(i) => i,
            Err(_) if s.trim().parse::<f64>().is_ok() => {
                errors.push(format!("{label} must be an integer"));
                return None;
            }
            Err(_) => {
                errors.push(format!("{label} is not a number"));
                return None;
            }
        },
        _ => {
            errors.push(format!("{label} is not a number"));
            return None;
        }
    };
    if n < min {
        errors.push(format!("{label} must be greater than or equal to {min}"));
        return None;
    }
    if n > max {
        errors.push(format!("{label} must be less than or equal to {max}"));
        return None;
    }
    i32::try_from(n).ok()
}

/// The settings of one process from its (underscored) manifest keys; scale problems and
/// update problems are reported as CC does, prefixed `Process "<type>": `.
fn parse_process(type_: &str, m: &BTreeMap<String, Value>, errors: &mut Vec<String>) -> ProcessManifest {
    let mut problems = Vec::new();
    let mut p = ProcessManifest {
        type_: type_.to_owned(),
        instances: int_field(m.get("instances"), "Instances", 0, 2000, &mut problems),
        memory_mb: mb_field(m.get("memory"), "Memory", &mut problems),
        disk_mb: mb_field(m.get("disk_quota"), "Disk quota", &mut problems),
        log_rate: log_rate_field(m.get("log_rate_limit_per_second"), &mut problems),
        ..ProcessManifest::default()
    };
    if let Some(c) = m.get("command") {
        p.command = match c {
            Value::Null => Some(None),
            Value::String(s) if s.is_empty() || s.len() > 4096 => {
                problems.push("Command must be between 1 and 4096 characters".into());
                None
            }
            Value::String(s) if s == "null" || s == "default" => Some(None),
            Value::String(s) => Some(Some(s.clone())),
            _ => {
                problems.push("Command must be a string".into());
                None
            }
        };
    }
    if let Some(t) = m.get("health_check_type") {
        p.health_check_type = match t.as_str() {
            Some("port") => Some(HealthCheckType::Port),
            Some("process" | "none") => Some(HealthCheckType::Process),
            Some("http") => Some(HealthCheckType::Http),
            _ => {
                problems.push(r#"Health check type must be "port", "process", or "http""#.into());
                None
            }
        };
    }
    if let Some(e) = m.get("health_check_http_endpoint") {
        match e {
            Value::Null => {}
            Value::String(s) if s.starts_with('/') && !s.contains(char::is_whitespace) && s.len() <= 255 => {
                p.endpoint = Some(s.clone());
            }
            _ => problems.push("Health check http endpoint must be a valid URI path".into()),
        }
        if m.contains_key("health_check_type") && p.health_check_type != Some(HealthCheckType::Http) {
            problems.push(r#"Health check type must be "http" to set a health check HTTP endpoint"#.into());
        }
    }
    p.invocation_timeout = int_field(
        m.get("health_check_invocation_timeout"),
        "Health check invocation timeout",
        1,
        600,
        &mut problems,
    );
    p.interval = int_field(
        m.get("health_check_interval"),
        "Health check interval",
        1,
        600,
        &mut problems,
    );
    p.timeout = int_field(m.get("timeout"), "Timeout", 1, 3600, &mut problems);
    errors.extend(problems.into_iter().map(|e| format!("Process \"{type_}\": {e}")));
    p
}

/// The process keys the top level of an app may carry for `web`.
const WEB_KEYS: &[&str] = &[
    "instances",
    "memory",
    "disk_quota",
    "log_rate_limit_per_second",
    "command",
    "health_check_type",
    "health_check_http_endpoint",
    "health_check_invocation_timeout",
    "health_check_interval",
    "timeout",
];

fn bool_field(v: Option<&Value>, label: &str, errors: &mut Vec<String>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(format!("{label} must be a boolean"));
            false
        }
    }
}

/// Splits a manifest route into (scheme, host, port, path); `None` when it is no URL at all.
pub fn split_route(route: &str) -> Option<(String, String, Option<i32>, String)> {
    let (scheme, rest) = match route.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("unspecified".to_owned(), route),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            Some(p.parse::<i32>().ok().filter(|p| (1..=65535).contains(p))?),
        ),
        None => (authority, None),
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
        return None;
    }
    let ok_scheme = if port.is_some() {
        matches!(scheme.as_str(), "tcp" | "unspecified")
    } else {
        matches!(scheme.as_str(), "http" | "https" | "unspecified")
    };
    ok_scheme.then(|| (scheme, host.to_ascii_lowercase(), port, path.to_owned()))
}

fn parse_routes(v: &Value, errors: &mut Vec<String>) -> Option<Vec<RouteManifest>> {
    let Some(items) = v.as_array().filter(|items| {
        items.iter().all(|r| {
            r.get("route")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        })
    }) else {
        errors.push("Routes must be a list of route objects".into());
        return None;
    };
    let mut out = Vec::new();
    for item in items {
        let route = item
            .get("route")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if split_route(&route).is_none() {
            errors.push(format!("The route '{route}' is not a properly formed URL"));
            continue;
        }
        let protocol = match item.get("protocol") {
            None | Some(Value::Null) => None,
            Some(p) => match p.as_str() {
                Some("http1") => Some(RouteProtocol::Http1),
                Some("http2") => Some(RouteProtocol::Http2),
                Some("tcp") => Some(RouteProtocol::Tcp),
                _ => {
                    errors.push("Route protocol must be 'http1', 'http2' or 'tcp'.".into());
                    continue;
                }
            },
        };
        out.push(RouteManifest { route, protocol });
    }
    Some(out)
}

fn parse_services(v: &Value, errors: &mut Vec<String>) -> Option<Vec<ServiceManifest>> {
    let parsed: Option<Vec<ServiceManifest>> = v.as_array().and_then(|items| {
        items
            .iter()
            .map(|s| match s {
                Value::String(name) => Some(ServiceManifest {
                    name: name.clone(),
                    binding_name: None,
                    parameters: false,
                }),
                Value::Object(o) => {
                    let keys_ok = o
                        .keys()
                        .all(|k| matches!(k.as_str(), "name" | "parameters" | "binding_name"));
                    let params_ok = o.get("parameters").is_none_or(Value::is_object);
                    let binding_name = match o.get("binding_name") {
                        None => None,
                        Some(Value::String(b)) => Some(b.clone()),
                        Some(_) => return None,
                    };
                    let name = o.get("name").and_then(Value::as_str)?;
                    (keys_ok && params_ok).then(|| ServiceManifest {
                        name: name.to_owned(),
                        binding_name,
                        parameters: o.contains_key("parameters"),
                    })
                }
                _ => None,
            })
            .collect()
    });
    if parsed.is_none() {
        errors.push("Services must be a list of service instances".into());
    }
    parsed
}

fn parse_env(v: &Value, errors: &mut Vec<String>) -> Option<BTreeMap<String, String>> {
    let Some(map) = v.as_object() else {
        errors.push("Env must be an object of keys and values".into());
        return None;
    };
    let mut env = BTreeMap::new();
    for (k, v) in map {
        let upper = k.to_ascii_uppercase();
        if k.is_empty() {
            errors.push("Env key must be a minimum length of 1".into());
        } else if upper.starts_with("VCAP_") {
            errors.push("Env cannot start with VCAP_".into());
        } else if upper.starts_with("VMC") {
            errors.push("Env cannot start with VMC_".into());
        } else if upper == "PORT" {
            errors.push("Env cannot set PORT".into());
        } else if !k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            // Kubernetes env names are stricter than CC's: refuse here rather than half-apply.
            errors.push(format!(
                "Env key '{k}' must start with a letter or underscore and contain only letters, digits and underscores"
            ));
        } else {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            env.insert(k.clone(), value);
        }
    }
    Some(env)
}

/// One application, validated, or every problem found in it (without the app prefix).
pub fn parse_app(app: &Value) -> Result<AppManifest, Vec<String>> {
    let Some(raw) = app.as_object() else {
        return Err(vec!["Application must be an object".into()]);
    };
    let m = underscored(raw);
    let mut errors = Vec::new();
    let name = match m.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_) | Value::Null) | None => {
            errors.push("Name must not be empty".into());
            String::new()
        }
        Some(_) => {
            errors.push("Name must be a string".into());
            String::new()
        }
    };
    let mut manifest = AppManifest {
        name,
        ..AppManifest::default()
    };
    // Processes: an entry for `web` replaces the top-level settings, as in CC.
    let mut entries: Vec<(String, BTreeMap<String, Value>)> = Vec::new();
    let top: BTreeMap<String, Value> = m
        .iter()
        .filter(|(k, _)| WEB_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let listed: Vec<BTreeMap<String, Value>> = match m.get("processes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut listed = Vec::new();
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            let mut untyped = false;
            for item in items {
                let Some(o) = item.as_object() else {
                    untyped = true;
                    continue;
                };
                let p = underscored(o);
                match p.get("type").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    Some(t) => {
                        *seen.entry(t.to_owned()).or_default() += 1;
                        listed.push(p);
                    }
                    None => untyped = true,
                }
            }
            if untyped {
                errors.push("All Processes must specify a type".into());
            }
            for (t, n) in &seen {
                if *n > 1 {
                    errors.push(format!("Process \"{t}\" may only be present once"));
                }
            }
            listed
        }
        Some(_) => {
            errors.push("Processes must be an array of process configurations".into());
            Vec::new()
        }
    };
    let type_of =
        |p: &BTreeMap<String, Value>| p.get("type").and_then(Value::as_str).unwrap_or("").to_owned();
    match listed.iter().find(|p| type_of(p) == "web") {
        Some(web) => entries.push(("web".to_owned(), web.clone())),
        None if !top.is_empty() => entries.push(("web".to_owned(), top)),
        None => {}
    }
    for p in listed.iter().filter(|p| type_of(p) != "web") {
        let t = type_of(p);
        let valid_type = t.len() <= 63
            && t.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && t.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_type {
            errors.push(format!(
                "Process \"{t}\": Type must consist of lower case letters, digits, '-' and '_'"
            ));
            continue;
        }
        entries.push((t, p.clone()));
    }
    for (t, p) in &entries {
        let process = parse_process(t, p, &mut errors);
        manifest.processes.push(process);
    }
    // Lifecycle.
    let docker = m.get("docker").filter(|d| !d.is_null());
    if let Some(d) = docker {
        match d.get("image") {
            Some(Value::String(i)) if !i.trim().is_empty() && !i.contains(char::is_whitespace) => {
                manifest.docker_image = Some(i.clone());
            }
            _ => errors.push("Docker image must be a non-empty string".into()),
        }
        if d.as_object()
            .is_some_and(|o| o.keys().any(|k| k != "image" && k != "username"))
        {
            errors.push("Docker must contain only 'image' and 'username'".into());
        }
    }
    let buildpack = m.get("buildpack").filter(|b| !b.is_null());
    let buildpacks = m.get("buildpacks").filter(|b| !b.is_null());
    if buildpack.is_some() && buildpacks.is_some() {
        errors.push("Buildpack and Buildpacks fields cannot be used together.".into());
    }
    if docker.is_some() && (buildpack.is_some() || buildpacks.is_some()) {
        errors.push("Cannot specify both buildpack(s) and docker keys".into());
    }
    if let Some(b) = buildpacks {
        match b.as_array().and_then(|a| {
            a.iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        }) {
            Some(list) => manifest.buildpacks = Some(list),
            None => errors.push("Buildpacks must be a list of strings".into()),
        }
    }
    if let Some(b) = buildpack {
        match b.as_str() {
            Some("default" | "null") => manifest.buildpacks = Some(Vec::new()),
            Some(s) => manifest.buildpacks = Some(vec![s.to_owned()]),
            None => errors.push("Buildpack must be a string".into()),
        }
    }
    match m.get("stack") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => manifest.stack = Some(s.clone()),
        Some(_) => errors.push("Stack must be a string".into()),
    }
    if docker.is_some() && manifest.stack.is_some() {
        errors.push("Stack cannot be configured for a docker lifecycle app".into());
    }
    match m.get("lifecycle") {
        None | Some(Value::Null) => {}
        Some(l) => match l.as_str() {
            Some("buildpack") => manifest.lifecycle = Some(LifecycleType::Buildpack),
            Some("cnb") => manifest.lifecycle = Some(LifecycleType::Cnb),
            Some("docker") => manifest.lifecycle = Some(LifecycleType::Docker),
            _ => errors.push("Lifecycle must be 'buildpack', 'cnb' or 'docker'".into()),
        },
    }
    if manifest.lifecycle == Some(LifecycleType::Docker) && docker.is_none() {
        errors.push("Lifecycle 'docker' needs a docker image".into());
    }
    if manifest.lifecycle.is_some_and(|l| l != LifecycleType::Docker) && docker.is_some() {
        errors.push("Cannot specify both buildpack(s) and docker keys".into());
    }
    if let Some(e) = m.get("env").filter(|e| !e.is_null()) {
        manifest.env = parse_env(e, &mut errors);
    }
    // Routes.
    if let Some(r) = m.get("routes").filter(|r| !r.is_null()) {
        manifest.routes = parse_routes(r, &mut errors);
    }
    manifest.no_route = bool_field(m.get("no_route"), "No-route", &mut errors);
    manifest.default_route = bool_field(m.get("default_route"), "Default-route", &mut errors);
    manifest.random_route = bool_field(m.get("random_route"), "Random-route", &mut errors);
    if manifest.random_route && manifest.default_route {
        errors.push("Random-route and default-route may not be used together".into());
    }
    if let Some(s) = m.get("services").filter(|s| !s.is_null()) {
        manifest.services = parse_services(s, &mut errors);
    }
    if let Some(md) = m.get("metadata").filter(|md| !md.is_null()) {
        match serde_json::from_value::<MetadataBody>(md.clone()) {
            Ok(body) => match body.check() {
                Ok(()) => manifest.metadata = Some(body),
                Err(e) => errors.push(e.to_string()),
            },
            Err(_) => {
                errors.push("Metadata must be an object with 'labels' and 'annotations' of strings".into())
            }
        }
    }
    if m.get("sidecars").is_some_and(|s| !s.is_null() && !s.is_array()) {
        errors.push("Sidecars must be an array of sidecar configurations".into());
    }
    if errors.is_empty() {
        Ok(manifest)
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------------------------------------
// Planning: everything that can be refused is refused before the first write
// ---------------------------------------------------------------------------------------------

/// A route a manifest maps, resolved against the foundation's domains and routes.
#[derive(Debug, Clone)]
struct Target {
    route: String,
    host: String,
    domain: Arc<CFDomain>,
    path: String,
    port: Option<i32>,
    protocol: Option<RouteProtocol>,
}

/// One application's plan.
struct Plan {
    manifest: AppManifest,
    existing: Option<Arc<CFApp>>,
    routes: Vec<Target>,
    /// The service instances to bind (GUID, binding name).
    services: Vec<(String, Option<String>)>,
}

/// Whether a host label is one Kubernetes (an Ingress host) and CC both accept.
fn valid_host(host: &str) -> bool {
    host == "*"
        || (host.len() <= 63
            && host.starts_with(|c: char| c.is_ascii_alphanumeric())
            && host.ends_with(|c: char| c.is_ascii_alphanumeric())
            && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// Resolves a manifest route as CC does: the whole host as a domain first (a route on the bare
/// domain), then its first label as the host on the rest.
fn resolve(
    state: &ApiState,
    org: &str,
    space: &str,
    admin: bool,
    r: &RouteManifest,
) -> Result<Target, String> {
    let (_, full, port, path) = split_route(&r.route)
        .ok_or_else(|| format!("The route '{}' is not a properly formed URL", r.route))?;
    let mut candidates = Vec::new();
    if !full.starts_with('*') {
        candidates.push((String::new(), full.clone()));
    }
    if let Some((host, domain)) = full.split_once('.') {
        candidates.push((host.to_owned(), domain.to_owned()));
    }
    let root = state.config.root_namespace.as_str();
    for (host, domain_name) in candidates {
        let Some(domain) = state.caches.domains.find(|d| {
            d.spec.name == domain_name
                && d.namespace().as_deref() == Some(root)
                && d.metadata.deletion_timestamp.is_none()
                && usable_by(d, |o| o == org, true)
        }) else {
            continue;
        };
        let prefix = format!("For route '{}': ", r.route);
        let (host, path) = if port.is_some() {
            if !host.is_empty() || !path.is_empty() {
                return Err(format!(
                    "{prefix}Hosts and paths are not supported for TCP routes."
                ));
            }
            (host, path)
        } else {
            match check_address(Some(&host), Some(&path), None, &domain, admin) {
                Ok(a) => (a.host, a.path),
                Err(e) => return Err(format!("{prefix}{e}")),
            }
        };
        let guid = domain.name_any();
        let existing = state.caches.routes.find(|x| {
            x.spec.host == host
                && x.spec.domain_guid == guid
                && x.spec.path == path
                && x.spec.port == port
                && x.metadata.deletion_timestamp.is_none()
        });
        if existing
            .as_ref()
            .is_some_and(|x| x.namespace().as_deref() != Some(space))
        {
            return Err(format!(
                "{prefix}Routes cannot be mapped to destinations in different spaces"
            ));
        }
        return Ok(Target {
            route: r.route.clone(),
            host,
            domain,
            path,
            port,
            protocol: r.protocol,
        });
    }
    Err(format!("No domains exist for route {}", r.route))
}

/// The routes of a space mapped to `app`.
fn mapped_routes(state: &ApiState, space: &str, app: &str) -> Vec<Arc<CFRoute>> {
    state
        .caches
        .routes
        .state()
        .into_iter()
        .filter(|r| {
            r.namespace().as_deref() == Some(space)
                && r.metadata.deletion_timestamp.is_none()
                && r.spec.destinations.iter().any(|d| d.app_guid == app)
        })
        .collect()
}

fn find_app(state: &ApiState, space: &str, name: &str) -> Option<Arc<CFApp>> {
    state.caches.apps.find(|a| {
        a.namespace().as_deref() == Some(space)
            && a.spec.display_name == name
            && a.metadata.deletion_timestamp.is_none()
    })
}

/// The plan of every app, or every reason the manifest cannot apply to this space.
fn plan(
    state: &ApiState,
    org: &str,
    space: &str,
    admin: bool,
    apps: Vec<AppManifest>,
) -> Result<Vec<Plan>, ManifestError> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for m in apps {
        let mut problems = Vec::new();
        let existing = find_app(state, space, &m.name);
        if let Some(app) = &existing {
            let docker = app.spec.lifecycle.type_ == LifecycleType::Docker;
            if docker && m.buildpacks.is_some() {
                problems.push("Buildpacks cannot be configured for a docker lifecycle app.".to_owned());
            }
            if !docker && m.docker_image.is_some() {
                problems.push("Docker cannot be configured for a buildpack lifecycle app.".to_owned());
            }
        }
        let mut routes = Vec::new();
        if !m.no_route {
            for r in m.routes.iter().flatten() {
                match resolve(state, org, space, admin, r) {
                    Ok(t) => routes.push(t),
                    Err(e) => problems.push(e),
                }
            }
        }
        let unrouted = existing
            .as_ref()
            .is_none_or(|a| mapped_routes(state, space, &a.name_any()).is_empty());
        if !m.no_route && m.routes.is_none() && unrouted && (m.default_route || m.random_route) {
            if default_domain(state).is_none() {
                problems.push("No default domains available".to_owned());
            } else if m.default_route {
                let prefix = "Failed to create default route from app name:";
                if m.name.len() > 63 {
                    problems.push(format!("{prefix} Host cannot exceed 63 characters"));
                } else if !valid_host(&m.name.to_ascii_lowercase()) || m.name == "*" {
                    problems.push(format!(
                        "{prefix} Host must be either \"*\" or contain only alphanumeric characters, \"_\", or \"-\""
                    ));
                }
            }
        }
        let mut services = Vec::new();
        for s in m.services.iter().flatten() {
            match state.caches.service_instances.find(|i| {
                i.namespace().as_deref() == Some(space)
                    && i.spec.display_name == s.name
                    && i.metadata.deletion_timestamp.is_none()
            }) {
                Some(i) if i.spec.type_ != ServiceInstanceType::UserProvided => problems.push(format!(
                    "For service '{}': Bindings of managed service instances are not supported: kubefoundry serves user-provided service instances only",
                    s.name
                )),
                Some(_) if s.parameters => problems.push(format!(
                    "For service '{}': Binding parameters are not supported for user-provided service instances",
                    s.name
                )),
                Some(i) => services.push((i.name_any(), s.binding_name.clone())),
                None => problems.push(format!("Service instance '{}' not found", s.name)),
            }
        }
        if problems.is_empty() {
            plans.push(Plan {
                manifest: m,
                existing,
                routes,
                services,
            });
        } else {
            errors.extend(
                problems
                    .into_iter()
                    .map(|p| format!("For application '{}': {p}", m.name)),
            );
        }
    }
    if errors.is_empty() {
        Ok(plans)
    } else {
        Err(ManifestError::Invalid(errors))
    }
}

// ---------------------------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------------------------

/// The JSON merge patch turning `old` into `new` (`null` removes), or `None` when equal.
pub fn merge_patch(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            for (k, v) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(p) = merge_patch(ov, v) {
                            patch.insert(k.clone(), p);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), v.clone());
                    }
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        _ => Some(new.clone()),
    }
}

/// Writes the changes `edit` makes to `current` (spec, labels, annotations) as the caller;
/// nothing when it changes nothing. With `lock`, the write carries the resourceVersion
/// (lists such as route destinations are replaced whole by a merge patch).
async fn update<K: resource::CfKind>(
    state: &ApiState,
    caller: &Caller,
    current: &K,
    lock: bool,
    edit: impl FnOnce(&mut K),
) -> CfResult<()> {
    let mut next = current.clone();
    edit(&mut next);
    let old = serde_json::to_value(current).map_err(CfError::internal)?;
    let new = serde_json::to_value(&next).map_err(CfError::internal)?;
    let mut patch = Map::new();
    if let Some(p) = merge_patch(&old["spec"], &new["spec"]) {
        patch.insert("spec".into(), p);
    }
    let mut meta = Map::new();
    for key in ["labels", "annotations"] {
        let norm = |v: &Value| if v.is_null() { json!({}) } else { v.clone() };
        if let Some(p) = merge_patch(&norm(&old["metadata"][key]), &norm(&new["metadata"][key])) {
            meta.insert(key.into(), p);
        }
    }
    if patch.is_empty() && meta.is_empty() {
        return Ok(());
    }
    if lock {
        meta.insert(
            "resourceVersion".into(),
            old["metadata"]["resourceVersion"].clone(),
        );
    }
    if !meta.is_empty() {
        patch.insert("metadata".into(), Value::Object(meta));
    }
    resource::patch(state, caller, current, &Value::Object(patch)).await?;
    Ok(())
}

/// Sets what a manifest says about a process on its spec.
fn configure(process: &mut CFProcess, p: &ProcessManifest) {
    let s = &mut process.spec;
    if let Some(i) = p.instances {
        s.instances = i;
    }
    if let Some(m) = p.memory_mb {
        s.memory_in_mb = Some(m);
    }
    if let Some(d) = p.disk_mb {
        s.disk_in_mb = Some(d);
    }
    if let Some(l) = p.log_rate {
        s.log_rate_limit_in_bytes_per_second = Some(l);
    }
    if let Some(c) = &p.command {
        s.command.clone_from(c);
    }
    if let Some(t) = p.health_check_type {
        s.health_check.type_ = t;
        if t != HealthCheckType::Http {
            // The CRD allows an endpoint only on http checks.
            s.health_check.endpoint = None;
        }
    }
    if p.endpoint.is_some() {
        s.health_check.endpoint.clone_from(&p.endpoint);
    }
    if let Some(t) = p.invocation_timeout {
        s.health_check.invocation_timeout = Some(t);
    }
    if let Some(t) = p.timeout {
        s.health_check.timeout = Some(t);
    }
    if let Some(t) = p.interval {
        s.health_check.interval = Some(t);
    }
}

fn find_process(state: &ApiState, app: &CFApp, type_: &str) -> Option<Arc<CFProcess>> {
    let name = names::process(&app.name_any(), type_);
    state
        .caches
        .processes
        .find(|p| p.name_any() == name && p.namespace() == app.namespace())
}

async fn apply_process(state: &ApiState, caller: &Caller, app: &CFApp, p: &ProcessManifest) -> CfResult<()> {
    if let Some(current) = find_process(state, app, &p.type_) {
        return update(state, caller, &*current, false, |x| configure(x, p)).await;
    }
    let mut process = new_process(app, &p.type_, &state.config.app_defaults);
    configure(&mut process, p);
    match resource::create(state, caller, &process).await {
        Ok(_) => Ok(()),
        // The controller made it first (a droplet declaring this type): update that one.
        Err(CfError::Uniqueness(_)) => {
            resource::wait(|| find_process(state, app, &p.type_).is_some()).await;
            let current = find_process(state, app, &p.type_).ok_or(CfError::NotFound("Process"))?;
            update(state, caller, &*current, false, |x| configure(x, p)).await
        }
        Err(e) => Err(e),
    }
}

fn destination(app: &str, protocol: Option<RouteProtocol>) -> Destination {
    Destination {
        guid: resource::new_guid(),
        app_guid: app.to_owned(),
        process_type: "web".to_owned(),
        port: None,
        weight: None,
        protocol,
    }
}

/// Maps `app`'s web process to the route, creating the route in the space when missing.
async fn map_route(state: &ApiState, caller: &Caller, space: &str, app: &str, t: &Target) -> CfResult<()> {
    let domain_guid = t.domain.name_any();
    let lookup = || {
        state.caches.routes.find(|x| {
            x.spec.host == t.host
                && x.spec.domain_guid == domain_guid
                && x.spec.path == t.path
                && x.spec.port == t.port
                && x.metadata.deletion_timestamp.is_none()
        })
    };
    for attempt in 1..=5 {
        let Some(route) = lookup() else {
            let guid = resource::new_guid();
            let spec = CFRouteSpec {
                host: t.host.clone(),
                path: t.path.clone(),
                port: t.port,
                protocol: if t.port.is_some() {
                    RouteProtocol::Tcp
                } else {
                    RouteProtocol::Http1
                },
                domain_guid: domain_guid.clone(),
                destinations: vec![destination(app, t.protocol)],
            };
            let claim = route_claim(state, &spec);
            let taken = claim
                .take(
                    state,
                    &guid,
                    |holder| state.caches.routes.find(|r| r.name_any() == holder).is_some(),
                    || CfError::Unprocessable("Route already exists".into()),
                )
                .await;
            if taken.is_err() {
                // Someone else is creating it: map to theirs once it is visible.
                resource::wait(|| lookup().is_some()).await;
                continue;
            }
            let mut route = CFRoute::new(&guid, spec);
            route.metadata.namespace = Some(space.to_owned());
            route.metadata.labels = Some(BTreeMap::from([
                (DOMAIN_GUID.to_owned(), domain_guid.clone()),
                (SPACE_GUID.to_owned(), space.to_owned()),
            ]));
            if let Err(e) = resource::create(state, caller, &route).await {
                claim.release(state).await;
                return Err(e);
            }
            return Ok(());
        };
        if route.namespace().as_deref() != Some(space) {
            return Err(CfError::Unprocessable(
                "Routes cannot be mapped to destinations in different spaces".into(),
            ));
        }
        let result = update(state, caller, &*route, true, |r| {
            match r
                .spec
                .destinations
                .iter_mut()
                .find(|d| d.app_guid == app && d.process_type == "web")
            {
                None => r.spec.destinations.push(destination(app, t.protocol)),
                Some(d) => {
                    if t.protocol.is_some() && d.protocol != t.protocol {
                        d.protocol = t.protocol;
                    }
                }
            }
        })
        .await;
        match result {
            // Another writer changed the destinations meanwhile: re-read and retry.
            Err(CfError::Uniqueness(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await
            }
            other => return other,
        }
    }
    Err(CfError::Unavailable(format!(
        "the route {} kept changing; retry the push",
        t.route
    )))
}

/// Removes `app` from every route of the space.
async fn unmap_all(state: &ApiState, caller: &Caller, space: &str, app: &str) -> CfResult<()> {
    for route in mapped_routes(state, space, app) {
        let name = route.name_any();
        let mut attempt = 0;
        while let Some(current) = state.caches.routes.find(|r| r.name_any() == name) {
            let result = update(state, caller, &*current, true, |r| {
                r.spec.destinations.retain(|d| d.app_guid != app);
            })
            .await;
            match result {
                // The cache lagged a write (the controller's status, another mapping): retry
                // from a fresher copy.
                Err(CfError::Uniqueness(_)) if attempt < 5 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                }
                other => {
                    other?;
                    break;
                }
            }
        }
    }
    Ok(())
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "daring", "eager", "fancy", "gentle", "happy", "jolly", "kind", "lively", "merry",
    "nimble", "proud", "quiet", "rapid", "shy", "silly", "sunny", "swift", "tidy", "witty", "zany", "bold",
    "chilly",
];
const NOUNS: &[&str] = &[
    "antelope", "badger", "camel", "dolphin", "eland", "ferret", "gecko", "hyena", "impala", "jackal",
    "koala", "lemur", "meerkat", "narwhal", "ocelot", "panda", "quokka", "raccoon", "serval", "tapir",
    "urchin", "vole", "walrus", "yak",
];

/// A random host for `name`, as CC makes them: `<name>-<adjective>-<noun>-<two letters>`.
pub fn random_host(name: &str) -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let pick = |list: &[&'static str], b: u8| list[usize::from(b) % list.len()];
    let letter = |b: u8| char::from(b'a' + b % 26);
    let base: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let suffix = format!(
        "-{}-{}-{}{}",
        pick(ADJECTIVES, bytes[0]),
        pick(NOUNS, bytes[1]),
        letter(bytes[2]),
        letter(bytes[3])
    );
    let keep = 63usize.saturating_sub(suffix.len());
    let base: String = base.chars().take(keep).collect();
    let base = base.trim_matches('-');
    let host = format!("{base}{suffix}");
    host.trim_start_matches('-').to_owned()
}

/// The lifecycle a manifest asks for a new app.
fn lifecycle_of(m: &AppManifest, current: Option<&Lifecycle>) -> Lifecycle {
    let mut l = current.cloned().unwrap_or_default();
    if m.docker_image.is_some() {
        return Lifecycle {
            type_: LifecycleType::Docker,
            buildpacks: Vec::new(),
            stack: None,
        };
    }
    if let Some(t) = m.lifecycle {
        l.type_ = t;
    }
    if let Some(b) = &m.buildpacks {
        l.buildpacks.clone_from(b);
    }
    if m.stack.is_some() {
        l.stack.clone_from(&m.stack);
    }
    l
}

/// Applies one application's plan as the caller.
async fn apply_one(state: &ApiState, caller: &Caller, space: &str, plan: &Plan) -> CfResult<()> {
    let m = &plan.manifest;
    let app = match &plan.existing {
        None => {
            create_app(
                state,
                caller,
                space,
                &m.name,
                lifecycle_of(m, None),
                m.env.clone().unwrap_or_default(),
                m.metadata.as_ref(),
            )
            .await?
        }
        Some(current) => {
            update(state, caller, &**current, false, |a| {
                a.spec.lifecycle = lifecycle_of(m, Some(&current.spec.lifecycle));
                if let Some(env) = &m.env {
                    a.spec.env.extend(env.clone());
                }
                if let Some(md) = &m.metadata {
                    md.apply_to(&mut a.metadata);
                }
            })
            .await?;
            (**current).clone()
        }
    };
    let guid = app.name_any();
    for p in &m.processes {
        apply_process(state, caller, &app, p).await?;
    }
    if m.no_route {
        unmap_all(state, caller, space, &guid).await?;
    } else if m.routes.is_some() {
        for t in &plan.routes {
            map_route(state, caller, space, &guid, t).await?;
        }
    } else if (m.default_route || m.random_route) && mapped_routes(state, space, &guid).is_empty() {
        let domain = default_domain(state)
            .ok_or_else(|| CfError::Unprocessable("No default domains available".into()))?;
        let host = if m.random_route {
            random_host(&m.name)
        } else {
            m.name.to_ascii_lowercase()
        };
        let org = resource::Cx::new(state).org_of_space(space).unwrap_or_default();
        let r = RouteManifest {
            route: format!("{host}.{}", domain.spec.name),
            protocol: None,
        };
        let t = resolve(state, &org, space, caller.access.global, &r).map_err(CfError::Unprocessable)?;
        map_route(state, caller, space, &guid, &t).await?;
    }
    for (instance, binding_name) in &plan.services {
        let bound = state.caches.service_bindings.find(|b| {
            b.spec.app_guid.as_deref() == Some(&guid)
                && &b.spec.service_instance_guid == instance
                && b.spec.type_ == BindingType::App
                && b.metadata.deletion_timestamp.is_none()
        });
        if bound.is_some() {
            continue;
        }
        let binding_guid = resource::new_guid();
        let claim = binding_claim(space, &guid, instance);
        let taken = claim
            .take(
                state,
                &binding_guid,
                |g| resource::lookup::<CFServiceBinding>(&state.caches, g).is_some(),
                || CfError::Unprocessable(ALREADY_BOUND.into()),
            )
            .await;
        if taken.is_err() {
            // A concurrent `cf bind-service` bound it: the manifest's wish holds.
            continue;
        }
        let mut binding = CFServiceBinding::new(
            &binding_guid,
            CFServiceBindingSpec {
                display_name: binding_name.clone(),
                type_: BindingType::App,
                service_instance_guid: instance.clone(),
                app_guid: Some(guid.clone()),
            },
        );
        binding.metadata.namespace = Some(space.to_owned());
        if let Err(e) = resource::create(state, caller, &binding).await {
            claim.release(state).await;
            return Err(e);
        }
    }
    Ok(())
}

/// The visible space with this GUID and its org, or 404 "Space not found".
fn visible_space(state: &ApiState, caller: &Caller, guid: &str) -> CfResult<String> {
    state
        .caches
        .spaces
        .find(|s| s.name_any() == guid && s.metadata.deletion_timestamp.is_none())
        .filter(|_| caller.access.space(guid))
        .and_then(|s| s.namespace())
        .ok_or(CfError::NotFound("Space"))
}

fn require_yaml(headers: &HeaderMap) -> CfResult<()> {
    if is_yaml(headers) {
        Ok(())
    } else {
        Err(CfError::BadRequest(
            "Bad request: Content-Type must be yaml".into(),
        ))
    }
}

async fn apply(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(space): Path<String>,
    body: Bytes,
) -> Result<Response, ManifestError> {
    let caller = Caller::of(&state, &headers).await?;
    let org = visible_space(&state, &caller, &space)?;
    require_yaml(&headers)?;
    let apps = parse_apps(&parse_document(&body)?)?;
    let plans = plan(&state, &org, &space, caller.access.global, apps)?;
    let job_target = format!("{space}~{}", uuid::Uuid::new_v4());
    for p in &plans {
        if let Err(e) = apply_one(&state, &caller, &space, p).await {
            let (_, title, code) = e.parts();
            let detail = match &e {
                CfError::NotFound(kind) => format!("{kind} not found"),
                other => other.to_string(),
            };
            state.job_failures.record(
                &jobs::guid("space.apply_manifest", &job_target),
                json!({
                    "code": code,
                    "title": title,
                    "detail": format!("For application '{}': {detail}", p.manifest.name),
                }),
            );
            break;
        }
    }
    Ok(jobs::accepted(&state, "space.apply_manifest", &job_target))
}

// ---------------------------------------------------------------------------------------------
// The current manifest of an app, and the diff against it
// ---------------------------------------------------------------------------------------------

/// The URL of a route as users write it: `host.domain/path`, or `domain:port`.
fn route_url(state: &ApiState, r: &CFRoute) -> Option<String> {
    let domain = state
        .caches
        .domains
        .find(|d| d.name_any() == r.spec.domain_guid)?;
    let name = &domain.spec.name;
    Some(match r.spec.port {
        Some(port) => format!("{name}:{port}"),
        None if r.spec.host.is_empty() => format!("{name}{}", r.spec.path),
        None => format!("{}.{name}{}", r.spec.host, r.spec.path),
    })
}

fn protocol_name(p: RouteProtocol) -> &'static str {
    match p {
        RouteProtocol::Http1 => "http1",
        RouteProtocol::Http2 => "http2",
        RouteProtocol::Tcp => "tcp",
    }
}

fn health_check_name(t: HealthCheckType) -> &'static str {
    match t {
        HealthCheckType::Port => "port",
        HealthCheckType::Process => "process",
        HealthCheckType::Http => "http",
    }
}

/// One process as CC's manifest presents it.
pub fn process_manifest(p: &CFProcess) -> Value {
    let s = &p.spec;
    let mut out = Map::new();
    out.insert("type".into(), json!(s.process_type));
    out.insert("instances".into(), json!(s.instances));
    if let Some(m) = s.memory_in_mb {
        out.insert("memory".into(), json!(format!("{m}M")));
    }
    if let Some(d) = s.disk_in_mb {
        out.insert("disk_quota".into(), json!(format!("{d}M")));
    }
    out.insert(
        "log-rate-limit-per-second".into(),
        match s.log_rate_limit_in_bytes_per_second {
            None | Some(-1) => json!(-1),
            Some(b) => json!(human_bytes(b)),
        },
    );
    if let Some(c) = &s.command {
        out.insert("command".into(), json!(c));
    }
    out.insert(
        "health-check-type".into(),
        json!(health_check_name(s.health_check.type_)),
    );
    if let Some(e) = &s.health_check.endpoint {
        out.insert("health-check-http-endpoint".into(), json!(e));
    }
    if let Some(t) = s.health_check.invocation_timeout {
        out.insert("health-check-invocation-timeout".into(), json!(t));
    }
    if let Some(t) = s.health_check.interval {
        out.insert("health-check-interval".into(), json!(t));
    }
    if let Some(t) = s.health_check.timeout {
        out.insert("timeout".into(), json!(t));
    }
    Value::Object(out)
}

/// The app's current manifest entry (one element of `applications`), keys in CC's spelling.
pub fn app_manifest(state: &ApiState, app: &CFApp) -> Value {
    let guid = app.name_any();
    let space = app.namespace().unwrap_or_default();
    let mut out = Map::new();
    out.insert("name".into(), json!(app.spec.display_name));
    if !app.spec.env.is_empty() {
        out.insert("env".into(), json!(app.spec.env));
    }
    match app.spec.lifecycle.type_ {
        LifecycleType::Docker => {
            let image = state
                .caches
                .packages
                .state()
                .into_iter()
                .filter(|p| {
                    p.spec.app_guid == guid
                        && p.namespace().as_deref() == Some(space.as_str())
                        && p.spec.type_ == PackageType::Docker
                })
                .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
                .and_then(|p| p.spec.image.clone());
            if let Some(image) = image {
                out.insert("docker".into(), json!({"image": image}));
            }
        }
        LifecycleType::Buildpack | LifecycleType::Cnb => {
            let l = lifecycle_json(&app.spec.lifecycle);
            if app.spec.lifecycle.type_ == LifecycleType::Cnb {
                out.insert("lifecycle".into(), json!("cnb"));
            }
            if !app.spec.lifecycle.buildpacks.is_empty() {
                out.insert("buildpacks".into(), json!(app.spec.lifecycle.buildpacks));
            }
            out.insert("stack".into(), l["data"]["stack"].clone());
        }
    }
    let mut services: Vec<String> = state
        .caches
        .service_bindings
        .state()
        .into_iter()
        .filter(|b| b.spec.app_guid.as_deref() == Some(guid.as_str()) && b.spec.type_ == BindingType::App)
        .filter_map(|b| {
            state
                .caches
                .service_instances
                .find(|i| i.name_any() == b.spec.service_instance_guid)
                .map(|i| i.spec.display_name.clone())
        })
        .collect();
    services.sort_by_key(|s| s.to_lowercase());
    if !services.is_empty() {
        out.insert("services".into(), json!(services));
    }
    let mut routes: Vec<Value> = mapped_routes(state, &space, &guid)
        .iter()
        .filter_map(|r| {
            let url = route_url(state, r)?;
            let protocol = r
                .spec
                .destinations
                .iter()
                .find(|d| d.app_guid == guid)
                .and_then(|d| d.protocol)
                .unwrap_or(if r.spec.protocol == RouteProtocol::Tcp {
                    RouteProtocol::Tcp
                } else {
                    r.spec.protocol
                });
            Some(json!({"route": url, "protocol": protocol_name(protocol)}))
        })
        .collect();
    routes.sort_by_key(|r| r["route"].as_str().unwrap_or_default().to_lowercase());
    if !routes.is_empty() {
        out.insert("routes".into(), json!(routes));
    }
    let md = super::metadata(&app.metadata);
    let mut meta = Map::new();
    for key in ["labels", "annotations"] {
        if md[key].as_object().is_some_and(|m| !m.is_empty()) {
            meta.insert(key.into(), md[key].clone());
        }
    }
    if !meta.is_empty() {
        out.insert("metadata".into(), Value::Object(meta));
    }
    let mut processes: Vec<Arc<CFProcess>> = state
        .caches
        .processes
        .state()
        .into_iter()
        .filter(|p| p.spec.app_guid == guid && p.namespace().as_deref() == Some(space.as_str()))
        .collect();
    processes.sort_by(|a, b| a.spec.process_type.cmp(&b.spec.process_type));
    if !processes.is_empty() {
        out.insert(
            "processes".into(),
            Value::Array(processes.iter().map(|p| process_manifest(p)).collect()),
        );
    }
    Value::Object(out)
}

async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let app = resource::find::<CFApp>(&state, &caller, &guid)?;
    let doc = json!({"applications": [app_manifest(&state, &app)]});
    let yaml = serde_yaml::to_string(&doc).map_err(CfError::internal)?;
    let mut response = (StatusCode::OK, format!("---\n{yaml}")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-yaml"),
    );
    Ok(response)
}

/// The top-level keys the diff compares (CC's recognised manifest keys, dashed).
const RECOGNISED: &[&str] = &[
    "buildpack",
    "buildpacks",
    "command",
    "disk-quota",
    "log-rate-limit-per-second",
    "docker",
    "env",
    "health-check-http-endpoint",
    "health-check-invocation-timeout",
    "health-check-timeout",
    "health-check-type",
    "instances",
    "metadata",
    "memory",
    "name",
    "no-route",
    "processes",
    "random-route",
    "default-route",
    "routes",
    "services",
    "sidecars",
    "stack",
    "timeout",
];

/// The field that identifies an element of a list the diff matches up.
fn identifier(v: &Value) -> Option<(&'static str, &Value)> {
    ["type", "name", "route"]
        .into_iter()
        .find_map(|k| v.get(k).map(|id| (k, id)))
}

/// A JSON diff of `was` → `now` under `path`, CC's ops: add, remove, replace (with `was`).
pub fn json_diff(was: &Value, now: &Value, path: &str, out: &mut Vec<Value>) {
    if was == now {
        return;
    }
    match (was, now) {
        (Value::Null, _) => out.push(json!({"op": "add", "path": path, "value": now})),
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in o {
                if !n.contains_key(k) {
                    out.push(json!({"op": "remove", "path": format!("{path}/{k}"), "was": v}));
                }
            }
            for (k, v) in n {
                match o.get(k) {
                    Some(ov) => json_diff(ov, v, &format!("{path}/{k}"), out),
                    None => out.push(json!({"op": "add", "path": format!("{path}/{k}"), "value": v})),
                }
            }
        }
        (Value::Array(o), Value::Array(n)) => {
            let mut used = vec![false; o.len()];
            let mut pairs: Vec<(usize, Option<usize>)> = Vec::new();
            for (j, item) in n.iter().enumerate() {
                let matched = (0..o.len()).find(|&i| {
                    !used[i]
                        && match (identifier(&o[i]), identifier(item)) {
                            (Some((ka, a)), Some((kb, b))) => ka == kb && a == b,
                            _ => o[i] == *item,
                        }
                });
                if let Some(i) = matched {
                    used[i] = true;
                }
                pairs.push((j, matched));
            }
            // Removals from the end first, so earlier indexes stay valid.
            for (i, item) in o.iter().enumerate().rev() {
                if !used[i] {
                    out.push(json!({"op": "remove", "path": format!("{path}/{i}"), "was": item}));
                }
            }
            for (j, matched) in pairs {
                match matched {
                    Some(i) => json_diff(&o[i], &n[j], &format!("{path}/{j}"), out),
                    None => out.push(json!({"op": "add", "path": format!("{path}/{j}"), "value": n[j]})),
                }
            }
        }
        _ => out.push(json!({"op": "replace", "path": path, "was": was, "value": now})),
    }
}

/// A byte quantity normalised to MB as CC's diff does (`1G` → `1024M`); left alone if invalid.
fn normalise_mb(v: &Value) -> Value {
    scalar_text(v)
        .and_then(|t| to_mb(&t).ok())
        .map_or_else(|| v.clone(), |mb| json!(format!("{mb}M")))
}

fn normalise_log_rate(v: &Value) -> Value {
    match scalar_text(v) {
        Some(t) if t.trim() == "-1" || t.trim() == "0" => json!(t.trim()),
        Some(t) => to_bytes(&t).map_or_else(
            |_| v.clone(),
            |b| {
                #[allow(clippy::cast_possible_truncation)]
                let b = b as i64;
                json!(human_bytes(b))
            },
        ),
        None => v.clone(),
    }
}

/// The manifest's app as the diff compares it: units normalised, lists trimmed to what CC
/// compares.
fn normalise_app(app: &Map<String, Value>) -> Map<String, Value> {
    let mut out = app.clone();
    for key in ["memory", "disk-quota", "disk_quota"] {
        if let Some(v) = out.get(key).cloned() {
            out.insert(key.into(), normalise_mb(&v));
        }
    }
    if let Some(v) = out.get("log-rate-limit-per-second").cloned() {
        out.insert("log-rate-limit-per-second".into(), normalise_log_rate(&v));
    }
    if let Some(Value::Array(ps)) = out.get("processes").cloned() {
        let keep = [
            "type",
            "command",
            "disk_quota",
            "log-rate-limit-per-second",
            "health-check-http-endpoint",
            "health-check-invocation-timeout",
            "health-check-interval",
            "health-check-type",
            "instances",
            "memory",
            "timeout",
        ];
        let ps: Vec<Value> = ps
            .iter()
            .map(|p| {
                let mut m: Map<String, Value> = p
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(k, _)| keep.contains(&k.as_str()))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                for key in ["memory", "disk_quota"] {
                    if let Some(v) = m.get(key).cloned() {
                        m.insert(key.into(), normalise_mb(&v));
                    }
                }
                if let Some(v) = m.get("log-rate-limit-per-second").cloned() {
                    m.insert("log-rate-limit-per-second".into(), normalise_log_rate(&v));
                }
                Value::Object(m)
            })
            .collect();
        out.insert("processes".into(), Value::Array(ps));
    }
    // Env values apply as strings (`COUNT: 3` sets "3"), so they compare as strings.
    if let Some(Value::Object(env)) = out.get("env").cloned() {
        let env: Map<String, Value> = env
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k, Value::String(text))
            })
            .collect();
        out.insert("env".into(), Value::Object(env));
    }
    if let Some(Value::Array(ss)) = out.get("services").cloned() {
        let ss: Vec<Value> = ss
            .into_iter()
            .map(|s| match s {
                Value::Object(o) => Value::Object(
                    o.into_iter()
                        .filter(|(k, _)| k == "name" || k == "parameters")
                        .collect(),
                ),
                other => other,
            })
            .collect();
        out.insert("services".into(), Value::Array(ss));
    }
    out
}

/// CC's manifest diff of one space: per application in the manifest, what applying it would
/// change, as JSON-pointer paths under `/applications/<index>/`.
pub fn manifest_diff(apps: &[Value], existing: &[Option<Value>]) -> Vec<Value> {
    let mut diff = Vec::new();
    for (index, app) in apps.iter().enumerate() {
        let Some(app) = app.as_object() else { continue };
        let app = normalise_app(app);
        let mut current: Map<String, Value> = existing
            .get(index)
            .cloned()
            .flatten()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        if let Some(web) = current
            .get("processes")
            .and_then(Value::as_array)
            .and_then(|ps| ps.iter().find(|p| p["type"] == "web"))
            .and_then(Value::as_object)
            .cloned()
        {
            current.extend(web);
        }
        if let Some(d) = current
            .get("disk_quota")
            .cloned()
            .filter(|_| app.contains_key("disk-quota"))
        {
            current.insert("disk-quota".into(), d);
        }
        for (key, value) in &app {
            if !RECOGNISED.contains(&key.as_str()) && key != "disk_quota" {
                continue;
            }
            let mut was = current.get(key).cloned().unwrap_or(Value::Null);
            let nested = matches!(key.as_str(), "processes" | "sidecars" | "routes") && !was.is_null();
            // CC compares top-level memory and disk only through the processes.
            if !nested && matches!(key.as_str(), "memory" | "disk_quota" | "disk-quota") {
                continue;
            }
            if nested {
                prune(&mut was, value);
            }
            json_diff(&was, value, &format!("/applications/{index}/{key}"), &mut diff);
        }
    }
    diff
}

/// Drops from the current list what the manifest does not mention: elements it does not
/// list, and fields its matching element does not set (CC shows only what would change).
fn prune(was: &mut Value, now: &Value) {
    let (Some(current), Some(wanted)) = (was.as_array_mut(), now.as_array()) else {
        return;
    };
    current.retain_mut(|item| {
        let Some((k, id)) = identifier(item).map(|(k, id)| (k, id.clone())) else {
            return true;
        };
        match wanted.iter().find(|w| w.get(k) == Some(&id)) {
            None => false,
            Some(w) => {
                if let (Some(obj), Some(wobj)) = (item.as_object_mut(), w.as_object()) {
                    obj.retain(|field, _| wobj.contains_key(field));
                }
                true
            }
        }
    });
}

async fn diff(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(space): Path<String>,
    body: Bytes,
) -> Result<Response, ManifestError> {
    let caller = Caller::of(&state, &headers).await?;
    visible_space(&state, &caller, &space)?;
    require_yaml(&headers)?;
    let apps = parse_document(&body)?;
    parse_apps(&apps)?;
    let existing: Vec<Option<Value>> = apps
        .iter()
        .map(|a| {
            a.get("name")
                .and_then(Value::as_str)
                .and_then(|name| find_app(&state, &space, name))
                .map(|app| app_manifest(&state, &app))
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({"diff": manifest_diff(&apps, &existing)})),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apps(yaml: &str) -> Result<Vec<AppManifest>, ManifestError> {
        parse_apps(&parse_document(yaml.as_bytes())?)
    }

    fn invalid(yaml: &str) -> Vec<String> {
        match apps(yaml) {
            Err(ManifestError::Invalid(e)) => e,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn sizes_are_cc_byte_quantities() {
        assert_eq!(to_mb("1G"), Ok(1024));
        assert_eq!(to_mb("512M"), Ok(512));
        assert_eq!(to_mb("256MB"), Ok(256));
        assert_eq!(to_mb("2gb"), Ok(2048));
        assert_eq!(to_mb("1.5G"), Ok(1536));
        assert_eq!(to_mb("1024K"), Ok(1));
        assert_eq!(to_mb("1T"), Ok(1024 * 1024));
        assert_eq!(to_mb("512MiB"), Ok(512));
        assert_eq!(to_mb("1024"), Err(ByteError::BadUnit));
        assert_eq!(to_mb("12Q"), Err(ByteError::BadUnit));
        assert_eq!(to_mb("lots"), Err(ByteError::NotANumber));
        assert_eq!(human_bytes(1 << 30), "1G");
        assert_eq!(human_bytes(512 << 20), "512M");
        assert_eq!(human_bytes(1536), "1536B");
        assert_eq!(human_bytes(16 << 10), "16K");
    }

    #[test]
    fn the_cli_push_manifest_parses() {
        let m = apps("applications:\n- name: app\n  default-route: true\n  docker:\n    image: nginx:1.27\n")
            .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "app");
        assert!(m[0].default_route);
        assert_eq!(m[0].docker_image.as_deref(), Some("nginx:1.27"));
        assert!(m[0].processes.is_empty());
        assert_eq!(lifecycle_of(&m[0], None).type_, LifecycleType::Docker);
    }

    #[test]
    fn a_full_manifest_parses() {
        let yaml = r#"
version: 1
applications:
- name: shop
  path: /tmp/ignored
  sidecars: []
  instances: 2
  memory: 256M
  disk_quota: 1G
  log-rate-limit-per-second: 16K
  command: ./web
  health-check-type: http
  health-check-http-endpoint: /healthz
  health-check-invocation-timeout: 5
  timeout: 60
  env: {GREETING: hi, COUNT: 3}
  buildpacks: [ruby_buildpack]
  stack: cflinuxfs4
  routes:
  - route: shop.apps.example.com/api
    protocol: http2
  - route: tcp.example.com:1024
  services:
  - db
  - name: cache
    parameters: {size: small}
  metadata:
    labels: {tier: web}
    annotations: {owner: team-a}
  processes:
  - type: worker
    instances: 3
    memory: 1G
    command: ./work
    health-check-type: process
"#;
        let m = apps(yaml).unwrap().remove(0);
        assert_eq!(m.processes.len(), 2);
        let web = &m.processes[0];
        assert_eq!(web.type_, "web");
        assert_eq!(web.instances, Some(2));
        assert_eq!(web.memory_mb, Some(256));
        assert_eq!(web.disk_mb, Some(1024));
        assert_eq!(web.log_rate, Some(16 * 1024));
        assert_eq!(web.command, Some(Some("./web".into())));
        assert_eq!(web.health_check_type, Some(HealthCheckType::Http));
        assert_eq!(web.endpoint.as_deref(), Some("/healthz"));
        assert_eq!(web.invocation_timeout, Some(5));
        assert_eq!(web.timeout, Some(60));
        let worker = &m.processes[1];
        assert_eq!(
            (worker.type_.as_str(), worker.instances, worker.memory_mb),
            ("worker", Some(3), Some(1024))
        );
        assert_eq!(m.env.as_ref().unwrap()["COUNT"], "3");
        assert_eq!(m.buildpacks, Some(vec!["ruby_buildpack".to_owned()]));
        let routes = m.routes.as_ref().unwrap();
        assert_eq!(routes[0].protocol, Some(RouteProtocol::Http2));
        assert_eq!(routes[1].route, "tcp.example.com:1024");
        let services = m.services.as_ref().unwrap();
        assert_eq!(
            services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["db", "cache"]
        );
        assert_eq!(
            m.metadata.as_ref().unwrap().labels["tier"].as_deref(),
            Some("web")
        );
    }

    #[test]
    fn a_web_process_entry_replaces_the_top_level() {
        let m =
            apps("applications:\n- name: a\n  instances: 5\n  processes:\n  - type: web\n    instances: 2\n")
                .unwrap();
        assert_eq!(m[0].processes.len(), 1);
        assert_eq!(m[0].processes[0].instances, Some(2));
    }

    #[test]
    fn invalid_manifests_get_cc_messages() {
        assert_eq!(
            invalid("applications:\n- name: a\n  memory: 1024\n"),
            [
                "For application 'a': Process \"web\": Memory must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB"
            ]
        );
        assert_eq!(
            invalid("applications:\n- name: a\n  instances: -1\n  disk_quota: huge\n"),
            [
                "For application 'a': Process \"web\": Instances must be greater than or equal to 0",
                "For application 'a': Process \"web\": Disk quota is not a number",
            ]
        );
        assert_eq!(
            invalid("applications:\n- instances: 1\n"),
            ["For application at index 0: Name must not be empty"]
        );
        assert_eq!(
            invalid("applications:\n- name: a\n  health-check-type: bogus\n"),
            [
                "For application 'a': Process \"web\": Health check type must be \"port\", \"process\", or \"http\""
            ]
        );
        assert_eq!(
            invalid(
                "applications:\n- name: a\n  health-check-type: port\n  health-check-http-endpoint: /x\n"
            ),
            [
                "For application 'a': Process \"web\": Health check type must be \"http\" to set a health check HTTP endpoint"
            ]
        );
        assert_eq!(
            invalid("applications:\n- name: a\n  random-route: true\n  default-route: true\n"),
            ["For application 'a': Random-route and default-route may not be used together"]
        );
        assert_eq!(
            invalid("applications:\n- name: a\n  no-route: yes please\n"),
            ["For application 'a': No-route must be a boolean"]
        );
        assert_eq!(
            invalid("applications:\n- name: a\n  routes: [a.example.com]\n"),
            ["For application 'a': Routes must be a list of route objects"]
        );
        assert_eq!(
            invalid("applications:\n- name: a\n  routes:\n  - route: a.example.com\n    protocol: udp\n"),
            ["For application 'a': Route protocol must be 'http1', 'http2' or 'tcp'."]
        );
        assert_eq!(
            invalid("applications:\n- name: a\n  env: [A]\n"),
            ["For application 'a': Env must be an object of keys and values"]
        );
        assert_eq!(
            invalid("applications:\n- name: a\n  env: {VCAP_X: 1, PORT: 2}\n"),
            [
                "For application 'a': Env cannot set PORT",
                "For application 'a': Env cannot start with VCAP_"
            ]
        );
        assert_eq!(
            invalid("applications:\n- name: a\n  services: [{name: x, bogus: 1}]\n"),
            ["For application 'a': Services must be a list of service instances"]
        );
        assert_eq!(
            invalid("applications:\n- name: a\n  processes:\n  - instances: 1\n  - type: w\n  - type: w\n"),
            [
                "For application 'a': All Processes must specify a type",
                "For application 'a': Process \"w\" may only be present once",
            ]
        );
        assert_eq!(
            invalid("applications:\n- name: a\n  buildpack: x\n  buildpacks: [y]\n  docker: {image: i}\n"),
            [
                "For application 'a': Buildpack and Buildpacks fields cannot be used together.",
                "For application 'a': Cannot specify both buildpack(s) and docker keys",
            ]
        );
        assert_eq!(
            invalid("applications:\n- name: a\n  timeout: 0\n"),
            ["For application 'a': Process \"web\": Timeout must be greater than or equal to 1"]
        );
    }

    #[test]
    fn documents_without_applications_are_refused() {
        let msg = |r: Result<Vec<Value>, ManifestError>| match r {
            Err(ManifestError::Cf(e)) => (e.parts().0.as_u16(), e.to_string()),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            msg(parse_document(b"applications: []\n")),
            (
                422,
                "Cannot parse manifest with no 'applications' field.".to_owned()
            )
        );
        assert_eq!(
            msg(parse_document(b"version: 2\napplications: [{name: a}]\n")).1,
            "Unsupported manifest schema version. Currently supported versions: [1]."
        );
        assert_eq!(msg(parse_document(b"applications: [\n")).0, 400);
        assert_eq!(msg(parse_document(b"- just a list\n")).0, 400);
    }

    #[test]
    fn routes_split_like_cc_parses_them() {
        assert_eq!(
            split_route("App.Example.com/api/v1"),
            Some((
                "unspecified".into(),
                "app.example.com".into(),
                None,
                "/api/v1".into()
            ))
        );
        assert_eq!(
            split_route("tcp.example.com:1024"),
            Some((
                "unspecified".into(),
                "tcp.example.com".into(),
                Some(1024),
                String::new()
            ))
        );
        assert_eq!(
            split_route("https://a.example.com"),
            Some(("https".into(), "a.example.com".into(), None, String::new()))
        );
        assert_eq!(split_route("http://a.example.com:80"), None);
        assert_eq!(split_route("ftp://a.example.com"), None);
        assert_eq!(split_route("a.example.com:http"), None);
        assert_eq!(split_route("/only/path"), None);
    }

    #[test]
    fn random_hosts_are_valid_dns_labels() {
        for name in ["My_App", "a", &"x".repeat(80)] {
            let h = random_host(name);
            assert!(valid_host(&h), "{h}");
            assert!(h.matches('-').count() >= 3, "{h}");
        }
    }

    #[test]
    fn merge_patches_are_minimal() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        let new = json!({"a": 1, "b": {"c": 4}, "e": [1, 2]});
        assert_eq!(
            merge_patch(&old, &new),
            Some(json!({"b": {"c": 4, "d": null}, "e": [1, 2]}))
        );
        assert_eq!(merge_patch(&old, &old), None);
    }

    #[test]
    fn diffs_read_like_ccs() {
        let current = json!({
            "name": "app",
            "env": {"A": "1", "B": "2"},
            "routes": [{"route": "app.example.com", "protocol": "http1"}],
            "processes": [
                {"type": "web", "instances": 1, "memory": "1024M", "disk_quota": "1024M", "health-check-type": "port"},
                {"type": "worker", "instances": 1, "memory": "1024M"},
            ],
        });
        let manifest: Vec<Value> = parse_document(
            b"applications:\n- name: app\n  instances: 3\n  memory: 1G\n  env: {A: '1', C: '3'}\n  routes:\n  - route: app.example.com\n  - route: new.example.com\n  processes:\n  - type: worker\n    memory: 2G\n",
        )
        .map_err(|_| ())
        .unwrap();
        let diff = manifest_diff(&manifest, &[Some(current)]);
        assert_eq!(
            diff,
            vec![
                json!({"op": "remove", "path": "/applications/0/env/B", "was": "2"}),
                json!({"op": "add", "path": "/applications/0/env/C", "value": "3"}),
                json!({"op": "replace", "path": "/applications/0/instances", "was": 1, "value": 3}),
                json!({"op": "replace", "path": "/applications/0/processes/0/memory", "was": "1024M", "value": "2048M"}),
                json!({"op": "add", "path": "/applications/0/routes/1", "value": {"route": "new.example.com"}}),
            ]
        );
        // A new app: every key is an addition; an unchanged one: nothing.
        let fresh = manifest_diff(&manifest, &[None]);
        assert!(fresh.iter().all(|d| d["op"] == "add"));
        assert!(fresh.iter().any(|d| d["path"] == "/applications/0/name"));
        let same = parse_document(b"applications:\n- name: app\n  instances: 1\n")
            .map_err(|_| ())
            .unwrap();
        let current = json!({"name": "app", "processes": [{"type": "web", "instances": 1}]});
        assert!(manifest_diff(&same, &[Some(current)]).is_empty());
    }

    #[test]
    fn processes_present_as_ccs_manifest() {
        let app = CFApp::new(
            "g",
            crate::crd::CFAppSpec {
                display_name: "a".into(),
                desired_state: crate::crd::AppState::Stopped,
                lifecycle: Lifecycle::default(),
                env: BTreeMap::new(),
                current_droplet_guid: None,
                restarted_at: None,
            },
        );
        let mut p = new_process(&app, "web", &crate::controller::podspec::AppDefaults::default());
        configure(
            &mut p,
            &ProcessManifest {
                type_: "web".into(),
                instances: Some(2),
                memory_mb: Some(256),
                log_rate: Some(16 * 1024),
                health_check_type: Some(HealthCheckType::Http),
                endpoint: Some("/h".into()),
                timeout: Some(30),
                ..ProcessManifest::default()
            },
        );
        assert_eq!(
            process_manifest(&p),
            json!({
                "type": "web", "instances": 2, "memory": "256M", "disk_quota": "1024M",
                "log-rate-limit-per-second": "16K", "health-check-type": "http",
                "health-check-http-endpoint": "/h", "timeout": 30,
            })
        );
        // Switching away from http drops the endpoint the CRD would refuse.
        configure(
            &mut p,
            &ProcessManifest {
                health_check_type: Some(HealthCheckType::Port),
                ..ProcessManifest::default()
            },
        );
        assert_eq!(p.spec.health_check.endpoint, None);
    }
}
