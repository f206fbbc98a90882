//! Codec configuration: validation of a [`CodecConfig`], its ISOBMFF sample entry (`av01`, `avc1`, `mp4a`, `Opus`) and its
//! RFC 6381 codec string.

use mp4_atom::esds::{DecoderConfig, DecoderSpecific, EsDescriptor, SLConfig};
use mp4_atom::{Atom, Audio, Av01, Av1c, Avc1, Codec, Colr, Dops, Esds, FixedPoint, Mp4a, Opus, Visual};

use crate::{CodecConfig, MuxError, TrackConfig};

/// Parses the `av1C` payload (AV1CodecConfigurationRecord without box header).
pub fn parse_av1c(av1c: &[u8]) -> Result<Av1c, MuxError> {
    let mut buf = av1c;
    let record =
        Av1c::decode_body(&mut buf).map_err(|e| MuxError::InvalidConfig(format!("malformed av1C record: {e}")))?;
    if record.seq_profile > 2 {
        return Err(MuxError::InvalidConfig(format!(
            "av1C seq_profile {} is not 0, 1 or 2",
            record.seq_profile
        )));
    }
    if record.twelve_bit && !record.high_bitdepth {
        return Err(MuxError::InvalidConfig(
            "av1C twelve_bit set without high_bitdepth".into(),
        ));
    }
    Ok(record)
}

/// Bit depth (8, 10 or 12) signalled by an `av1C` record.
pub fn av1_bit_depth(record: &Av1c) -> u8 {
    match (record.high_bitdepth, record.twelve_bit) {
        (true, true) => 12,
        (true, false) => 10,
        _ => 8,
    }
}

/// RFC 6381 codec string: AV1 → `av01.P.LLT.DD` (e.g. `av01.0.08M.08`), with a colour description other than
/// the default BT.709 limited range the long form `av01.P.LLT.DD.M.CCC.cp.tc.mc.F` (AV1 codec ISOBMFF binding,
/// Annex A; e.g. `av01.0.08M.10.0.110.09.16.09.0` for HDR10); Opus → `opus`.
pub fn codec_string(codec: &CodecConfig) -> Result<String, MuxError> {
    match codec {
        CodecConfig::Av1 { av1c, colour, .. } => {
            let record = parse_av1c(av1c)?;
            let short = format!(
                "av01.{}.{:02}{}.{:02}",
                record.seq_profile,
                record.seq_level_idx_0,
                if record.seq_tier_0 { 'H' } else { 'M' },
                av1_bit_depth(&record)
            );
            Ok(match colour {
                Some(c) if (c.primaries, c.transfer, c.matrix, c.full_range) != (1, 1, 1, false) => format!(
                    "{short}.{}.{}{}{}.{:02}.{:02}.{:02}.{}",
                    u8::from(record.monochrome),
                    u8::from(record.chroma_subsampling_x),
                    u8::from(record.chroma_subsampling_y),
                    record.chroma_sample_position,
                    c.primaries,
                    c.transfer,
                    c.matrix,
                    u8::from(c.full_range)
                ),
                _ => short,
            })
        }
        CodecConfig::H264 { avcc, .. } => Ok(crate::avc::codec_string(&crate::avc::parse_avcc(avcc)?)),
        CodecConfig::Aac { asc, .. } => Ok(format!("mp4a.40.{}", aac_object_type(asc)?)),
        CodecConfig::Opus { .. } => Ok("opus".to_string()),
    }
}

/// The audio object type of an AudioSpecificConfig (2: AAC-LC), with the 5-bit escape of ISO/IEC 14496-3 1.6.2.1.
pub fn aac_object_type(asc: &[u8]) -> Result<u8, MuxError> {
    let bad = || MuxError::InvalidConfig(format!("AudioSpecificConfig {asc:02x?} is too short"));
    let first = *asc.first().ok_or_else(bad)?;
    match first >> 3 {
        31 => {
            let second = *asc.get(1).ok_or_else(bad)?;
            Ok(32 + (((first & 7) << 3) | (second >> 5)))
        }
        0 => Err(MuxError::InvalidConfig("AudioSpecificConfig with object type 0".into())),
        aot => Ok(aot),
    }
}

