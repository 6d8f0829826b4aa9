//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into
//! the JSON a JSON client would have sent for the same object.
//!
//! client-go (kubectl, Helm) sends built-in kinds as the magic `k8s\0` followed by a
//! `runtime.Unknown` envelope whose `raw` field holds the typed object. The typed object is
//! decoded against a schema generated from the upstream API definitions (see `schema_gen.py`),
//! which carries the Go JSON names and `omitempty`/pointer facts that the wire format lacks.

mod json;
mod schema;
mod schema_data;
#[cfg(test)]
mod tests;
mod wire;

use serde_json::{Map, Value as Json};

/// The media type client-go uses for protobuf request and response bodies.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("protobuf body does not start with the Kubernetes magic number \"k8s\\x00\"")]
    MissingMagic,
    /// The bytes are not a valid encoding of the expected messages.
    #[error("malformed protobuf body: {0}")]
    Malformed(String),
    /// The `runtime.Unknown` envelope names no kind or apiVersion.
    #[error("protobuf body has no apiVersion/kind in its runtime.Unknown envelope")]
    MissingTypeMeta,
    /// The envelope declares a content encoding (compression) the server does not undo.
    #[error("protobuf body uses unsupported content encoding {0:?}")]
    UnsupportedContentEncoding(String),
    /// The envelope's payload is in a media type other than protobuf or JSON.
    #[error("protobuf body wraps unsupported content type {0:?}")]
    UnsupportedContentType(String),
    /// The kind is not one this decoder knows; the client can retry with JSON.
    #[error("protobuf decoding of {kind} in {api_version} is not supported; send it as application/json")]
    UnsupportedKind {
        /// The `apiVersion` from the envelope.
        api_version: String,
        /// The `kind` from the envelope.
        kind: String,
    },
}

/// Decodes a protobuf request body into the JSON object the JSON path would have received,
/// with `apiVersion` and `kind` set from the envelope.
pub fn decode(body: &[u8]) -> Result<Json, ProtobufError> {
    decode_nested(body, 0)
}

/// Whether [`decode`] understands objects of this `apiVersion` and `kind`.
pub fn supports(api_version: &str, kind: &str) -> bool {
    find_kind(api_version, kind).is_some()
}

fn find_kind(api_version: &str, kind: &str) -> Option<&'static schema::Kind> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    schema_data::KINDS.iter().find(|k| {
        k.kind == kind
            // Option kinds such as DeleteOptions are registered in every group version.
            && ((k.group == group && k.version == version) || k.group == "meta.k8s.io")
    })
}

fn decode_nested(body: &[u8], depth: usize) -> Result<Json, ProtobufError> {
    let envelope = body.strip_prefix(&MAGIC).ok_or(ProtobufError::MissingMagic)?;
    let records = wire::records(envelope)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut content_encoding = String::new();
    let mut content_type = String::new();
    for (tag, record) in &records {
        match (tag, record) {
            (1, wire::Wire::Bytes(type_meta)) => {
                for (tag, record) in wire::records(type_meta)? {
                    match (tag, record) {
                        (1, wire::Wire::Bytes(b)) => api_version = utf8(b)?,
                        (2, wire::Wire::Bytes(b)) => kind = utf8(b)?,
                        _ => {}
                    }
                }
            }
            (2, wire::Wire::Bytes(b)) => raw = b,
            (3, wire::Wire::Bytes(b)) => content_encoding = utf8(b)?,
            (4, wire::Wire::Bytes(b)) => content_type = utf8(b)?,
            (1..=4, other) => {
                return Err(ProtobufError::Malformed(format!(
                    "runtime.Unknown field {tag} sent as {}",
                    other.type_name()
                )));
            }
            _ => {}
        }
    }
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    if !content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedContentEncoding(content_encoding));
    }
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    let object = match media_type {
        "" | PROTOBUF_CONTENT_TYPE => {
            let found = find_kind(&api_version, &kind).ok_or_else(|| ProtobufError::UnsupportedKind {
                api_version: api_version.clone(),
                kind: kind.clone(),
            })?;
            json::message(found.message, raw, depth)?
        }
        "application/json" => serde_json::from_slice(raw)
            .map_err(|e| ProtobufError::Malformed(format!("embedded JSON is invalid: {e}")))?,
        _ => return Err(ProtobufError::UnsupportedContentType(content_type)),
    };
    let Json::Object(fields) = object else {
        return Err(ProtobufError::Malformed(format!(
            "{kind} did not decode to an object"
        )));
    };
    let mut out = Map::new();
    out.insert("apiVersion".to_owned(), Json::String(api_version));
    out.insert("kind".to_owned(), Json::String(kind));
    for (key, value) in fields {
        out.entry(key).or_insert(value);
    }
    Ok(Json::Object(out))
}

fn utf8(bytes: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ProtobufError::Malformed("runtime.Unknown holds invalid UTF-8".to_owned()))
}
