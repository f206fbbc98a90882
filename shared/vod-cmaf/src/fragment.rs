//! CMAF media segment: `styp` + one `moof` (mfhd, traf with tfhd/tfdt/trun) + one `mdat`.

use mp4_atom::{Decode, Mfhd, Moof, Styp, Tfdt, Tfhd, Traf, Trun, TrunEntry};

use crate::{
    boxes::{encode, fourcc, mdat_header, mdat_header_len},
    codec,
    sample::{self, SampleRow},
    MuxError, Sample, TrackConfig,
};

/// The `styp` of every media segment: a CMAF segment (`cmfs`) that is also a DASH media segment (`msdh`).
fn styp() -> Styp {
    Styp {
        major_brand: fourcc(b"cmfs"),
        minor_version: 0,
        compatible_brands: vec![fourcc(b"cmfs"), fourcc(b"msdh")],
    }
}

/// The `trun` rows: size, duration and flags of every sample; composition offsets only when one is nonzero.
fn trun_entries(rows: &[SampleRow]) -> Vec<TrunEntry> {
    let with_cts = rows.iter().any(|r| r.composition_offset != 0);
    rows.iter()
        .map(|r| TrunEntry {
            duration: Some(r.duration),
            size: Some(r.size),
            flags: Some(r.flags()),
            cts: with_cts.then_some(i64::from(r.composition_offset)),
        })
        .collect()
}

fn moof_box(
    track_id: u32,
    sequence_number: u32,
    base_media_decode_time: u64,
    entries: Vec<TrunEntry>,
    data_offset: i32,
) -> Moof {
    Moof {
        mfhd: Mfhd { sequence_number },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt { base_media_decode_time }),
            trun: vec![Trun {
                data_offset: Some(data_offset),
                samples: entries.into(),
            }],
            ..Default::default()
        }],
    }
}

/// styp + moof (mfhd with `sequence_number`, traf: tfhd default-base-is-moof, tfdt v1, trun with per-sample size,
/// duration, flags, composition offsets when any is nonzero, and a data offset pointing at the mdat payload) + mdat.
///
/// `sequence_number` starts at 1; the first sample must be a sync sample. AV1 temporal delimiters are dropped.
pub fn media_segment(
    track: &TrackConfig,
    sequence_number: u32,
    base_media_decode_time: u64,
    samples: &[Sample],
) -> Result<Vec<u8>, MuxError> {
    media_segment_with_key(track, sequence_number, base_media_decode_time, samples).map(|(bytes, _)| bytes)
}

/// [`media_segment`], and where its first sample (a video segment's key frame) lies in it: the bytes from the
/// segment's start through that sample are what an HLS I-frame playlist entry names.
pub fn media_segment_with_key(
    track: &TrackConfig,
    sequence_number: u32,
    base_media_decode_time: u64,
    samples: &[Sample],
) -> Result<(Vec<u8>, std::ops::Range<u64>), MuxError> {
    codec::validate_track(track)?;
    if sequence_number == 0 {
        return Err(MuxError::InvalidConfig("sequence_number starts at 1".into()));
    }
    let prepared = sample::prepare(&track.codec, samples, true)?;
    let rows: Vec<SampleRow> = prepared.iter().map(|p| p.row).collect();
    let payload_len: u64 = rows.iter().map(|r| u64::from(r.size)).sum();
    let entries = trun_entries(&rows);

    // The moof's size does not depend on the data offset's value: measure it, then write the real offset.
    let probe = encode(&moof_box(
        track.track_id,
        sequence_number,
        base_media_decode_time,
        entries.clone(),
        0,
    ))?;
    let data_offset = i32::try_from(probe.len() as u64 + mdat_header_len(payload_len))
        .map_err(|_| MuxError::Overflow("trun data_offset"))?;
    let moof_bytes = encode(&moof_box(
        track.track_id,
        sequence_number,
        base_media_decode_time,
        entries,
        data_offset,
    ))?;
    if moof_bytes.len() != probe.len() {
        return Err(MuxError::Overflow("moof size changed between passes"));
    }

    let styp_bytes = encode(&styp())?;
    let total = usize::try_from(payload_len)
        .ok()
        .and_then(|p| p.checked_add(styp_bytes.len() + moof_bytes.len() + 16))
        .ok_or(MuxError::Overflow("segment size"))?;
    let mut out = Vec::with_capacity(total);
    out.extend(styp_bytes);
    out.extend(moof_bytes);
    out.extend(mdat_header(payload_len)?);
    let key_at = out.len() as u64;
    let key = key_at..key_at + u64::from(rows[0].size);
    for p in &prepared {
        out.extend_from_slice(&p.data);
    }
    Ok((out, key))
}

