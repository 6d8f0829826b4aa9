//! Shape of the generated wire schema: what each protobuf field number means in JSON.

/// The field is a protobuf `repeated` field: a Go slice, one wire record per element.
pub(super) const REPEATED: u8 = 1;
/// The field is a protobuf `map<string, V>`: a Go map, one entry message per key.
pub(super) const MAP: u8 = 1 << 1;
/// The Go field is a pointer, so an explicit zero value is kept rather than omitted.
pub(super) const POINTER: u8 = 1 << 2;
/// The Go JSON tag has `omitempty`.
pub(super) const OMIT_EMPTY: u8 = 1 << 3;
/// The Go JSON tag has `omitzero`.
pub(super) const OMIT_ZERO: u8 = 1 << 4;
/// The Go field is an embedded struct whose JSON fields are promoted into the parent object.
pub(super) const INLINE: u8 = 1 << 5;

/// How a message's Go type turns into JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// An ordinary struct: a JSON object built field by field.
    Struct,
    /// Go `[]string` carried as a message with `repeated string items = 1`.
    StringList,
    /// `metav1.Time`: RFC 3339 in seconds, `null` when zero.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with six fractional digits, `null` when zero.
    MicroTime,
    /// `resource.Quantity`: its string form.
    Quantity,
    /// `intstr.IntOrString`: a JSON number or string.
    IntOrString,
    /// Raw JSON bytes in field 1 (`RawExtension`, `FieldsV1`, apiextensions `JSON`).
    RawJson,
    /// apiextensions `JSONSchemaPropsOrBool`: a schema or a boolean.
    SchemaOrBool,
    /// apiextensions `JSONSchemaPropsOrArray`: a schema or an array of schemas.
    SchemaOrArray,
    /// apiextensions `JSONSchemaPropsOrStringArray`: a schema or an array of strings.
    SchemaOrStringArray,
}

/// The protobuf type of a field (of each element for repeated fields, of values for maps).
#[derive(Debug, Clone, Copy)]
pub(super) enum Value {
    Str,
    Bytes,
    Bool,
    Int32,
    Int64,
    Double,
    Msg(&'static Message),
}

/// One protobuf field and the Go JSON tag that goes with it.
#[derive(Debug)]
pub(super) struct Field {
    pub(super) tag: u32,
    pub(super) json: &'static str,
    pub(super) value: Value,
    pub(super) flags: u8,
}

impl Field {
    pub(super) const fn new(tag: u32, json: &'static str, value: Value, flags: u8) -> Self {
        Self {
            tag,
            json,
            value,
            flags,
        }
    }

    pub(super) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A protobuf message, its fields listed in Go struct order (which is JSON key order).
#[derive(Debug)]
pub(super) struct Message {
    pub(super) name: &'static str,
    pub(super) form: Form,
    pub(super) fields: &'static [Field],
}

impl Message {
    pub(super) fn field(&self, tag: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.tag == tag)
    }
}

/// A top-level kind that may arrive wrapped in `runtime.Unknown`.
#[derive(Debug)]
pub(super) struct Kind {
    pub(super) group: &'static str,
    pub(super) version: &'static str,
    pub(super) kind: &'static str,
    pub(super) message: &'static Message,
}

impl Kind {
    pub(super) const fn new(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        message: &'static Message,
    ) -> Self {
        Self {
            group,
            version,
            kind,
            message,
        }
    }
}
