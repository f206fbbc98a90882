//! What the encoding benchmarks share (included by `vod-bench-encode` and `vod-bench-rate`).
use std::path::Path;

use anyhow::{Context, Result};
use vod_cmaf::{init_segment, media_segment};
use vod_encode::RenditionChunk;

/// CPU seconds (user + system) of `who` (`libc::RUSAGE_SELF` or `libc::RUSAGE_CHILDREN`).
pub fn cpu_seconds(who: i32) -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Writes the chunks of one rendition as one fragmented MP4; returns the bytes of its samples.
pub fn write_mp4(chunks: &[RenditionChunk], out: &Path) -> Result<u64> {
    let track = &chunks.first().context("no chunk")?.track;
    let mut bytes = init_segment(track)?;
    let mut payload = 0u64;
    for s in chunks.iter().flat_map(|c| &c.segments) {
        payload += s.samples.iter().map(|x| x.data.len() as u64).sum::<u64>();
        bytes.extend(media_segment(
            track,
            s.number + 1,
            s.base_media_decode_time,
            &s.samples,
        )?);
    }
    std::fs::write(out, bytes)?;
    Ok(payload)
}

/// A benchmark's source file with the format ffprobe finds in it (what the probe would have accepted).
pub fn source_file(path: &Path) -> Result<vod_encode::SourceFile<'_>> {
    let (demuxer, video_codecs, audio_codecs) =
        vod_testkit::input_format_of(path).with_context(|| format!("ffprobe cannot read {}", path.display()))?;
    let format = Box::leak(Box::new(vod_encode::InputFormat {
        demuxer,
        video_codecs,
        audio_codecs,
    }));
    Ok(vod_encode::SourceFile { path, format })
}