/// Checks everything of a track that the boxes depend on.
pub fn validate_track(track: &TrackConfig) -> Result<(), MuxError> {
    if track.track_id == 0 {
        return Err(MuxError::InvalidConfig("track_id must not be 0".into()));
    }
    if track.timescale == 0 {
        return Err(MuxError::InvalidConfig("timescale must not be 0".into()));
    }
    let lang = track.language.as_bytes();
    if lang.len() != 3 || !lang.iter().all(u8::is_ascii_lowercase) {
        return Err(MuxError::InvalidConfig(format!(
            "language {:?} is not a three-letter lowercase ISO-639-2/T code",
            track.language
        )));
    }
    match &track.codec {
        CodecConfig::Av1 {
            width, height, av1c, ..
        } => {
            if *width == 0 || *height == 0 {
                return Err(MuxError::InvalidConfig(format!("AV1 size {width}x{height}")));
            }
            parse_av1c(av1c)?;
        }
        CodecConfig::H264 { width, height, avcc } => {
            if *width == 0 || *height == 0 {
                return Err(MuxError::InvalidConfig(format!("H.264 size {width}x{height}")));
            }
            crate::avc::parse_avcc(avcc)?;
        }
        CodecConfig::Aac {
            channels,
            sample_rate,
            asc,
            ..
        } => {
            if !(1..=8).contains(channels) || *sample_rate == 0 || asc.len() < 2 {
                return Err(MuxError::InvalidConfig(format!(
                    "AAC with {channels} channels at {sample_rate} Hz and a {}-byte AudioSpecificConfig",
                    asc.len()
                )));
            }
            aac_object_type(asc)?;
        }
        CodecConfig::Opus {
            channels,
            input_sample_rate,
            ..
        } => {
            // Families 1/255 need a channel mapping table that CodecConfig does not carry.
            if !(1..=2).contains(channels) {
                return Err(MuxError::InvalidConfig(format!(
                    "Opus with {channels} channels: only mono and stereo (mapping family 0) are supported"
                )));
            }
            if *input_sample_rate == 0 {
                return Err(MuxError::InvalidConfig("Opus input_sample_rate must not be 0".into()));
            }
        }
    }
    Ok(())
}

/// The visual part of a video sample entry.
fn visual(width: u16, height: u16) -> Visual {
    Visual {
        data_reference_index: 1,
        width,
        height,
        ..Visual::default()
    }
}

