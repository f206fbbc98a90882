//! Fuzz harness of the media probe (`vod_media::probe_within` over an in-memory source): any bytes give a
//! `MediaInfo` or a `ProbeError`, never a panic, and an accepted file is consistent. Shared by `fuzz_targets/probe.rs`
//! and vod-media's `tests/fuzz_corpus.rs`; the time and memory limits are libFuzzer's (`fuzz/run.sh`).

use std::time::Duration;

/// The probe's own wall-clock budget here (production: 20 s); libFuzzer's `-timeout` is above it.
pub const BUDGET: Duration = Duration::from_secs(3);

pub fn run(data: &[u8]) {
    let src = data.to_vec();
    match vod_media::probe_within(&src, BUDGET) {
        Ok(info) => {
            assert_eq!(info.size, data.len() as u64, "size");
            assert!(
                !info.video.is_empty() || !info.audio.is_empty(),
                "accepted without streams"
            );
            for v in &info.video {
                assert!(
                    v.key_frames_ms.len() <= vod_media::MAX_KEY_FRAMES,
                    "key frames unbounded"
                );
                assert!(v.key_frames_ms.windows(2).all(|w| w[0] < w[1]), "key frames not sorted");
            }
        }
        Err(e) => {
            // Every refusal renders (the ingest stores the message).
            let _ = e.to_string();
        }
    }
}
