//! The one home of H.264 (AVC) bitstream helpers (ITU-T H.264 §7.3.1, Annex B; ISO/IEC 14496-15 §5): NAL units of
//! an Annex B stream, their conversion to the length-prefixed form ISOBMFF stores, the AVCDecoderConfigurationRecord
//! (`avcC`) built from SPS/PPS, and the level a picture size, frame rate and bitrate need (Table A-1).
//! Hand-written: a start-code split and a table look-up are smaller than any crate's API around them.

use mp4_atom::{Atom, Avcc};

use crate::MuxError;

/// `nal_unit_type` of an IDR slice, SPS, PPS and access unit delimiter.
pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// The NAL units of an Annex B byte stream (start codes `00 00 01` / `00 00 00 01` removed; trailing zero bytes of
/// a unit belong to the next start code). Bytes before the first start code are ignored.
pub fn annex_b_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::with_capacity(starts.len());
    for (n, &s) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(data.len(), |next| next - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            units.push(&data[s..end]);
        }
    }
    units
}

/// `nal_unit_type` of a NAL unit (its first byte's low 5 bits).
pub fn nal_type(unit: &[u8]) -> Option<u8> {
    unit.first().map(|b| b & 0x1f)
}

/// An Annex B access unit as ISOBMFF stores it: every NAL unit behind a 4-byte big-endian length; parameter sets
/// and access unit delimiters left out (they live in `avcC`).
pub fn to_length_prefixed(access_unit: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(access_unit.len() + 16);
    for unit in annex_b_units(access_unit) {
        if matches!(nal_type(unit), Some(NAL_SPS | NAL_PPS | NAL_AUD)) {
            continue;
        }
        out.extend_from_slice(&(unit.len() as u32).to_be_bytes());
        out.extend_from_slice(unit);
    }
    out
}

/// Why a sample's NAL units could not be walked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("H.264: {0}")]
pub struct NalError(pub &'static str);

/// The NAL units of a length-prefixed (4-byte) sample, or an error naming what is wrong.
pub fn length_prefixed_units(sample: &[u8]) -> Result<Vec<&[u8]>, NalError> {
    let mut units = Vec::new();
    let mut rest = sample;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(NalError("truncated NAL length"));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len == 0 || len > tail.len() {
            return Err(NalError("NAL length zero or past the sample"));
        }
        units.push(&tail[..len]);
        rest = &tail[len..];
    }
    Ok(units)
}

/// The `avcC` payload (AVCDecoderConfigurationRecord, 4-byte NAL lengths) of the SPS and PPS found in an Annex B
/// header (an encoder's extradata).
pub fn avcc_from_annex_b(headers: &[u8]) -> Result<Vec<u8>, MuxError> {
    let units = annex_b_units(headers);
    let sps = units
        .iter()
        .find(|u| nal_type(u) == Some(NAL_SPS))
        .ok_or_else(|| MuxError::InvalidConfig("H.264 headers without an SPS".into()))?;
    let pps = units
        .iter()
        .find(|u| nal_type(u) == Some(NAL_PPS))
        .ok_or_else(|| MuxError::InvalidConfig("H.264 headers without a PPS".into()))?;
    let avcc = Avcc::new(sps, pps).map_err(|e| MuxError::InvalidConfig(format!("H.264 SPS: {e}")))?;
    let mut body = Vec::new();
    avcc.encode_body(&mut body)
        .map_err(|e| MuxError::InvalidConfig(format!("avcC: {e}")))?;
    Ok(body)
}

/// Parses an `avcC` payload.
pub fn parse_avcc(avcc: &[u8]) -> Result<Avcc, MuxError> {
    let mut buf = avcc;
    let record =
        Avcc::decode_body(&mut buf).map_err(|e| MuxError::InvalidConfig(format!("malformed avcC record: {e}")))?;
    if record.sequence_parameter_sets.is_empty() || record.picture_parameter_sets.is_empty() {
        return Err(MuxError::InvalidConfig("avcC without SPS or PPS".into()));
    }
    if record.length_size != 4 {
        return Err(MuxError::InvalidConfig(format!(
            "avcC NAL length size {} (4 expected)",
            record.length_size
        )));
    }
    Ok(record)
}

/// RFC 6381 `avc1.PPCCLL` of an `avcC` record.
pub fn codec_string(record: &Avcc) -> String {
    format!(
        "avc1.{:02X}{:02X}{:02X}",
        record.avc_profile_indication, record.profile_compatibility, record.avc_level_indication
    )
}

