//! Segment index: per-segment timing and byte sizes, and the `sidx` box that indexes segments stored back to back.

use mp4_atom::{SegmentReference, Sidx};
use serde::{Deserialize, Serialize};

use crate::{boxes::encode, codec, sample, MuxError, Sample, TrackConfig};

/// One media segment of a track: its number, start and duration (in the track's timescale) and its byte size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentIndexEntry {
    pub number: u32,
    /// Decode time of the first sample, in the track's timescale (the segment's `tfdt`).
    pub start: u64,
    /// In the track's timescale.
    pub duration: u64,
    /// Bytes of the whole segment (styp + moof + mdat).
    pub size: u64,
}

impl SegmentIndexEntry {
    /// The entry of a segment written by [`crate::media_segment`] from `samples`, starting at `start`.
    pub fn for_segment(number: u32, start: u64, samples: &[Sample], segment: &[u8]) -> Self {
        Self {
            number,
            start,
            duration: sample::total_duration(samples),
            size: segment.len() as u64,
        }
    }

    /// Start of the following segment.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.duration)
    }
}

/// A `sidx` box indexing `entries`, for segments stored back to back directly after it (`first_offset` 0), each
/// starting with a sync sample (SAP type 1). The earliest presentation time is the first segment's start (no
/// composition offset on the first sample, as with AV1 without reordering and Opus).
pub fn segment_index(track: &TrackConfig, entries: &[SegmentIndexEntry]) -> Result<Vec<u8>, MuxError> {
    codec::validate_track(track)?;
    let first = entries.first().ok_or(MuxError::Empty("no segments to index"))?;
    if entries.len() > usize::from(u16::MAX) {
        return Err(MuxError::Overflow("sidx reference_count"));
    }
    for pair in entries.windows(2) {
        if pair[1].start != pair[0].end() {
            return Err(MuxError::InvalidConfig(format!(
                "segment {} starts at {} but segment {} ends at {}",
                pair[1].number,
                pair[1].start,
                pair[0].number,
                pair[0].end()
            )));
        }
    }
    let references = entries
        .iter()
        .map(|e| {
            Ok(SegmentReference {
                reference_type: false,
                referenced_size: u32::try_from(e.size)
                    .ok()
                    .filter(|s| *s <= 0x7FFF_FFFF)
                    .ok_or(MuxError::Overflow("sidx referenced_size"))?,
                subsegment_duration: u32::try_from(e.duration)
                    .map_err(|_| MuxError::Overflow("sidx subsegment_duration"))?,
                starts_with_sap: true,
                sap_type: 1,
                sap_delta_time: 0,
            })
        })
        .collect::<Result<Vec<_>, MuxError>>()?;
    encode(&Sidx {
        reference_id: track.track_id,
        timescale: track.timescale,
        earliest_presentation_time: first.start,
        first_offset: 0,
        references,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CodecConfig;
    use mp4_atom::{Any, Decode};

    fn track() -> TrackConfig {
        TrackConfig {
            track_id: 3,
            timescale: 48000,
            codec: CodecConfig::Opus {
                channels: 2,
                pre_skip: 312,
                input_sample_rate: 48000,
            },
            language: "und".into(),
        }
    }

    #[test]
    fn sidx_references_segments() {
        let entries = [
            SegmentIndexEntry {
                number: 1,
                start: 0,
                duration: 96000,
                size: 1000,
            },
            SegmentIndexEntry {
                number: 2,
                start: 96000,
                duration: 48000,
                size: 600,
            },
        ];
        let bytes = segment_index(&track(), &entries).unwrap();
        let Any::Sidx(sidx) = Any::decode(&mut bytes.as_slice()).unwrap() else {
            panic!("sidx")
        };
        assert_eq!(sidx.reference_id, 3);
        assert_eq!(sidx.timescale, 48000);
        assert_eq!(sidx.references.len(), 2);
        assert_eq!(sidx.references[1].referenced_size, 600);
        assert_eq!(sidx.references[1].subsegment_duration, 48000);
        assert!(sidx.references.iter().all(|r| r.starts_with_sap && r.sap_type == 1));
        let json = serde_json::to_string(&entries[0]).unwrap();
        assert_eq!(serde_json::from_str::<SegmentIndexEntry>(&json).unwrap(), entries[0]);
    }

    #[test]
    fn bad_indexes_are_errors() {
        assert!(matches!(segment_index(&track(), &[]), Err(MuxError::Empty(_))));
        let gap = [
            SegmentIndexEntry {
                number: 1,
                start: 0,
                duration: 10,
                size: 1,
            },
            SegmentIndexEntry {
                number: 2,
                start: 11,
                duration: 10,
                size: 1,
            },
        ];
        assert!(matches!(segment_index(&track(), &gap), Err(MuxError::InvalidConfig(_))));
        let huge = [SegmentIndexEntry {
            number: 1,
            start: 0,
            duration: 10,
            size: 1 << 31,
        }];
        assert!(matches!(segment_index(&track(), &huge), Err(MuxError::Overflow(_))));
    }
}
