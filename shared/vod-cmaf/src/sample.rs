//! Samples: validation, AV1 temporal-delimiter removal and conversion to per-sample table rows.

use std::borrow::Cow;

use crate::{CodecConfig, MuxError, Sample};

/// `sample_flags` of a sync sample: sample_depends_on = 2 (depends on no other sample).
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: sample_depends_on = 1, sample_is_non_sync_sample = 1.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// What a sample table or a `trun` records about one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRow {
    pub size: u32,
    pub duration: u32,
    pub is_sync: bool,
    pub composition_offset: i32,
}

impl SampleRow {
    /// The ISOBMFF `sample_flags` value of this sample.
    pub fn flags(&self) -> u32 {
        if self.is_sync {
            SYNC_SAMPLE_FLAGS
        } else {
            NON_SYNC_SAMPLE_FLAGS
        }
    }
}

/// A sample ready to be written: its payload (possibly rewritten) and its row.
#[derive(Debug, Clone)]
pub struct PreparedSample<'a> {
    pub data: Cow<'a, [u8]>,
    pub row: SampleRow,
}

/// Total duration of `samples`, in the track's timescale.
pub fn total_duration(samples: &[Sample]) -> u64 {
    samples.iter().map(|s| u64::from(s.duration)).sum()
}

/// Removes temporal delimiter OBUs from an AV1 temporal unit (see [`crate::av1::strip_temporal_delimiters`]).
pub fn strip_av1_temporal_delimiters(data: &[u8]) -> Cow<'_, [u8]> {
    crate::av1::strip_temporal_delimiters(data)
}

/// Checks `samples` and turns them into payloads and rows. With `require_sync_start`, the first sample must be a
/// sync sample (CMAF fragments start with a SAP).
pub fn prepare<'a>(
    codec: &CodecConfig,
    samples: &'a [Sample],
    require_sync_start: bool,
) -> Result<Vec<PreparedSample<'a>>, MuxError> {
    if samples.is_empty() {
        return Err(MuxError::Empty("no samples"));
    }
    if require_sync_start && !samples[0].is_sync {
        return Err(MuxError::InvalidSample {
            index: 0,
            reason: "a segment must start with a sync sample".into(),
        });
    }
    samples
        .iter()
        .enumerate()
        .map(|(index, sample)| {
            let data = match codec {
                CodecConfig::Av1 { .. } => strip_av1_temporal_delimiters(&sample.data),
                CodecConfig::H264 { .. } => {
                    crate::avc::length_prefixed_units(&sample.data).map_err(|e| MuxError::InvalidSample {
                        index,
                        reason: e.to_string(),
                    })?;
                    Cow::Borrowed(sample.data.as_slice())
                }
                CodecConfig::Aac { .. } | CodecConfig::Opus { .. } => Cow::Borrowed(sample.data.as_slice()),
            };
            if data.is_empty() {
                return Err(MuxError::InvalidSample {
                    index,
                    reason: "empty sample data".into(),
                });
            }
            let size = u32::try_from(data.len()).map_err(|_| MuxError::Overflow("sample size"))?;
            Ok(PreparedSample {
                data,
                row: SampleRow {
                    size,
                    duration: sample.duration,
                    is_sync: sample.is_sync,
                    composition_offset: sample.composition_offset,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_temporal_delimiters_only() {
        // TD (type 2, has_size, size 0), then a frame OBU (type 6) with 3 bytes, then padding without size field.
        let data = [0x12, 0x00, 0x32, 0x03, 1, 2, 3, 0x78, 9, 9];
        assert_eq!(
            &*strip_av1_temporal_delimiters(&data),
            &[0x32, 0x03, 1, 2, 3, 0x78, 9, 9]
        );
        // Nothing to strip: borrowed.
        let frame = [0x32, 0x01, 7];
        assert!(matches!(strip_av1_temporal_delimiters(&frame), Cow::Borrowed(_)));
    }

    #[test]
    fn malformed_obus_are_left_alone() {
        for data in [&[0x12, 0x05, 1][..], &[0x12][..], &[0x12, 0x80, 0x80][..], &[0x16][..]] {
            assert_eq!(&*strip_av1_temporal_delimiters(data), data);
        }
    }

    #[test]
    fn prepare_checks() {
        let opus = CodecConfig::Opus {
            channels: 1,
            pre_skip: 0,
            input_sample_rate: 48000,
        };
        let s = |data: Vec<u8>, is_sync| Sample {
            data,
            duration: 960,
            is_sync,
            composition_offset: 0,
        };
        assert!(matches!(prepare(&opus, &[], false), Err(MuxError::Empty(_))));
        assert!(matches!(
            prepare(&opus, &[s(vec![1], false)], true),
            Err(MuxError::InvalidSample { index: 0, .. })
        ));
        assert!(matches!(
            prepare(&opus, &[s(vec![1], true), s(vec![], true)], true),
            Err(MuxError::InvalidSample { index: 1, .. })
        ));
        let samples = [s(vec![1, 2], true), s(vec![3], false)];
        let rows = prepare(&opus, &samples, true).unwrap();
        assert_eq!(rows[0].row.flags(), SYNC_SAMPLE_FLAGS);
        assert_eq!(rows[1].row.flags(), NON_SYNC_SAMPLE_FLAGS);
        assert_eq!(rows[0].row.size, 2);
        // An AV1 sample that is only a temporal delimiter becomes empty.
        let av1 = CodecConfig::Av1 {
            width: 1,
            height: 1,
            av1c: vec![],
            colour: None,
        };
        assert!(prepare(&av1, &[s(vec![0x12, 0x00], true)], false).is_err());
    }
}
