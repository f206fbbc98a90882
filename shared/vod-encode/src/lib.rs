//! Encoding of source chunks into AV1 or H.264 renditions and of source audio into Opus and AAC, as per-segment
//! [`vod_cmaf::Sample`]s ready to be muxed as CMAF fragments.
//!
//! Stages, one module each:
//! - [`source`](crate::source): demux and decode the source's video with libavformat/libavcodec;
//! - [`deinterlace`](crate::deinterlace): interlaced frames made progressive (motion-adaptive), inside the source;
//! - [`select`](crate::select): map decoded frames onto the constant-frame-rate output grid;
//! - [`scale`](crate::scale): scale each picture to every rung (libswscale, bicubic, 8-bit 4:2:0);
//! - [`encoder`]: the encoder seam — each rung's video encoder and the audio encoders, by codec (rav1e AV1 in
//!   `av1`, x264 in `h264`, a key frame at every segment start; libopus in `opus_enc`, AAC-LC in `aac_enc`);
//! - [`video`](crate::video): run the pipeline for one chunk and group frames into segments;
//! - [`audio`](crate::audio): decode once, resample to 48 kHz, encode every audio codec asked and group into
//!   segments;
//! - [`thumbs`](crate::thumbs): the frames shown at given times as JPEG sprite sheets and posters;
//! - [`timing`](crate::timing): exact segment boundaries and timescales.
//!
//! Workers are stateless: a chunk is a whole number of segments `[first_segment, end_segment)`, decoded
//! from the key frame at or before its start, so any worker can encode any chunk of any source.

mod aac_enc;
mod audio;
mod av1;
mod deinterlace;
mod encoder;
mod error;
mod h264;
mod opus_enc;
mod scale;
mod select;
mod source;
mod thumbs;
mod timing;
mod tonemap;
mod video;

#[cfg(test)]
mod tests;

pub use encoder::{AudioCodec, VideoCodec, X264Preset};
pub use error::EncodeError;
pub use source::{InputFormat, SourceFile};
pub use timing::segment_start_frame;

/// One rung of the encoding ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    /// Rendition name, e.g. "360p".
    pub name: String,
    /// Output width in pixels (even, 16..=16384).
    pub width: u32,
    /// Output height in pixels (even, 16..=16384).
    pub height: u32,
    /// Target bitrate.
    pub bitrate_kbps: u32,
    /// Its encoder and the encoder's own settings.
    pub codec: VideoCodec,
}

/// A chunk of the presentation to encode: segments `[first_segment, end_segment)` of every rung.
#[derive(Debug, Clone)]
pub struct VideoChunkRequest<'a> {
    /// Local source file.
    pub source: SourceFile<'a>,
    /// Output constant frame rate as num/den. Each output frame shows the latest decoded frame whose
    /// timestamp is at or before the output frame's time.
    pub frame_rate: (u32, u32),
    /// Segment duration in seconds (read at microsecond precision).
    pub segment_duration: f64,
    /// First segment of the chunk.
    pub first_segment: u32,
    /// One past the last segment of the chunk.
    pub end_segment: u32,
    /// Frames of the whole presentation on the CFR grid (the last segment may be short).
    pub total_frames: u64,
    /// Renditions to encode (sizes as displayed, i.e. after rotation).
    pub rungs: &'a [Rung],
    /// Clockwise rotation (0, 90, 180, 270) applied to every decoded frame, from the container's display matrix.
    pub rotation: u32,
    /// Threads for decoding and for each rung's encoder.
    pub threads: usize,
}

/// One rung's encoded chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionChunk {
    /// The rung's name.
    pub rung: String,
    /// Track configuration (track id 1, AV1, timescale with integer frame durations).
    pub track: vod_cmaf::TrackConfig,
    /// Segments in order.
    pub segments: Vec<SegmentSamples>,
}

/// The samples of one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentSamples {
    /// Segment number in the presentation (0-based).
    pub number: u32,
    /// Decode time of the first sample, in the track's timescale.
    pub base_media_decode_time: u64,
    /// Samples in decode order; for video the first one is a key frame.
    pub samples: Vec<vod_cmaf::Sample>,
}

