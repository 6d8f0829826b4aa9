//! Protobuf wire-format reading: just enough to split a message into its field records.

use super::ProtobufError;

/// One field record as it appears on the wire, before the schema gives it meaning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl Wire<'_> {
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Fixed64(_) => "fixed64",
            Wire::Bytes(_) => "length-delimited",
            Wire::Fixed32(_) => "fixed32",
        }
    }
}

fn truncated() -> ProtobufError {
    ProtobufError::Malformed("truncated message".to_owned())
}

/// Reads a base-128 varint at `*pos`, advancing it.
pub(super) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, ProtobufError> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or_else(truncated)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ProtobufError::Malformed("varint longer than 10 bytes".to_owned()))
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, len: usize) -> Result<&'a [u8], ProtobufError> {
    let end = pos.checked_add(len).ok_or_else(truncated)?;
    let slice = buf.get(*pos..end).ok_or_else(truncated)?;
    *pos = end;
    Ok(slice)
}

/// Splits a message into `(field number, record)` pairs in wire order.
pub(super) fn records(buf: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, ProtobufError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        let tag = u32::try_from(key >> 3)
            .ok()
            .filter(|t| *t != 0)
            .ok_or_else(|| ProtobufError::Malformed(format!("invalid field number in key {key}")))?;
        let record = match key & 7 {
            0 => Wire::Varint(read_varint(buf, &mut pos)?),
            1 => {
                let bytes: [u8; 8] = take(buf, &mut pos, 8)?.try_into().map_err(|_| truncated())?;
                Wire::Fixed64(u64::from_le_bytes(bytes))
            }
            2 => {
                let len = usize::try_from(read_varint(buf, &mut pos)?).map_err(|_| truncated())?;
                Wire::Bytes(take(buf, &mut pos, len)?)
            }
            5 => {
                let bytes: [u8; 4] = take(buf, &mut pos, 4)?.try_into().map_err(|_| truncated())?;
                Wire::Fixed32(u32::from_le_bytes(bytes))
            }
            other => {
                // Groups (3, 4) are proto2 relics no Kubernetes message uses.
                return Err(ProtobufError::Malformed(format!(
                    "unsupported wire type {other} for field {tag}"
                )));
            }
        };
        out.push((tag, record));
    }
    Ok(out)
}