/// The sample entry (`av01` with `av1C`, `avc1` with `avcC`, `mp4a` with `esds`, or `Opus` with `dOps`) of a
/// validated track.
pub(crate) fn sample_entry(track: &TrackConfig) -> Result<Codec, MuxError> {
    match &track.codec {
        CodecConfig::Av1 {
            width,
            height,
            av1c,
            colour,
        } => Ok(Codec::Av01(Av01 {
            visual: visual(*width, *height),
            av1c: parse_av1c(av1c)?,
            btrt: None,
            ccst: None,
            colr: colour.map(|c| Colr::Nclx {
                colour_primaries: c.primaries.into(),
                transfer_characteristics: c.transfer.into(),
                matrix_coefficients: c.matrix.into(),
                full_range_flag: c.full_range,
            }),
            pasp: None,
            taic: None,
            spatial: None,
        })),
        CodecConfig::H264 { width, height, avcc } => Ok(Codec::Avc1(Avc1 {
            visual: visual(*width, *height),
            avcc: crate::avc::parse_avcc(avcc)?,
            btrt: None,
            colr: None,
            pasp: None,
            taic: None,
            fiel: None,
            spatial: None,
        })),
        CodecConfig::Aac {
            channels,
            sample_rate,
            asc,
            ..
        } => Ok(Codec::Mp4a(Mp4a {
            audio: Audio {
                data_reference_index: 1,
                channel_count: u16::from(*channels),
                sample_size: 16,
                // The 16.16 field cannot hold rates above 65535 Hz; the AudioSpecificConfig carries the real one.
                sample_rate: FixedPoint::new(u16::try_from(*sample_rate).unwrap_or(0), 0),
            },
            esds: Esds {
                es_desc: EsDescriptor {
                    es_id: u16::try_from(track.track_id).unwrap_or(0),
                    dec_config: DecoderConfig {
                        // ISO/IEC 14496-3 audio in an audio stream (14496-1 Table 5 and 6).
                        object_type_indication: 0x40,
                        stream_type: 0x05,
                        dec_specific: Some(DecoderSpecific {
                            raw: asc.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    sl_config: SLConfig {},
                    ..Default::default()
                },
            },
            btrt: None,
            taic: None,
        })),
        CodecConfig::Opus {
            channels,
            pre_skip,
            input_sample_rate,
        } => Ok(Codec::Opus(Opus {
            audio: Audio {
                data_reference_index: 1,
                channel_count: u16::from(*channels),
                sample_size: 16,
                // Opus sample entries always carry 48000 (the decoder's rate), whatever the input rate.
                sample_rate: FixedPoint::new(48000, 0),
            },
            dops: Dops {
                output_channel_count: *channels,
                pre_skip: *pre_skip,
                input_sample_rate: *input_sample_rate,
                output_gain: 0,
                channel_mapping: None,
            },
            btrt: None,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn av1c_bytes(profile: u8, level: u8, tier: bool, high: bool, twelve: bool) -> Vec<u8> {
        let mut out = vec![
            0x81,
            (profile << 5) | level,
            (u8::from(tier) << 7) | (u8::from(high) << 6) | (u8::from(twelve) << 5) | 0b1100,
            0,
        ];
        out.extend_from_slice(&[0x0a, 0x0b, 0x00, 0x00, 0x00, 0x24, 0xc4, 0xff, 0xdf, 0x00, 0x68, 0x02]);
        out
    }

    #[test]
    fn av1_codec_strings() {
        let s = |profile, level, tier, high, twelve| {
            codec_string(&CodecConfig::Av1 {
                width: 16,
                height: 16,
                av1c: av1c_bytes(profile, level, tier, high, twelve),
                colour: None,
            })
            .unwrap()
        };
        assert_eq!(s(0, 8, false, false, false), "av01.0.08M.08");
        assert_eq!(s(0, 13, true, true, false), "av01.0.13H.10");
        assert_eq!(s(2, 31, false, true, true), "av01.2.31M.12");
        assert_eq!(s(1, 0, false, false, false), "av01.1.00M.08");
    }

    #[test]
    fn av1_colour_is_in_the_long_codec_string_and_the_colr_box() {
        use crate::Colour;
        let hdr10 = Colour {
            primaries: 9,
            transfer: 16,
            matrix: 9,
            full_range: false,
            mastering: None,
            light: None,
        };
        let config = |colour| CodecConfig::Av1 {
            width: 16,
            height: 16,
            // 4:2:0 (subsampling x and y), chroma sample position 0.
            av1c: av1c_bytes(0, 8, false, true, false),
            colour,
        };
        assert_eq!(
            codec_string(&config(Some(hdr10))).unwrap(),
            "av01.0.08M.10.0.110.09.16.09.0"
        );
        let bt709 = Colour {
            primaries: 1,
            transfer: 1,
            matrix: 1,
            full_range: false,
            mastering: None,
            light: None,
        };
        assert_eq!(codec_string(&config(Some(bt709))).unwrap(), "av01.0.08M.10");
        let track = TrackConfig {
            track_id: 1,
            timescale: 90000,
            codec: config(Some(hdr10)),
            language: "und".into(),
        };
        let Ok(Codec::Av01(entry)) = sample_entry(&track) else {
            panic!("an av01 sample entry")
        };
        assert_eq!(
            entry.colr,
            Some(Colr::Nclx {
                colour_primaries: 9,
                transfer_characteristics: 16,
                matrix_coefficients: 9,
                full_range_flag: false
            })
        );
    }

    #[test]
    fn opus_codec_string() {
        let c = CodecConfig::Opus {
            channels: 2,
            pre_skip: 312,
            input_sample_rate: 48000,
        };
        assert_eq!(codec_string(&c).unwrap(), "opus");
    }

    #[test]
    fn aac_codec_strings() {
        let aac = |asc: Vec<u8>| CodecConfig::Aac {
            channels: 2,
            sample_rate: 48000,
            asc,
            priming: 1024,
        };
        // AAC-LC, 48 kHz (index 3), stereo.
        assert_eq!(codec_string(&aac(vec![0x11, 0x90])).expect("AAC-LC"), "mp4a.40.2");
        // HE-AAC (SBR, 5).
        assert_eq!(
            codec_string(&aac(vec![0x2b, 0x92, 0x08, 0x00])).expect("HE-AAC"),
            "mp4a.40.5"
        );
        // The escape: object type 32 + 10 = 42 (USAC).
        assert_eq!(
            codec_string(&aac(vec![0xf9, 0x46, 0x40])).expect("escaped object type"),
            "mp4a.40.42"
        );
        for bad in [vec![], vec![0x00, 0x00], vec![0xf8]] {
            assert!(codec_string(&aac(bad.clone())).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn malformed_av1c_is_an_error() {
        for bad in [
            vec![],
            vec![0x81],
            vec![0x00, 0, 0, 0],
            vec![0x81, 3 << 5, 0, 0],
            vec![0x81, 0, 0x20, 0],
        ] {
            let c = CodecConfig::Av1 {
                width: 16,
                height: 16,
                av1c: bad.clone(),
                colour: None,
            };
            assert!(matches!(codec_string(&c), Err(MuxError::InvalidConfig(_))), "{bad:?}");
        }
    }

    #[test]
    fn track_validation() {
        let ok = TrackConfig {
            track_id: 1,
            timescale: 48000,
            codec: CodecConfig::Opus {
                channels: 2,
                pre_skip: 312,
                input_sample_rate: 48000,
            },
            language: "und".into(),
        };
        validate_track(&ok).unwrap();
        for bad in [
            TrackConfig {
                track_id: 0,
                ..ok.clone()
            },
            TrackConfig {
                timescale: 0,
                ..ok.clone()
            },
            TrackConfig {
                language: "english".into(),
                ..ok.clone()
            },
            TrackConfig {
                language: "EN1".into(),
                ..ok.clone()
            },
            TrackConfig {
                codec: CodecConfig::Opus {
                    channels: 6,
                    pre_skip: 0,
                    input_sample_rate: 48000,
                },
                ..ok.clone()
            },
            TrackConfig {
                codec: CodecConfig::Av1 {
                    width: 0,
                    height: 10,
                    av1c: av1c_bytes(0, 0, false, false, false),
                    colour: None,
                },
                ..ok.clone()
            },
        ] {
            assert!(validate_track(&bad).is_err(), "{bad:?}");
        }
    }
}
