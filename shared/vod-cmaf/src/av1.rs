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

/// AV1 Annex A.3 limits per level: (seq_level_idx, MaxPicSize, MaxHSize, MaxVSize, MaxDisplayRate (luma samples/s),
/// MainMbps); levels the spec leaves undefined (2.2, 2.3, 3.2, 3.3, 4.2, 4.3) are skipped.
const LEVELS: [(u8, u64, u32, u32, u64, u32); 14] = [
    (0, 147_456, 2048, 1152, 4_423_680, 1_500),
    (1, 278_784, 2816, 1584, 8_363_520, 3_000),
    (4, 665_856, 4352, 2448, 19_975_680, 6_000),
    (5, 1_065_024, 5504, 3096, 31_950_720, 10_000),
    (8, 2_359_296, 6144, 3456, 70_778_880, 12_000),
    (9, 2_359_296, 6144, 3456, 141_557_760, 20_000),
    (12, 8_912_896, 8192, 4352, 267_386_880, 30_000),
    (13, 8_912_896, 8192, 4352, 534_773_760, 40_000),
    (14, 8_912_896, 8192, 4352, 1_069_547_520, 60_000),
    (15, 8_912_896, 8192, 4352, 1_069_547_520, 60_000),
    (16, 35_651_584, 16384, 8704, 1_069_547_520, 60_000),
    (17, 35_651_584, 16384, 8704, 2_139_095_040, 100_000),
    (18, 35_651_584, 16384, 8704, 4_278_190_080, 160_000),
    (19, 35_651_584, 16384, 8704, 4_278_190_080, 160_000),
];

/// The lowest AV1 level (`seq_level_idx`: 0 = 2.0, 8 = 4.0, …) whose Annex A limits admit `width`×`height` at `fps`
/// and a peak of `max_kbps` in the Main tier; `None` above level 6.3 (signal 31, "no level constraint").
pub fn level_for(width: u32, height: u32, fps: f64, max_kbps: u32) -> Option<u8> {
    let pic = u64::from(width) * u64::from(height);
    let rate = (pic as f64 * fps).ceil() as u64;
    LEVELS
        .iter()
        .find(|(_, max_pic, max_w, max_h, max_rate, mbps)| {
            pic <= *max_pic && width <= *max_w && height <= *max_h && rate <= *max_rate && max_kbps <= *mbps
        })
        .map(|l| l.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_annex_a() {
        assert_eq!(level_for(1920, 1080, 30.0, 9000), Some(8), "1080p30 → 4.0");
        assert_eq!(level_for(1920, 1080, 60.0, 9000), Some(9), "1080p60 → 4.1");
        assert_eq!(level_for(1280, 720, 30.0, 5000), Some(5), "720p30 → 3.1");
        assert_eq!(level_for(854, 480, 30.0, 2400), Some(4), "480p30 → 3.0");
        assert_eq!(level_for(640, 360, 30.0, 1200), Some(1), "360p30 → 2.1");
        assert_eq!(level_for(320, 180, 25.0, 600), Some(0), "180p → 2.0");
        assert_eq!(
            level_for(640, 360, 30.0, 20_000),
            Some(9),
            "the bitrate raises the level"
        );
        assert_eq!(level_for(3840, 2160, 30.0, 20_000), Some(12), "2160p30 → 5.0");
        assert_eq!(level_for(16384, 16384, 60.0, 1000), None);
        assert_eq!(
            level_for(2900, 50, 25.0, 500),
            Some(4),
            "the width alone raises the level"
        );
    }

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