/// A video segment's key frame as a segment of its own: from `prefix`, the bytes of a segment written by
/// [`media_segment_with_key`] from its start through its key frame (at `key`), the `styp`, a `moof` listing that
/// one sample (its entry, track, sequence number and decode time kept) and an `mdat` holding it. Encrypted HLS
/// I-frame playlists name these: protecting a segment changes its `moof`, so byte ranges of the protected segment
/// cannot be known before it is made.
pub fn key_frame_fragment(prefix: &[u8], key: std::ops::Range<u64>) -> Result<Vec<u8>, MuxError> {
    let bad = |reason: &str| MuxError::InvalidSample {
        index: 0,
        reason: format!("not a segment prefix through its key frame: {reason}"),
    };
    let (at, end) = (
        usize::try_from(key.start).map_err(|_| bad("offset"))?,
        usize::try_from(key.end).map_err(|_| bad("offset"))?,
    );
    if at >= end || end > prefix.len() {
        return Err(bad("the key frame is outside the bytes"));
    }
    let (mut pos, mut found) = (0usize, None);
    while pos + 8 <= at {
        let size = u32::from_be_bytes([prefix[pos], prefix[pos + 1], prefix[pos + 2], prefix[pos + 3]]) as usize;
        let kind = &prefix[pos + 4..pos + 8];
        if kind == b"mdat" {
            break;
        }
        if size < 8 || pos + size > at {
            return Err(bad("a box runs past the key frame"));
        }
        if kind == b"moof" {
            let mut body = &prefix[pos..pos + size];
            found = Some(Moof::decode(&mut body)?);
        }
        pos += size;
    }
    let moof = found.ok_or_else(|| bad("no moof"))?;
    let traf = moof.traf.first().ok_or_else(|| bad("no traf"))?;
    let first = traf
        .trun
        .first()
        .and_then(|t| t.samples.get(0))
        .ok_or_else(|| bad("no sample"))?;
    if first.size.map(u64::from) != Some(key.end - key.start) {
        return Err(bad("the first sample's size is not the key frame's"));
    }
    let one = |offset| {
        moof_box(
            traf.tfhd.track_id,
            moof.mfhd.sequence_number,
            traf.tfdt.as_ref().map_or(0, |t| t.base_media_decode_time),
            vec![first],
            offset,
        )
    };
    let len = key.end - key.start;
    let probe = encode(&one(0))?;
    let offset =
        i32::try_from(probe.len() as u64 + mdat_header_len(len)).map_err(|_| MuxError::Overflow("trun data_offset"))?;
    let mut out = encode(&styp())?;
    out.extend(encode(&one(offset))?);
    out.extend(mdat_header(len)?);
    out.extend_from_slice(&prefix[at..end]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS};
    use crate::CodecConfig;
    use mp4_atom::{Any, Decode};

    fn track() -> TrackConfig {
        TrackConfig {
            track_id: 1,
            timescale: 48000,
            codec: CodecConfig::Opus {
                channels: 1,
                pre_skip: 312,
                input_sample_rate: 48000,
            },
            language: "und".into(),
        }
    }

    fn sample(byte: u8, len: usize, is_sync: bool, composition_offset: i32) -> Sample {
        Sample {
            data: vec![byte; len],
            duration: 960,
            is_sync,
            composition_offset,
        }
    }

    /// Splits a segment into (styp, moof, moof start, mdat payload start, mdat payload).
    fn parse(bytes: &[u8]) -> (Styp, Moof, usize, usize, Vec<u8>) {
        let mut buf = bytes;
        let Any::Styp(styp) = Any::decode(&mut buf).unwrap() else {
            panic!("styp first")
        };
        let moof_start = bytes.len() - buf.len();
        let Any::Moof(moof) = Any::decode(&mut buf).unwrap() else {
            panic!("moof second")
        };
        let mdat_start = bytes.len() - buf.len();
        let size = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert_eq!(&buf[4..8], b"mdat");
        assert_eq!(size, buf.len(), "mdat runs to the end and its size is right");
        (styp, moof, moof_start, mdat_start + 8, buf[8..].to_vec())
    }

    #[test]
    fn key_frame_fragment_is_the_first_sample_alone() {
        let samples = vec![sample(1, 10, true, 0), sample(2, 20, false, 0), sample(3, 5, false, 0)];
        let (bytes, key) = media_segment_with_key(&track(), 7, 9_600, &samples).expect("a segment");
        assert_eq!(&bytes[key.start as usize..key.end as usize], &[1u8; 10][..]);
        assert_eq!(bytes.len() as u64, key.end + 25, "the other samples follow");
        let prefix = &bytes[..key.end as usize];
        let one = key_frame_fragment(prefix, key.clone()).expect("the key frame alone");
        let (_, moof, _, _, payload) = parse(&one);
        assert_eq!(payload, vec![1u8; 10]);
        assert_eq!(moof.mfhd.sequence_number, 7);
        let traf = &moof.traf[0];
        assert_eq!(traf.tfdt.as_ref().map(|t| t.base_media_decode_time), Some(9_600));
        assert_eq!(traf.trun[0].samples.len(), 1);
        assert_eq!(
            traf.trun[0].samples.get(0).and_then(|e| e.flags),
            Some(SYNC_SAMPLE_FLAGS)
        );
        // Not a prefix through the key frame: errors, never a panic.
        assert!(key_frame_fragment(&prefix[..prefix.len() - 1], key.clone()).is_err());
        assert!(key_frame_fragment(prefix, key.start..key.end - 1).is_err());
        assert!(key_frame_fragment(&prefix[40..], key.start - 40..key.end - 40).is_err());
        assert!(key_frame_fragment(prefix, 0..0).is_err());
        let mut lying = prefix.to_vec();
        lying[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        let _ = key_frame_fragment(&lying, key);
    }

    #[test]
    fn segment_layout_and_data_offset() {
        let samples = vec![sample(1, 10, true, 0), sample(2, 20, true, 0), sample(3, 5, true, 0)];
        let bytes = media_segment(&track(), 7, 123_456_789_012, &samples).unwrap();
        let (styp, moof, moof_start, payload_start, payload) = parse(&bytes);
        assert_eq!(styp.major_brand, fourcc(b"cmfs"));
        assert_eq!(moof.mfhd.sequence_number, 7);
        let traf = &moof.traf[0];
        assert!(traf.tfhd.default_base_is_moof);
        assert_eq!(traf.tfhd.base_data_offset, None);
        assert_eq!(traf.tfdt.as_ref().unwrap().base_media_decode_time, 123_456_789_012);
        let trun = &traf.trun[0];
        let data_offset = trun.data_offset.unwrap() as usize;
        assert_eq!(
            moof_start + data_offset,
            payload_start,
            "data_offset points at the mdat payload"
        );
        let entries: Vec<_> = trun.samples.iter().collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries.iter().map(|e| e.size.unwrap()).collect::<Vec<_>>(), [10, 20, 5]);
        assert!(entries.iter().all(|e| e.duration == Some(960) && e.cts.is_none()));
        let mut expected = vec![1; 10];
        expected.extend([2; 20]);
        expected.extend([3; 5]);
        assert_eq!(payload, expected);
    }

    #[test]
    fn tfdt_is_version_1() {
        let bytes = media_segment(&track(), 1, 0, &[sample(1, 3, true, 0)]).unwrap();
        let pos = bytes.windows(4).position(|w| w == b"tfdt").unwrap();
        assert_eq!(bytes[pos + 4], 1, "tfdt version");
        assert_eq!(
            u32::from_be_bytes(bytes[pos - 4..pos].try_into().unwrap()),
            20,
            "64-bit tfdt size"
        );
    }

    #[test]
    fn flags_and_composition_offsets() {
        let samples = vec![
            sample(1, 4, true, 0),
            sample(2, 4, false, 960),
            sample(3, 4, false, -960),
        ];
        let bytes = media_segment(&track(), 1, 0, &samples).unwrap();
        let (_, moof, ..) = parse(&bytes);
        let entries: Vec<_> = moof.traf[0].trun[0].samples.iter().collect();
        assert_eq!(entries[0].flags, Some(SYNC_SAMPLE_FLAGS));
        assert_eq!(entries[1].flags, Some(NON_SYNC_SAMPLE_FLAGS));
        assert_eq!(
            entries.iter().map(|e| e.cts.unwrap()).collect::<Vec<_>>(),
            [0, 960, -960]
        );
        let pos = bytes.windows(4).position(|w| w == b"trun").unwrap();
        assert_eq!(bytes[pos + 4], 1, "signed offsets need trun version 1");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(media_segment(&track(), 1, 0, &[]), Err(MuxError::Empty(_))));
        assert!(media_segment(&track(), 0, 0, &[sample(1, 1, true, 0)]).is_err());
        assert!(media_segment(&track(), 1, 0, &[sample(1, 1, false, 0)]).is_err());
        let bad_track = TrackConfig {
            timescale: 0,
            ..track()
        };
        assert!(media_segment(&bad_track, 1, 0, &[sample(1, 1, true, 0)]).is_err());
    }
}
