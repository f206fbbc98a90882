//! The encoder seam. A rung names its video encoder with that encoder's own settings ([`VideoCodec`]), the audio
//! track its audio encoder ([`AudioCodec`]); each encoder is one module implementing [`VideoEncoder`] or
//! [`AudioEncoder`] (rav1e: `av1`, x264: `h264`, libopus: `opus_enc`, libavcodec's AAC: `aac_enc`), and
//! [`video_encoder`] / [`audio_encoder`] are the registry.
//! The pipelines (`video`, `audio`) only see the traits: adding an encoder is its module, its variant here and its
//! registry arm.
use vod_cmaf::CodecConfig;

use crate::scale::Picture;
use crate::EncodeError;

/// The video encoder of a rung and its own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// AV1 by rav1e; `speed` is rav1e's preset, 0 (slowest) ..= 10 (fastest).
    Av1 { speed: u8 },
    /// H.264 High by x264 (through libavcodec) with x264's preset.
    H264 { preset: X264Preset },
}

/// x264's speed/quality presets, fastest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum X264Preset {
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
    Slow,
    Slower,
    Veryslow,
}

impl X264Preset {
    pub const ALL: [X264Preset; 9] = [
        X264Preset::Ultrafast,
        X264Preset::Superfast,
        X264Preset::Veryfast,
        X264Preset::Faster,
        X264Preset::Fast,
        X264Preset::Medium,
        X264Preset::Slow,
        X264Preset::Slower,
        X264Preset::Veryslow,
    ];

    /// x264's name of the preset.
    pub fn as_str(self) -> &'static str {
        match self {
            X264Preset::Ultrafast => "ultrafast",
            X264Preset::Superfast => "superfast",
            X264Preset::Veryfast => "veryfast",
            X264Preset::Faster => "faster",
            X264Preset::Fast => "fast",
            X264Preset::Medium => "medium",
            X264Preset::Slow => "slow",
            X264Preset::Slower => "slower",
            X264Preset::Veryslow => "veryslow",
        }
    }

    /// The preset of an x264 name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl VideoCodec {
    /// Checks the encoder's own settings.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            VideoCodec::Av1 { speed } if *speed > 10 => Err("speed must be within 0..=10".into()),
            VideoCodec::Av1 { .. } | VideoCodec::H264 { .. } => Ok(()),
        }
    }
}

/// The audio encoder of an audio track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// Opus by libopus, 48 kHz, 20 ms packets.
    Opus,
    /// AAC-LC by libavcodec, 48 kHz, 1024-sample packets.
    Aac,
}

/// What every rung's encoder is told besides its codec.
#[derive(Debug, Clone)]
pub struct VideoSettings {
    pub width: u32,
    pub height: u32,
    /// The rate controller's target (the rung's, or corrected by a pass that missed it).
    pub bitrate_kbps: u32,
    /// The rung's target: what the stream signals (level, VBV caps), the same in every chunk of the rung, so all
    /// chunks share one sequence header / SPS and one init segment.
    pub nominal_kbps: u32,

    /// Frame rate as num/den.
    pub frame_rate: (u32, u32),
    pub threads: usize,
    /// Number of frames the encoder will see.
    pub frames: u64,
    /// Bits per sample of the pictures it gets (8, or 10 for AV1 rungs of deeper sources).
    pub depth: u8,
    /// The colour description to signal (sources of more than 8 bits), else none (unspecified: BT.709).
    pub colour: Option<vod_cmaf::Colour>,
}

/// One encoded frame.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// Index of the frame in the order it was sent (0-based).
    pub input_index: u64,
    pub data: Vec<u8>,
    pub key: bool,
}

/// A video encoder for one rung: pictures in display order, a key frame where asked (each segment's first frame).
pub trait VideoEncoder: Send {
    /// Sends one picture; `key` forces a key frame.
    fn send(&mut self, pic: &Picture, key: bool) -> Result<(), EncodeError>;
    /// Flushes: the encoded frames in order and the track's codec configuration (its sample entry).
    fn finish(self: Box<Self>) -> Result<(CodecConfig, Vec<EncodedFrame>), EncodeError>;
}

/// An audio encoder: interleaved f32 PCM at its sample rate in, packets of a fixed duration out.
pub trait AudioEncoder: Send {
    /// The sample rate it takes (and the track's timescale).
    fn sample_rate(&self) -> u32;
    /// Samples per channel of each packet.
    fn packet_samples(&self) -> u32;
    fn push(&mut self, pcm: &[f32]) -> Result<(), EncodeError>;
    /// Flushes: the packets, the track's codec configuration, and the input's duration in samples (without the
    /// encoder's delay and final padding). `input_sample_rate` is the source's rate, for the sample entry.
    fn finish(self: Box<Self>, input_sample_rate: u32) -> Result<EncodedAudio, EncodeError>;
}

/// An audio encoder's output.
pub struct EncodedAudio {
    pub codec: CodecConfig,
    pub packets: Vec<Vec<u8>>,
    pub duration: u64,
}

/// The registry of video encoders.
pub fn video_encoder(codec: VideoCodec, s: &VideoSettings) -> Result<Box<dyn VideoEncoder>, EncodeError> {
    match codec {
        VideoCodec::Av1 { speed } => crate::av1::av1_encoder(s, speed),
        VideoCodec::H264 { preset } => Ok(Box::new(crate::h264::H264Encoder::new(s, preset)?)),
    }
}

/// The registry of audio encoders.
pub fn audio_encoder(codec: AudioCodec, channels: u8, bitrate_kbps: u32) -> Result<Box<dyn AudioEncoder>, EncodeError> {
    match codec {
        AudioCodec::Opus => Ok(Box::new(crate::opus_enc::OpusEncoder::new(channels, bitrate_kbps)?)),
        AudioCodec::Aac => Ok(Box::new(crate::aac_enc::AacEncoder::new(channels, bitrate_kbps)?)),
    }
}
