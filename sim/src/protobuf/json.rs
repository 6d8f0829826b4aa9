//! Turns a protobuf message into the JSON that Go's `encoding/json` would produce for the same
//! Go value, so the server sees what a JSON client would have sent.
//!
//! Go clients write every non-pointer scalar field even when it is zero, so presence on the wire
//! says little; the schema's Go facts (pointer, omitempty, omitzero, inline) decide what is
//! emitted, exactly as `encoding/json` would after `Unmarshal` into the Go struct.

use base64::Engine as _;
use serde_json::{Map, Number, Value as Json};

use super::ProtobufError;
use super::schema::{Field, Form, INLINE, MAP, Message, OMIT_EMPTY, OMIT_ZERO, POINTER, REPEATED, Value};
use super::wire::{self, Wire};

/// Bounds recursion so a hostile body cannot exhaust the stack through nested schemas.
const MAX_DEPTH: usize = 100;

/// Seconds from the Unix epoch to Go's zero `time.Time` (0001-01-01T00:00:00Z).
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

fn malformed(msg: &Message, detail: impl std::fmt::Display) -> ProtobufError {
    ProtobufError::Malformed(format!("{}: {detail}", msg.name))
}

/// Converts `bytes` (an encoded `msg`; empty for an absent or zero value) to JSON.
pub(super) fn message(msg: &'static Message, bytes: &[u8], depth: usize) -> Result<Json, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(malformed(msg, "nesting too deep"));
    }
    let records = wire::records(bytes)?;
    match msg.form {
        Form::Struct => structure(msg, &records, depth),
        Form::StringList => {
            let items = records
                .iter()
                .filter(|(tag, _)| *tag == 1)
                .map(|(_, rec)| string(msg, *rec).map(Json::String))
                .collect::<Result<Vec<_>, _>>()?;
            // Go decodes no items as a nil slice, which encodes as null.
            Ok(if items.is_empty() {
                Json::Null
            } else {
                Json::Array(items)
            })
        }
        Form::Time | Form::MicroTime => time(msg, &records, msg.form == Form::MicroTime),
        Form::Quantity => match last(&records, 1) {
            None => Ok(Json::String("0".to_owned())),
            Some(rec) => {
                let s = string(msg, rec)?;
                if s.is_empty() {
                    return Err(malformed(msg, "quantities must not be empty"));
                }
                Ok(Json::String(s))
            }
        },
        Form::IntOrString => {
            let kind = last(&records, 1).map(|r| int64(msg, r)).transpose()?.unwrap_or(0);
            match kind {
                0 => {
                    let v = last(&records, 2).map(|r| int64(msg, r)).transpose()?.unwrap_or(0);
                    Ok(Json::from(v as i32))
                }
                1 => {
                    let s = last(&records, 3)
                        .map(|r| string(msg, r))
                        .transpose()?
                        .unwrap_or_default();
                    Ok(Json::String(s))
                }
                other => Err(malformed(msg, format!("impossible IntOrString type {other}"))),
            }
        }
        Form::RawJson => {
            let raw = last(&records, 1)
                .map(|r| bytes_of(msg, r))
                .transpose()?
                .unwrap_or_default();
            raw_json(msg, raw, depth)
        }
        Form::SchemaOrBool => {
            if let Some(schema) = last(&records, 2) {
                return message(nested(msg, 2)?, bytes_of(msg, schema)?, depth + 1);
            }
            let allows = last(&records, 1).map(|r| int64(msg, r)).transpose()?.unwrap_or(0);
            Ok(Json::Bool(allows != 0))
        }
        Form::SchemaOrArray => {
            let item = nested(msg, 2)?;
            let schemas = records
                .iter()
                .filter(|(tag, _)| *tag == 2)
                .map(|(_, rec)| message(item, bytes_of(msg, *rec)?, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            if !schemas.is_empty() {
                return Ok(Json::Array(schemas));
            }
            match last(&records, 1) {
                Some(schema) => message(nested(msg, 1)?, bytes_of(msg, schema)?, depth + 1),
                None => Ok(Json::Null),
            }
        }
        Form::SchemaOrStringArray => {
            let properties = records
                .iter()
                .filter(|(tag, _)| *tag == 2)
                .map(|(_, rec)| string(msg, *rec).map(Json::String))
                .collect::<Result<Vec<_>, _>>()?;
            if !properties.is_empty() {
                return Ok(Json::Array(properties));
            }
            match last(&records, 1) {
                Some(schema) => message(nested(msg, 1)?, bytes_of(msg, schema)?, depth + 1),
                None => Ok(Json::Null),
            }
        }
    }
}

fn last<'a>(records: &[(u32, Wire<'a>)], tag: u32) -> Option<Wire<'a>> {
    records.iter().rev().find(|(t, _)| *t == tag).map(|(_, rec)| *rec)
}