/// Decodes from the key frame at or before the chunk's start (seek backward), drops frames before it,
/// encodes every rung.
pub fn encode_video_chunk(req: &VideoChunkRequest) -> Result<Vec<RenditionChunk>, EncodeError> {
    video::encode_video_chunk(req)
}

/// The source's audio to encode.
#[derive(Debug, Clone)]
pub struct AudioRequest<'a> {
    /// Local source file.
    pub source: SourceFile<'a>,
    /// The audio encoders, one track each (the source is decoded once for all).
    pub codecs: &'a [AudioCodec],
    /// Bitrate of each track (Opus: 6..=510, AAC: 8..=512).
    pub bitrate_kbps: u32,
    /// Output channels: 1 or 2 (5.1 and other layouts are downmixed).
    pub channels: u8,
    /// Segment duration in seconds.
    pub segment_duration: f64,
    /// Which audio streams (ordinals among the source's audio streams, in the probe's order): none for the main
    /// one, one, or two mono streams mixed as left and right.
    pub streams: &'a [u32],
    /// The track's language for its `mdhd` (an ISO 639-2/T code; others are written "und").
    pub language: Option<&'a str>,
}

/// One encoded audio track.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioOutput {
    /// The encoder that made it.
    pub codec: AudioCodec,
    /// Track configuration (track id 2, timescale 48000).
    pub track: vod_cmaf::TrackConfig,
    /// Segments of packets (Opus: 20 ms; AAC: 1024 samples).
    pub segments: Vec<SegmentSamples>,
    /// Source audio duration in 48 kHz samples, excluding the encoder's delay (Opus `pre_skip`, AAC priming) and
    /// the final padding.
    pub duration_samples_48k: u64,
}

/// Whole audio tracks, one per codec asked, in that order (audio is cheap; one task per job).
pub fn encode_audio(req: &AudioRequest) -> Result<Vec<AudioOutput>, EncodeError> {
    audio::encode_audio(req)
}

/// A window of the source's audio as mono PCM (for speech recognition).
#[derive(Debug, Clone)]
pub struct PcmRequest<'a> {
    /// Local source file.
    pub source: SourceFile<'a>,
    /// Output sample rate.
    pub sample_rate: u32,
    /// Window [start, end) in seconds of the source's audio timeline.
    pub start_secs: f64,
    pub end_secs: f64,
}

/// Decodes a window of the main audio stream to mono 16-bit PCM (downmixed and resampled by libswresample);
/// shorter than the window at the end of the source. Decoding stops at the window's end.
pub fn decode_speech_pcm(req: &PcmRequest) -> Result<Vec<i16>, EncodeError> {
    audio::decode_pcm(req)
}

/// A sprite sheet of thumbnails: the frame shown at each time, scaled to the tile, laid out row by row.
#[derive(Debug, Clone)]
pub struct ThumbnailRequest<'a> {
    /// Local source file.
    pub source: SourceFile<'a>,
    /// Presentation times in seconds, ascending; at most `columns × rows`.
    pub times: &'a [f64],
    /// Tile size as displayed (even).
    pub tile: (u32, u32),
    pub columns: u32,
    pub rows: u32,
    /// Clockwise rotation of the source's display matrix (0, 90, 180, 270).
    pub rotation: u32,
    pub threads: usize,
}

/// The sheet as one JPEG (`columns × tile width` by `rows × tile height`; cells past the times are black).
pub fn sprite_sheet(req: &ThumbnailRequest) -> Result<Vec<u8>, EncodeError> {
    thumbs::sprite_sheet(req)
}

/// The frame shown at `time` seconds as a JPEG of `size` (even, as displayed).
pub fn poster(source: SourceFile, time: f64, size: (u32, u32), rotation: u32) -> Result<Vec<u8>, EncodeError> {
    thumbs::poster(source, time, size, rotation)
}
