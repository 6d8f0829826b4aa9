//! The HTTP face of the simulated cluster: one axum service that classifies each request the
//! way kube-apiserver does, authenticates and authorizes it, and hands it to discovery, the
//! object verbs or a watch.

pub mod discovery;
pub mod encode;
pub mod objects;
pub mod status;
pub mod table;
pub mod watch;

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::Value;

pub use status::{ApiError, ApiResult, json_response};

use crate::{
    cluster::Cluster,
    rbac::{self, Attributes, RequestInfo, UserInfo},
};

/// kube-apiserver's default request body cap (3 MiB, plus slack for encoding).
pub const MAX_BODY: usize = 3 * 1024 * 1024 + 512 * 1024;

/// The router serving the whole Kubernetes API surface.
pub fn router(cluster: Arc<Cluster>) -> Router {
    Router::new().fallback(serve).with_state(cluster)
}

/// What every handler needs to know about the request.
pub struct Ctx {
    /// The classified request.
    pub info: RequestInfo,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    /// Request headers.
    pub headers: HeaderMap,
    /// The authenticated (possibly impersonated) user.
    pub user: UserInfo,
}

impl Ctx {
    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a boolean query parameter is `true`.
    pub fn flag(&self, name: &str) -> bool {
        self.param(name).is_some_and(|v| v == "true" || v == "1")
    }

    /// Whether the client asked for a Table rendering.
    pub fn wants_table(&self) -> bool {
        self.headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .and_then(|accept| accept.split(',').next())
            .is_some_and(|first| first.contains("as=Table"))
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> bool {
        self.param("dryRun").is_some_and(|v| v == "All")
    }
}

async fn serve(State(cluster): State<Arc<Cluster>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = percent_decode(parts.uri.path());
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let info = rbac::request_info(parts.method.as_str(), &path, &raw_query);
    if let Some(fault) = cluster.faults.take(&info) {
        return fault.into_response();
    }
    let user = match cluster.authenticate(&parts.headers, parts.extensions.get::<ClientCertUser>()) {
        Ok(user) => user,
        Err(err) => return err.into_response(),
    };
    let user = match cluster.impersonate(user, &parts.headers) {
        Ok(user) => user,
        Err(err) => return err.into_response(),
    };
    if let Some(err) = &info.error {
        return ApiError::internal(format!("failed to create RequestInfo: {err}")).into_response();
    }
    let attrs = Attributes::from_request_info(user.clone(), &info);
    if let Err(err) = cluster.authorize(&attrs) {
        return err.into_response();
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(413, "RequestEntityTooLarge", "the request is too large").into_response();
        }
    };
    cluster.requests.record(if info.is_resource_request {
        format!("{} {}", info.verb, info.resource)
    } else {
        "other".to_owned()
    });
    let ctx = Ctx {
        info,
        query: parse_query(&raw_query),
        headers: parts.headers,
        user,
    };
    // With `user`, group and resource, this line is an audit log of who did what (the
    // least-privilege suite checks every permission the chart grants is used).
    tracing::debug!(
        method = %parts.method,
        path,
        verb = ctx.info.verb,
        user = ctx.user.name,
        group = ctx.info.api_group,
        resource = ctx.info.resource,
        subresource = ctx.info.subresource,
        "request"
    );
    let result = if ctx.info.is_resource_request {
        objects::dispatch(&cluster, &ctx, body).await
    } else {
        discovery::non_resource(&cluster, &parts.method, &ctx).await
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The user a verified client certificate names, set by the TLS acceptor.
#[derive(Clone, Debug)]
pub struct ClientCertUser(pub UserInfo);

/// Decodes `%XX` escapes (paths and query values).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// A successful JSON response.
pub fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// A 201 Created JSON response.
pub fn created(body: &Value) -> Response {
    json_response(StatusCode::CREATED, body)
}

/// Reads a request body as JSON, YAML or Kubernetes protobuf, by its content type.
pub fn decode_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media == crate::protobuf::PROTOBUF_CONTENT_TYPE {
        return crate::protobuf::decode(body).map_err(|e| match e {
            crate::protobuf::ProtobufError::UnsupportedKind { .. }
            | crate::protobuf::ProtobufError::UnsupportedContentType(_)
            | crate::protobuf::ProtobufError::UnsupportedContentEncoding(_) => {
                ApiError::unsupported_media_type(&e.to_string())
            }
            _ => ApiError::bad_request(e.to_string()),
        });
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    if media.ends_with("yaml") {
        return serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))
}