fn nested(msg: &'static Message, tag: u32) -> Result<&'static Message, ProtobufError> {
    match msg.field(tag).map(|f| f.value) {
        Some(Value::Msg(inner)) => Ok(inner),
        _ => Err(malformed(msg, format!("schema has no message field {tag}"))),
    }
}

fn structure(
    msg: &'static Message,
    records: &[(u32, Wire<'_>)],
    depth: usize,
) -> Result<Json, ProtobufError> {
    let mut grouped: Vec<Vec<Wire<'_>>> = vec![Vec::new(); msg.fields.len()];
    for (tag, rec) in records {
        // Go skips unknown fields too, which keeps newer clients working against this schema.
        if let Some(i) = msg.fields.iter().position(|f| f.tag == *tag) {
            grouped[i].push(*rec);
        }
    }
    let mut object = Map::new();
    let mut promoted = Map::new();
    for (field, recs) in msg.fields.iter().zip(&grouped) {
        if field.has(INLINE) {
            if field.has(POINTER) && recs.is_empty() {
                continue;
            }
            if let Json::Object(inner) = single_message(msg, field, recs, depth)? {
                promoted.extend(inner);
            }
            continue;
        }
        if let Some(value) = field_json(msg, field, recs, depth)? {
            object.insert(field.json.to_owned(), value);
        }
    }
    // Go resolves name clashes in favour of the shallower field, so the parent's keys win.
    for (key, value) in promoted {
        object.entry(key).or_insert(value);
    }
    Ok(Json::Object(object))
}

/// The JSON of one field, or `None` when Go would leave the key out.
fn field_json(
    msg: &'static Message,
    field: &Field,
    recs: &[Wire<'_>],
    depth: usize,
) -> Result<Option<Json>, ProtobufError> {
    let omits = field.has(OMIT_EMPTY) || field.has(OMIT_ZERO);
    if field.has(MAP) || field.has(REPEATED) {
        let value = if field.has(MAP) {
            map(msg, field, recs, depth)?
        } else {
            repeated(msg, field, recs, depth)?
        };
        // Go decodes an empty list or map as nil: omitted, or null without omitempty.
        return Ok(match value {
            Some(v) => Some(v),
            None if omits => None,
            None => Some(Json::Null),
        });
    }
    let present = !recs.is_empty();
    if !present && (field.has(POINTER) || matches!(field.value, Value::Bytes)) {
        return Ok(if omits { None } else { Some(Json::Null) });
    }
    match field.value {
        Value::Msg(inner) => {
            let value = single_message(msg, field, recs, depth)?;
            let zero = !present || value.is_null();
            let omit = if field.has(POINTER) {
                false
            } else if inner.form == Form::StringList {
                // A Go slice type, so omitempty applies to it (it never does to structs).
                omits && value.is_null()
            } else {
                field.has(OMIT_ZERO) && zero
            };
            Ok((!omit).then_some(value))
        }
        scalar => {
            let value = match recs.last() {
                Some(rec) => scalar_json(msg, scalar, *rec)?,
                None => zero_scalar(scalar),
            };
            let omit = !field.has(POINTER) && omits && is_zero_scalar(&value);
            Ok((!omit).then_some(value))
        }
    }
}

/// A singular embedded message; repeated records of it merge, as protobuf specifies.
fn single_message(
    msg: &'static Message,
    field: &Field,
    recs: &[Wire<'_>],
    depth: usize,
) -> Result<Json, ProtobufError> {
    let Value::Msg(inner) = field.value else {
        return Err(malformed(msg, format!("field {} is not a message", field.json)));
    };
    match recs {
        [] => message(inner, &[], depth + 1),
        [one] => message(inner, bytes_of(msg, *one)?, depth + 1),
        many => {
            let mut merged = Vec::new();
            for rec in many {
                merged.extend_from_slice(bytes_of(msg, *rec)?);
            }
            message(inner, &merged, depth + 1)
        }
    }
}

fn repeated(
    msg: &'static Message,
    field: &Field,
    recs: &[Wire<'_>],
    depth: usize,
) -> Result<Option<Json>, ProtobufError> {
    let mut items = Vec::with_capacity(recs.len());
    for rec in recs {
        match (field.value, rec) {
            (Value::Msg(inner), _) => items.push(message(inner, bytes_of(msg, *rec)?, depth + 1)?),
            (Value::Str | Value::Bytes, _) => items.push(scalar_json(msg, field.value, *rec)?),
            // Numeric lists may arrive packed: one length-delimited record of many values.
            (numeric, Wire::Bytes(packed)) => {
                let mut pos = 0;
                while pos < packed.len() {
                    let one = match numeric {
                        Value::Double => Wire::Fixed64(fixed64(msg, packed, &mut pos)?),
                        _ => Wire::Varint(wire::read_varint(packed, &mut pos)?),
                    };
                    items.push(scalar_json(msg, numeric, one)?);
                }
            }
            (numeric, _) => items.push(scalar_json(msg, numeric, *rec)?),
        }
    }
    Ok((!items.is_empty()).then_some(Json::Array(items)))
}

fn fixed64(msg: &Message, buf: &[u8], pos: &mut usize) -> Result<u64, ProtobufError> {
    let bytes: [u8; 8] = buf
        .get(*pos..*pos + 8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| malformed(msg, "truncated packed field"))?;
    *pos += 8;
    Ok(u64::from_le_bytes(bytes))
}

fn map(
    msg: &'static Message,
    field: &Field,
    recs: &[Wire<'_>],
    depth: usize,
) -> Result<Option<Json>, ProtobufError> {
    let mut object = Map::new();
    for rec in recs {
        let entry = wire::records(bytes_of(msg, *rec)?)?;
        let key = last(&entry, 1)
            .map(|r| string(msg, r))
            .transpose()?
            .unwrap_or_default();
        let value = match (field.value, last(&entry, 2)) {
            (Value::Msg(inner), rec) => {
                let bytes = rec.map(|r| bytes_of(msg, r)).transpose()?.unwrap_or_default();
                message(inner, bytes, depth + 1)?
            }
            // The generated Go decoder starts each bytes value as `[]byte{}`, never nil.
            (Value::Bytes, None) => Json::String(String::new()),
            (scalar, Some(rec)) => scalar_json(msg, scalar, rec)?,
            (scalar, None) => zero_scalar(scalar),
        };
        object.insert(key, value);
    }
    Ok((!object.is_empty()).then_some(Json::Object(object)))
}

fn bytes_of<'a>(msg: &Message, rec: Wire<'a>) -> Result<&'a [u8], ProtobufError> {
    match rec {
        Wire::Bytes(b) => Ok(b),
        other => Err(malformed(
            msg,
            format!("expected length-delimited, got {}", other.type_name()),
        )),
    }
}

fn string(msg: &Message, rec: Wire<'_>) -> Result<String, ProtobufError> {
    // Go strings may hold invalid UTF-8; encoding/json replaces it with U+FFFD, as this does.
    Ok(String::from_utf8_lossy(bytes_of(msg, rec)?).into_owned())
}

fn int64(msg: &Message, rec: Wire<'_>) -> Result<i64, ProtobufError> {
    match rec {
        Wire::Varint(v) => Ok(v as i64),
        other => Err(malformed(
            msg,
            format!("expected varint, got {}", other.type_name()),
        )),
    }
}

fn scalar_json(msg: &Message, scalar: Value, rec: Wire<'_>) -> Result<Json, ProtobufError> {
    let mismatch = || malformed(msg, format!("{scalar:?} field sent as {}", rec.type_name()));
    Ok(match (scalar, rec) {
        (Value::Str, _) => Json::String(string(msg, rec)?),
        (Value::Bytes, _) => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(bytes_of(msg, rec)?))
        }
        (Value::Bool, Wire::Varint(v)) => Json::Bool(v != 0),
        // Truncation is the protobuf rule for 32-bit varints (negatives are sign-extended).
        (Value::Int32, Wire::Varint(v)) => Json::from(v as i32),
        (Value::Int64, Wire::Varint(v)) => Json::from(v as i64),
        (Value::Double, Wire::Fixed64(bits)) => float(msg, f64::from_bits(bits))?,
        _ => return Err(mismatch()),
    })
}

/// Go prints integral floats without a fraction (`1`, not `1.0`); matching that keeps the JSON
/// equal to what a Go client sends.
fn float(msg: &Message, f: f64) -> Result<Json, ProtobufError> {
    if f.fract() == 0.0 && f.abs() < 9.0e18 {
        return Ok(Json::from(f as i64));
    }
    Number::from_f64(f)
        .map(Json::Number)
        .ok_or_else(|| malformed(msg, format!("unsupported float value {f}")))
}

fn zero_scalar(scalar: Value) -> Json {
    match scalar {
        Value::Str => Json::String(String::new()),
        Value::Bool => Json::Bool(false),
        Value::Bytes | Value::Msg(_) => Json::Null,
        Value::Int32 | Value::Int64 | Value::Double => Json::from(0),
    }
}

fn is_zero_scalar(value: &Json) -> bool {
    match value {
        Json::Null => true,
        Json::Bool(b) => !b,
        Json::String(s) => s.is_empty(),
        Json::Number(n) => n.as_f64() == Some(0.0),
        Json::Array(a) => a.is_empty(),
        Json::Object(o) => o.is_empty(),
    }
}

fn raw_json(msg: &Message, raw: &[u8], depth: usize) -> Result<Json, ProtobufError> {
    if raw.is_empty() {
        return Ok(Json::Null);
    }
    // An embedded object may itself be protobuf-encoded when the client used protobuf throughout.
    if raw.starts_with(&super::MAGIC) {
        return super::decode_nested(raw, depth + 1);
    }
    serde_json::from_slice(raw).map_err(|e| malformed(msg, format!("embedded JSON is invalid: {e}")))
}

fn time(msg: &Message, records: &[(u32, Wire<'_>)], micro: bool) -> Result<Json, ProtobufError> {
    if records.is_empty() {
        return Ok(Json::Null);
    }
    let seconds = last(records, 1).map(|r| int64(msg, r)).transpose()?.unwrap_or(0);
    let nanos = last(records, 2).map(|r| int64(msg, r)).transpose()?.unwrap_or(0);
    // metav1.Time keeps whole seconds only; MicroTime truncates to microseconds.
    let micros = if micro { nanos / 1000 } else { 0 };
    let (seconds, micros) = (
        seconds + micros.div_euclid(1_000_000),
        micros.rem_euclid(1_000_000),
    );
    if seconds == GO_ZERO_TIME_UNIX && micros == 0 {
        return Ok(Json::Null);
    }
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    );
    if micro {
        out.push_str(&format!(".{micros:06}"));
    }
    out.push('Z');
    Ok(Json::String(out))
}

/// Proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
