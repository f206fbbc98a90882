//! Types shared by the encoder (which produces them) and the muxer (which writes them as CMAF).
use serde::{Deserialize, Serialize};

/// Codec configuration of one track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CodecConfig {
    /// AV1: `av1c` is the full AV1CodecConfigurationRecord (the payload of the `av1C` box, as returned by
    /// rav1e's `Context::container_sequence_header()`), which starts with marker/version, profile, level, tier...
    /// `colour`: the colour description the sequence header signals too, written as the sample entry's `colr`
    /// (absent: unspecified, read as BT.709 SDR).
    Av1 {
        width: u16,
        height: u16,
        av1c: Vec<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        colour: Option<Colour>,
    },
    /// H.264: `avcc` is the AVCDecoderConfigurationRecord (the payload of the `avcC` box, 4-byte NAL lengths);
    /// samples are length-prefixed NAL units without parameter sets (`vod_cmaf::avc`).
    H264 { width: u16, height: u16, avcc: Vec<u8> },
    /// AAC (ISO/IEC 14496-3 in `mp4a`/`esds`): `asc` is the AudioSpecificConfig; `priming` the encoder's delay in
    /// samples, trimmed by the track's edit list (`elst` media time), so AAC starts where the source does.
    Aac {
        channels: u8,
        sample_rate: u32,
        asc: Vec<u8>,
        priming: u32,
    },
    /// Opus (RFC 7845 / "Encapsulation of Opus in ISOBMFF"): `pre_skip` in 48 kHz samples.
    Opus {
        channels: u8,
        pre_skip: u16,
        input_sample_rate: u32,
    },
}

/// A video colour description (ITU-T H.273 code points, as in an `nclx` `colr` box and AV1's color_config), with
/// HDR10's static metadata where the source has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Colour {
    pub primaries: u8,
    pub transfer: u8,
    pub matrix: u8,
    pub full_range: bool,
    /// The mastering display's colour volume (SMPTE ST 2086), written as an `mdcv` box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mastering: Option<MasteringDisplay>,
    /// Content light levels (CTA-861.3), written as a `clli` box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub light: Option<ContentLight>,
}

/// A mastering display's colour volume in `mdcv`'s units: chromaticities in 0.00002, luminance in 0.0001 cd/m².
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasteringDisplay {
    /// Red, green and blue primaries as (x, y).
    pub primaries: [(u16, u16); 3],
    pub white_point: (u16, u16),
    pub max_luminance: u32,
    pub min_luminance: u32,
}

/// Content light levels in cd/m²: the brightest pixel and the brightest frame average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentLight {
    pub max_cll: u16,
    pub max_fall: u16,
}

impl CodecConfig {
    /// A picture track (key frames are listed in `stss`), as opposed to sound.
    pub fn is_video(&self) -> bool {
        matches!(self, CodecConfig::Av1 { .. } | CodecConfig::H264 { .. })
    }

    /// Picture size of a video track; (0, 0) for audio.
    pub fn size(&self) -> (u16, u16) {
        match self {
            CodecConfig::Av1 { width, height, .. } | CodecConfig::H264 { width, height, .. } => (*width, *height),
            CodecConfig::Aac { .. } | CodecConfig::Opus { .. } => (0, 0),
        }
    }

    /// Samples at the start of the media that the presentation skips — AAC's encoder delay, Opus's pre-skip — in
    /// the track's timescale (48 kHz for both). The track's edit list starts its presentation there (as ffmpeg's
    /// MP4 muxer and the Opus-in-ISOBMFF encapsulation do), so every track starts where the source does.
    pub fn priming(&self) -> u32 {
        match self {
            CodecConfig::Aac { priming, .. } => *priming,
            CodecConfig::Opus { pre_skip, .. } => u32::from(*pre_skip),
            _ => 0,
        }
    }
}

/// One track of a rendition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackConfig {
    pub track_id: u32,
    /// Media timescale (video: e.g. 90000 or the frame-rate numerator × k; Opus: 48000).
    pub timescale: u32,
    pub codec: CodecConfig,
    /// ISO-639-2/T language code, e.g. "und".
    pub language: String,
}

/// One encoded access unit (an AV1 temporal unit, an H.264 access unit, an AAC or Opus packet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub data: Vec<u8>,
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Random access point (AV1 key frame; every Opus packet).
    pub is_sync: bool,
    /// Composition time offset (0 for AV1 without reordering and for Opus).
    pub composition_offset: i32,
}
