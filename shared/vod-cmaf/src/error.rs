//! The error type of every muxing function.

/// Why a track, a segment or a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// The track configuration is unusable (zero track id or timescale, malformed `av1C`, unsupported channel
    /// count, bad language code...).
    #[error("invalid track configuration: {0}")]
    InvalidConfig(String),
    /// One sample is unusable (empty data, a segment not starting with a sync sample...).
    #[error("invalid sample {index}: {reason}")]
    InvalidSample { index: usize, reason: String },
    /// Nothing to write: no samples, or no tracks.
    #[error("nothing to write: {0}")]
    Empty(&'static str),
    /// A size, duration or offset does not fit the field that must carry it.
    #[error("value too large for {0}")]
    Overflow(&'static str),
    /// The box encoder refused a box.
    #[error("box encoding failed: {0}")]
    Encode(#[from] mp4_atom::Error),
    /// Reading spooled tables or writing the output failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
