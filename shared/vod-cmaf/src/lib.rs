//! CMAF (ISO/IEC 23000-19) writing of already-encoded AV1 and Opus samples: init segments, media segments,
//! segment indexes (`sidx`) and progressive (faststart) MP4 files.
//!
//! The work is split in stages with one job each:
//! - [`codec`]: validates a [`CodecConfig`] and turns it into a sample entry (`av01`+`av1C`, `Opus`+`dOps`) and
//!   an RFC 6381 codec string;
//! - [`sample`]: checks samples and turns them into sample-table / `trun` rows;
//! - [`track`]: builds the `trak` box of one track around a sample table;
//! - [`init`], [`fragment`], [`index`], [`progressive`]: lay out the boxes of each kind of output;
//! - [`spooled`]: the progressive head streamed from spooled sample tables, in memory independent of their length.
//!
//! Every public function validates its input and returns a [`MuxError`] instead of panicking.

pub mod av1;
pub mod avc;
pub mod codec;
pub mod error;
pub mod fragment;
pub mod index;
pub mod init;
pub mod progressive;
pub mod sample;
pub mod spooled;
pub mod track;
pub mod types;

mod boxes;
mod hdr;

pub use codec::codec_string;
pub use error::MuxError;
pub use fragment::{key_frame_fragment, media_segment, media_segment_with_key};
pub use index::{segment_index, SegmentIndexEntry};
pub use init::init_segment;
pub use progressive::{progressive_layout, progressive_mp4, PlacedRun, ProgressiveLayout, StoredTrack};
pub use types::*;

#[cfg(test)]
mod robustness {
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
    fn bytes(seed: &mut u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                *seed as u8
            })
            .collect()
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..2000 {
            let mut av1c = bytes(&mut seed, i % 24);
            if i % 2 == 0 && !av1c.is_empty() {
                av1c[0] = 0x81;
            }
            let track = TrackConfig {
                track_id: (i % 3) as u32,
                timescale: (i % 5) as u32 * 1000,
                codec: CodecConfig::Av1 {
                    width: (i % 7) as u16,
                    height: 16,
                    av1c,
                    colour: None,
                },
                language: "und".into(),
            };
            let samples: Vec<Sample> = (0..i % 4)
                .map(|j| Sample {
                    data: bytes(&mut seed, (i + j) % 40),
                    duration: (i * j) as u32,
                    is_sync: (i + j) % 3 != 0,
                    composition_offset: (i as i32 - 1000) * j as i32,
                })
                .collect();
            let _ = codec_string(&track.codec);
            let _ = init_segment(&track);
            let _ = media_segment(&track, (i % 2) as u32, u64::MAX - i as u64, &samples);
            let _ = progressive_mp4(&[(track.clone(), samples.clone())]);
            let _ = sample::strip_av1_temporal_delimiters(&bytes(&mut seed, i % 64));
        }
    }
}
