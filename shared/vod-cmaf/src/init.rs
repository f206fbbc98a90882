//! CMAF init segment: `ftyp` + `moov` describing one track with an empty sample table and `mvex`/`trex`.

use mp4_atom::{FixedPoint, FourCC, Ftyp, Moov, Mvex, Mvhd, Trex};

use crate::{
    boxes::{encode, fourcc},
    codec,
    track::{self, TrackDurations},
    CodecConfig, MuxError, TrackConfig,
};

/// Compatible brands of CMAF output carrying `codec` (CMAF `cmfc`/`cmf2`, ISOBMFF `iso6`, DASH, and the codec's
/// own brands).
pub(crate) fn compatible_brands(codecs: &[&CodecConfig]) -> Vec<FourCC> {
    let mut brands = vec![fourcc(b"cmf2"), fourcc(b"cmfc"), fourcc(b"iso6"), fourcc(b"dash")];
    if codecs.iter().any(|c| matches!(c, CodecConfig::Av1 { .. })) {
        brands.push(fourcc(b"av01"));
        brands.push(fourcc(b"cav1"));
    }
    if codecs.iter().any(|c| matches!(c, CodecConfig::H264 { .. })) {
        brands.push(fourcc(b"avc1"));
        brands.push(fourcc(b"cfhd"));
    }
    if codecs.iter().any(|c| matches!(c, CodecConfig::Opus { .. })) {
        brands.push(fourcc(b"Opus"));
    }
    brands
}

/// The movie header shared by init segments and progressive files.
pub(crate) fn mvhd(timescale: u32, duration: u64, next_track_id: u32) -> Mvhd {
    Mvhd {
        timescale,
        duration,
        rate: FixedPoint::new(1, 0),
        volume: FixedPoint::new(1, 0),
        next_track_id,
        ..Default::default()
    }
}

/// ftyp (major brand `cmf2`) + moov (mvhd, one trak with an empty sample table, mvex/trex). Duration 0.
pub fn init_segment(track: &TrackConfig) -> Result<Vec<u8>, MuxError> {
    codec::validate_track(track)?;
    let ftyp = Ftyp {
        major_brand: fourcc(b"cmf2"),
        minor_version: 0,
        compatible_brands: compatible_brands(&[&track.codec]),
    };
    let moov = Moov {
        mvhd: mvhd(track.timescale, 0, track.track_id.saturating_add(1)),
        mvex: Some(Mvex {
            mehd: None,
            trex: vec![Trex {
                track_id: track.track_id,
                default_sample_description_index: 1,
                ..Default::default()
            }],
        }),
        trak: vec![track::trak(track, TrackDurations::default(), track::empty_stbl(track)?)],
        ..Default::default()
    };
    let mut out = encode(&ftyp)?;
    out.extend(crate::hdr::add_hdr_boxes(encode(&moov)?, &[track])?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Any, Codec, Decode};

    fn opus_track() -> TrackConfig {
        TrackConfig {
            track_id: 2,
            timescale: 48000,
            codec: CodecConfig::Opus {
                channels: 2,
                pre_skip: 312,
                input_sample_rate: 44100,
            },
            language: "eng".into(),
        }
    }

    #[test]
    fn init_segment_layout() {
        let bytes = init_segment(&opus_track()).unwrap();
        let mut buf = bytes.as_slice();
        let Any::Ftyp(ftyp) = Any::decode(&mut buf).unwrap() else {
            panic!("ftyp first")
        };
        assert_eq!(ftyp.major_brand, fourcc(b"cmf2"));
        assert!(ftyp.compatible_brands.contains(&fourcc(b"cmfc")));
        assert!(ftyp.compatible_brands.contains(&fourcc(b"iso6")));
        let Any::Moov(moov) = Any::decode(&mut buf).unwrap() else {
            panic!("moov second")
        };
        assert!(buf.is_empty(), "nothing after moov");
        assert_eq!(moov.mvhd.duration, 0);
        assert_eq!(moov.mvhd.timescale, 48000);
        assert_eq!(moov.mvex.as_ref().unwrap().trex[0].track_id, 2);
        let trak = &moov.trak[0];
        assert_eq!(trak.tkhd.track_id, 2);
        assert_eq!(trak.mdia.mdhd.language, "eng");
        assert_eq!(trak.mdia.hdlr.handler, fourcc(b"soun"));
        let stbl = &trak.mdia.minf.stbl;
        assert!(stbl.stts.entries.is_empty());
        let Codec::Opus(opus) = &stbl.stsd.codecs[0] else {
            panic!("Opus entry")
        };
        assert_eq!(opus.dops.pre_skip, 312);
        assert_eq!(opus.dops.input_sample_rate, 44100);
        assert_eq!(opus.audio.channel_count, 2);
    }

    #[test]
    fn invalid_track_is_rejected() {
        let track = TrackConfig {
            track_id: 0,
            ..opus_track()
        };
        assert!(matches!(init_segment(&track), Err(MuxError::InvalidConfig(_))));
    }
}
