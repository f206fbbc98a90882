//! The crate's error type: every failure (unreadable input, missing streams, codec errors, bad requests)
//! is reported as an [`EncodeError`]; nothing in this crate panics on bad media.

/// Why encoding a chunk or an audio track failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The source could not be opened or its container could not be parsed.
    #[error("cannot open source: {0}")]
    Open(String),
    /// The source is not what the probe accepted (another codec than the probed one): never retried, a whole copy
    /// of the source would say the same.
    #[error("the source is not what its probe accepted: {0}")]
    NotAccepted(String),
    /// The source has no video stream.
    #[error("source has no video stream")]
    NoVideo,
    /// The source has no audio stream.
    #[error("source has no audio stream")]
    NoAudio,
    /// The source's codec (or pixel/sample format) has no decoder here.
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(String),
    /// The stream could not be decoded (corrupt or truncated data).
    #[error("decode failed: {0}")]
    Decode(String),
    /// The encoder (rav1e, libopus) or scaler/resampler failed.
    #[error("encode failed: {0}")]
    Encode(String),
    /// The request itself is inconsistent (bad frame rate, empty segment range, bad rung...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Reading the source failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