/// Table A-1 limits: (level_idc, max macroblocks/s, max frame size in macroblocks, max bitrate in kb/s for High
/// profile = 1.25 × MaxBR).
const LEVELS: [(u8, u64, u64, u64); 16] = [
    (10, 1_485, 99, 80),
    (11, 3_000, 396, 240),
    (12, 6_000, 396, 480),
    (13, 11_880, 396, 960),
    (20, 11_880, 396, 2_500),
    (21, 19_800, 792, 5_000),
    (22, 20_250, 1_620, 5_000),
    (30, 40_500, 1_620, 12_500),
    (31, 108_000, 3_600, 17_500),
    (32, 216_000, 5_120, 25_000),
    (40, 245_760, 8_192, 25_000),
    (41, 245_760, 8_192, 62_500),
    (42, 522_240, 8_704, 62_500),
    (50, 589_824, 22_080, 168_750),
    (51, 983_040, 36_864, 300_000),
    (52, 2_073_600, 36_864, 300_000),
];

/// The lowest H.264 level (level_idc, e.g. 40 for 4.0) whose Table A-1 limits admit `width`×`height` at `fps` and a
/// peak of `max_kbps` in High profile; `None` above level 5.2.
pub fn level_for(width: u32, height: u32, fps: f64, max_kbps: u32) -> Option<u8> {
    let mbs = u64::from(width.div_ceil(16)) * u64::from(height.div_ceil(16));
    let mbps = (mbs as f64 * fps).ceil() as u64;
    LEVELS
        .iter()
        .find(|(_, max_mbps, max_fs, max_br)| mbs <= *max_fs && mbps <= *max_mbps && u64::from(max_kbps) <= *max_br)
        .map(|l| l.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: [u8; 8] = [0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50];
    const PPS: [u8; 4] = [0x68, 0xeb, 0xe3, 0xcb];

    #[test]
    fn annex_b_splits_on_both_start_codes() {
        let mut s = vec![0, 0, 0, 1];
        s.extend_from_slice(&SPS);
        s.extend_from_slice(&[0, 0, 1]);
        s.extend_from_slice(&PPS);
        s.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00]);
        let units = annex_b_units(&s);
        assert_eq!(units, vec![&SPS[..], &PPS[..], &[0x65, 0x88, 0x84][..]]);
        let lp = to_length_prefixed(&s);
        assert_eq!(lp, vec![0, 0, 0, 3, 0x65, 0x88, 0x84]);
        assert_eq!(
            length_prefixed_units(&lp).expect("NAL units"),
            vec![&[0x65, 0x88, 0x84][..]]
        );
        assert!(annex_b_units(&[1, 2, 3]).is_empty());
        assert!(annex_b_units(&[]).is_empty());
    }

    #[test]
    fn avcc_and_codec_string() {
        let mut h = vec![0, 0, 0, 1];
        h.extend_from_slice(&SPS);
        h.extend_from_slice(&[0, 0, 0, 1]);
        h.extend_from_slice(&PPS);
        let avcc = avcc_from_annex_b(&h).expect("avcC from SPS/PPS");
        let record = parse_avcc(&avcc).expect("avcC parses");
        assert_eq!(codec_string(&record), "avc1.64001F");
        assert_eq!(record.sequence_parameter_sets, vec![SPS.to_vec()]);
        assert!(avcc_from_annex_b(&PPS).is_err());
        assert!(parse_avcc(&[1, 2]).is_err());
    }

    #[test]
    fn malformed_length_prefixes_are_errors() {
        assert!(length_prefixed_units(&[0, 0, 0]).is_err());
        assert!(length_prefixed_units(&[0, 0, 0, 9, 1]).is_err());
        assert!(length_prefixed_units(&[0, 0, 0, 0]).is_err());
    }

    #[test]
    fn levels_follow_table_a1() {
        assert_eq!(level_for(1920, 1080, 30.0, 6000), Some(40));
        assert_eq!(level_for(1920, 1080, 60.0, 8000), Some(42));
        assert_eq!(level_for(1280, 720, 30.0, 3000), Some(31));
        assert_eq!(level_for(640, 360, 30.0, 1000), Some(30));
        assert_eq!(level_for(416, 234, 30.0, 300), Some(13));
        assert_eq!(level_for(7680, 4320, 60.0, 50_000), None);
    }
}
