//! Dynamic packaging, as pure stages over the stored CMAF renditions: `url` parses the streaming URL grammar
//! (AMS's `/{locator}/{name}.ism/manifest(format=…)` and friendly aliases), `timeline` selects the segments of a
//! presentation, `hls` and `dash` write manifests, `drm` signals each DRM system, `encrypt` protects segments, `range` reads
//! HTTP Range headers. No I/O here: the packager
//! function fetches locators, indexes and segments and feeds these stages.
mod av1;
pub mod dash;
pub mod drm;
pub mod encrypt;
pub mod hls;
pub mod progressive;
pub mod range;
pub mod thumbnails;
pub mod timeline;
pub mod url;

pub use timeline::{Presentation, TrackTimeline};
pub use url::{Format, Resource, StreamRequest, UrlError};
/// The I-frame stage: a segment's key frame as a segment of its own (encrypted I-frame playlist entries).
pub use vod_cmaf::key_frame_fragment;
