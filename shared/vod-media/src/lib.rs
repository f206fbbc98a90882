//! Probing of uploaded (mezzanine) media files: container, streams, durations.
//!
//! Every parser here reads untrusted input: lengths are checked against the
//! source size, nothing panics on malformed data, and failures are typed
//! [`ProbeError`]s.

pub mod bmff;
pub mod format;
mod matroska;
mod mkv_ranges;
mod mp4;
pub mod probe;
pub mod source;
mod wav;
mod yuv4mpeg;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use format::{detect, format_of, ContainerFormat, FORMATS, HEAD_LEN};
pub use mkv_ranges::matroska_needed_ranges;
pub use mp4::{mp4_needed_ranges, Need};
pub use probe::*;
pub use source::*;
