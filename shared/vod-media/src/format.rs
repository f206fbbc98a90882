//! The container seam: each container format is one module with a type implementing [`ContainerFormat`] — it
//! recognises its signature, probes the stream layout and plans the byte ranges a task needs — and [`FORMATS`]
//! registers it. Adding a container: its module, its line in [`FORMATS`], and its name(s) in [`Container`].
use crate::mp4::Need;
use crate::probe::{Container, MediaInfo, ProbeError};
use crate::source::ReadAt;

/// One container format.
pub trait ContainerFormat: Sync {
    /// The containers it reports (MP4 and MOV share one reader).
    fn containers(&self) -> &'static [Container];
    /// Whether the first bytes of a file (up to [`HEAD_LEN`]) carry its signature.
    fn detect(&self, head: &[u8]) -> bool;
    /// Whether bytes too few to decide could be the start of its signature (then the file is truncated, not
    /// foreign).
    fn could_be(&self, head: &[u8]) -> bool;
    /// The stream layout of a file it detected.
    fn probe(&self, src: &dyn ReadAt) -> Result<MediaInfo, ProbeError>;
    /// The byte ranges a task decoding `need` reads, where the container indexes them; `None`: the whole file.
    fn needed_ranges(&self, _src: &dyn ReadAt, _need: Need) -> Result<Option<Vec<(u64, u64)>>, ProbeError> {
        Ok(None)
    }
}

/// How many bytes of a file's start detection sees (an MPEG-TS signature is two packets' sync bytes; an MP3 may
/// start with an ID3 tag).
pub const HEAD_LEN: usize = 4096;

/// The registry, in detection order.
pub static FORMATS: &[&dyn ContainerFormat] = &[
    &crate::matroska::MatroskaFormat,
    &crate::yuv4mpeg::Y4mFormat,
    &crate::wav::WavFormat,
    &crate::mp4::Mp4Format,
];

/// The format whose signature starts `head`.
pub fn detect(head: &[u8]) -> Option<&'static dyn ContainerFormat> {
    FORMATS.iter().copied().find(|f| f.detect(head))
}

/// The format that reads files probed as `container`.
pub fn format_of(container: Container) -> Option<&'static dyn ContainerFormat> {
    FORMATS.iter().copied().find(|f| f.containers().contains(&container))
}

/// Whether `head[..n]` equals `magic[..n]` for the bytes both have.
pub(crate) fn starts_like(head: &[u8], magic: &[u8]) -> bool {
    let n = head.len().min(magic.len());
    head[..n] == magic[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_has_one_format() {
        for c in [
            Container::Mp4,
            Container::Mov,
            Container::Matroska,
            Container::Webm,
            Container::Y4m,
            Container::Wav,
        ] {
            let f = format_of(c).expect("registered");
            assert_eq!(FORMATS.iter().filter(|g| g.containers().contains(&c)).count(), 1);
            assert!(f.containers().contains(&c));
        }
    }
}
