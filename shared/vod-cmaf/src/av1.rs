//! The one home of AV1 bitstream helpers (AV1 spec §4.10, §5.3): `leb128()`, the OBUs of a temporal unit, and the
//! removal of temporal delimiters that AV1-in-ISOBMFF asks for. The encoder, the CMAF writer and the packager's
//! tile parser (`vod_package`) all walk OBUs through here.
use std::borrow::Cow;
use std::ops::Range;

/// `obu_type` of a temporal delimiter.
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;

/// Why a temporal unit's OBUs could not be walked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AV1: {0}")]
pub struct ObuError(pub &'static str);

/// Reads `leb128()` (at most 8 bytes, as AV1 allows) and returns (value, length).
pub fn read_leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in data.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// One OBU of a temporal unit: its type and the byte ranges of its header (+ size field) and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obu {
    pub obu_type: u8,
    pub temporal_id: u32,
    pub spatial_id: u32,
    /// `obu_header()` and the `obu_size` field.
    pub header: Range<usize>,
    pub payload: Range<usize>,
}

/// Splits a temporal unit (low-overhead format; the last OBU may omit its size field) into OBUs; every length is
/// checked against the data.
pub fn obus(data: &[u8]) -> Result<Vec<Obu>, ObuError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let header = data[pos];
        if header & 0x80 != 0 {
            return Err(ObuError("obu_forbidden_bit set"));
        }
        let obu_type = (header >> 3) & 0x0f;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let (temporal_id, spatial_id) = if has_extension {
            let ext = *data.get(pos + 1).ok_or(ObuError("truncated OBU extension header"))?;
            (u32::from(ext >> 5), u32::from((ext >> 3) & 3))
        } else {
            (0, 0)
        };
        let mut payload_start = pos + 1 + usize::from(has_extension);
        let payload_end = if has_size {
            let (size, len) = data
                .get(payload_start..)
                .and_then(read_leb128)
                .ok_or(ObuError("truncated obu_size"))?;
            payload_start += len;
            usize::try_from(size)
                .ok()
                .and_then(|s| payload_start.checked_add(s))
                .ok_or(ObuError("obu_size overflows"))?
        } else {
            data.len()
        };
        if payload_start > data.len() || payload_end > data.len() {
            return Err(ObuError("OBU runs past the end of the sample"));
        }
        out.push(Obu {
            obu_type,
            temporal_id,
            spatial_id,
            header: pos..payload_start,
            payload: payload_start..payload_end,
        });
        pos = payload_end;
    }
    Ok(out)
}

/// Removes temporal delimiter OBUs from an AV1 temporal unit (AV1-ISOBMFF §2.4: they should not be stored in
/// samples). A payload whose OBUs cannot be walked is returned unchanged; the decoder will judge it.
pub fn strip_temporal_delimiters(data: &[u8]) -> Cow<'_, [u8]> {
    let Ok(list) = obus(data) else {
        return Cow::Borrowed(data);
    };
    if !list.iter().any(|o| o.obu_type == OBU_TEMPORAL_DELIMITER) {
        return Cow::Borrowed(data);
    }
    let mut out = Vec::with_capacity(data.len());
    for o in list.iter().filter(|o| o.obu_type != OBU_TEMPORAL_DELIMITER) {
        out.extend_from_slice(&data[o.header.start..o.payload.end]);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_temporal_delimiters() {
        let strip = |d: &[u8]| strip_temporal_delimiters(d).into_owned();
        assert_eq!(strip(&[0x12, 0x00, 0x0a, 0x01, 0xff]), [0x0a, 0x01, 0xff]);
        assert_eq!(strip(&[0x0a, 0x01, 0xff]), [0x0a, 0x01, 0xff]);
        assert_eq!(strip(&[0x12, 0x05]), [0x12, 0x05], "unwalkable: unchanged");
        assert_eq!(strip(&[0x12]), [0x12]);
        assert!(strip(&[]).is_empty());
        assert!(matches!(
            strip_temporal_delimiters(&[0x0a, 0x01, 0xff]),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn leb128_and_obus() {
        assert_eq!(read_leb128(&[0x05]), Some((5, 1)));
        assert_eq!(read_leb128(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(read_leb128(&[0x80; 9]), None);
        let list = obus(&[0x12, 0x00, 0x0a, 0x01, 0xff, 0x30]).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!((list[1].obu_type, list[1].payload.clone()), (1, 4..5));
        assert_eq!(list[2].payload, 6..6, "the last OBU may omit its size");
        assert!(obus(&[0x92]).is_err(), "forbidden bit");
        assert!(obus(&[0x16]).is_err(), "truncated extension");
    }
}
