//! Fuzz harness of the range planners: the encoder tasks' byte-range plans of an MP4/MOV and a Matroska/WebM source
//! (`vod_media::{mp4,matroska}_needed_ranges`), the HTTP Range header (`vod_package::range::parse_range`) and the
//! progressive-download map (`vod_package::progressive::ProgressiveMap`). No panic, and every plan keeps its promise:
//! ranges sorted, non-empty, disjoint and within the file; a Range answer within the object; the pieces of a
//! progressive range exactly as long as the range. The first byte picks the planner. Shared by
//! `fuzz_targets/ranges.rs` and vod-package's `tests/fuzz_corpus.rs`.

use vod_domain::{ProgressiveFile, ProgressiveRun};
use vod_media::{matroska_needed_ranges, mp4_needed_ranges, Need};
use vod_package::progressive::ProgressiveMap;
use vod_package::range::{parse_range, RangeOutcome};

pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => media(rest),
        1 => http_range(rest),
        _ => progressive(rest),
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// 8 bytes of chunk times (milliseconds), then the file.
fn media(rest: &[u8]) {
    if rest.len() < 8 {
        return;
    }
    let start_secs = f64::from(be32(rest, 0)) / 1000.0;
    let end_secs = start_secs + f64::from(be32(rest, 4)) / 1000.0;
    let file = rest[8..].to_vec();
    let size = file.len() as u64;
    for need in [Need::Video { start_secs, end_secs }, Need::Audio] {
        for (name, plan) in [
            ("mp4", mp4_needed_ranges(&file, need)),
            ("matroska", matroska_needed_ranges(&file, need)),
        ] {
            if let Ok(Some(ranges)) = plan {
                for (a, z) in &ranges {
                    assert!(
                        a < z && *z <= size,
                        "{name}: range {a}..{z} outside a file of {size} bytes"
                    );
                }
                for w in ranges.windows(2) {
                    assert!(w[0].1 < w[1].0, "{name}: ranges {:?} not sorted and disjoint", w);
                }
            }
        }
    }
}

/// 8 bytes of object size, then the header text.
fn http_range(rest: &[u8]) {
    if rest.len() < 8 {
        return;
    }
    let size = u64::from_be_bytes(rest[..8].try_into().unwrap_or_default()) >> (rest[0] % 64);
    let header = String::from_utf8_lossy(&rest[8..]);
    match parse_range(Some(&header), size) {
        RangeOutcome::Partial { start, end } => {
            assert!(start <= end && end < size, "{header:?} on {size} bytes: {start}-{end}")
        }
        RangeOutcome::Full | RangeOutcome::Unsatisfiable => {}
    }
}

/// JSON: `{"file": ProgressiveFile, "head_len": n, "start": n, "end": n, "pages": [[ProgressiveRun...]...]}`.
fn progressive(rest: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let Ok(file) = serde_json::from_value::<ProgressiveFile>(v["file"].clone()) else {
        return;
    };
    let Ok(map) = ProgressiveMap::new(file, v["head_len"].as_u64().unwrap_or(0)) else {
        return;
    };
    let size = map.size();
    if size == 0 {
        return;
    }
    let (a, b) = (
        v["start"].as_u64().unwrap_or(0) % size,
        v["end"].as_u64().unwrap_or(0) % size,
    );
    let (start, end) = (a.min(b), a.max(b));
    let pages = map.pages_for(start, end);
    let mut loaded: Vec<Vec<ProgressiveRun>> = Vec::new();
    for (n, i) in pages.clone().enumerate() {
        let runs = match map.held(i) {
            Some(runs) => runs.to_vec(),
            None => {
                let _ = map.page(i);
                let bytes = serde_json::to_vec(&v["pages"][n]).unwrap_or_default();
                match map.parse_page(i, &bytes) {
                    Ok(runs) => runs,
                    Err(_) => return,
                }
            }
        };
        loaded.push(runs);
    }
    let refs: Vec<&[ProgressiveRun]> = loaded.iter().map(Vec::as_slice).collect();
    let pieces = map.pieces(pages.start, &refs, start, end);
    let total = pieces.iter().try_fold(0u64, |acc, p| acc.checked_add(p.len));
    assert_eq!(total, Some(end - start + 1), "pieces of {start}..={end}: {pieces:?}");
}
