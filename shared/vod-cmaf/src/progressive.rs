//! Progressive MP4: one non-fragmented file with `moov` before `mdat` (faststart), tracks interleaved in chunks:
//! either built whole in memory from samples (`progressive_mp4`, ~1 s chunks), or laid out over samples stored
//! elsewhere in runs, such as the CMAF segments of a rendition (`progressive_layout`): then only the head
//! (`ftyp`, `moov`, `mdat` header) is made, and each stored run is one chunk of the file, in time order, so that a
//! server can answer any byte range of the file from the runs themselves.

use std::cmp::Ordering;

use mp4_atom::{
    Co64, Ctts, CttsEntry, Ftyp, Moov, Stbl, Stco, Stsc, StscEntry, Stss, Stsz, StszSamples, Stts, SttsEntry,
};

use crate::{
    boxes::{encode, fourcc, mdat_header, mdat_header_len},
    codec, init,
    sample::{self, PreparedSample, SampleRow},
    track::{self, TrackDurations},
    CodecConfig, MuxError, Sample, TrackConfig,
};

/// Movie timescale of progressive files (`mvhd`, `tkhd` durations).
pub(crate) const MOVIE_TIMESCALE: u32 = 1000;

/// A run of consecutive samples of one track stored together.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    track: usize,
    /// Index of the chunk within its track.
    run: usize,
    first_sample: usize,
    sample_count: usize,
    /// Decode time of the first sample, in the track's timescale.
    start: u64,
    /// Bytes of all its samples.
    size: u64,
}

/// Stage 1: cuts each track's samples into chunks of about one second.
fn chunk_track(track: usize, timescale: u32, rows: &[SampleRow]) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut time = 0u64;
    let mut current: Option<(Chunk, u64)> = None; // (chunk, accumulated duration)
    for (i, row) in rows.iter().enumerate() {
        let (chunk, acc) = current.get_or_insert((
            Chunk {
                track,
                run: chunks.len(),
                first_sample: i,
                sample_count: 0,
                start: time,
                size: 0,
            },
            0,
        ));
        chunk.sample_count += 1;
        chunk.size += u64::from(row.size);
        *acc += u64::from(row.duration);
        time += u64::from(row.duration);
        if *acc >= u64::from(timescale) {
            chunks.push(chunk.to_owned());
            current = None;
        }
    }
    if let Some((chunk, _)) = current {
        chunks.push(chunk);
    }
    chunks
}

/// Stage 2: orders all chunks by start time (in seconds), ties broken by track order.
fn interleave(mut chunks: Vec<Chunk>, timescales: &[u32]) -> Vec<Chunk> {
    chunks.sort_by(|a, b| {
        let (ta, tb) = (u128::from(timescales[a.track]), u128::from(timescales[b.track]));
        match (u128::from(a.start) * tb).cmp(&(u128::from(b.start) * ta)) {
            Ordering::Equal => a.track.cmp(&b.track),
            other => other,
        }
    });
    chunks
}

/// Run-length encodes `values` into (count, value) pairs.
fn runs<T: PartialEq + Copy>(values: impl IntoIterator<Item = T>) -> Vec<(u32, T)> {
    let mut out: Vec<(u32, T)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((count, last)) if *last == v && *count < u32::MAX => *count += 1,
            _ => out.push((1, v)),
        }
    }
    out
}

/// Stage 3: the sample table of one track, given its chunks' absolute file offsets.
fn sample_table(
    track: &TrackConfig,
    rows: &[SampleRow],
    chunks: &[(Chunk, u64)],
    use_co64: bool,
) -> Result<Stbl, MuxError> {
    let stts = Stts {
        entries: runs(rows.iter().map(|r| r.duration))
            .into_iter()
            .map(|(sample_count, sample_delta)| SttsEntry {
                sample_count,
                sample_delta,
            })
            .collect(),
    };
    let ctts = rows.iter().any(|r| r.composition_offset != 0).then(|| Ctts {
        entries: runs(rows.iter().map(|r| r.composition_offset))
            .into_iter()
            .map(|(sample_count, offset)| CttsEntry {
                sample_count,
                sample_offset: i64::from(offset),
            })
            .collect(),
    });
    let stss = track.codec.is_video().then(|| Stss {
        entries: rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_sync)
            .filter_map(|(i, _)| u32::try_from(i + 1).ok())
            .collect(),
    });
    let mut stsc = Stsc::default();
    for (index, (chunk, _)) in chunks.iter().enumerate() {
        let samples_per_chunk =
            u32::try_from(chunk.sample_count).map_err(|_| MuxError::Overflow("samples per chunk"))?;
        if stsc.entries.last().map(|e| e.samples_per_chunk) != Some(samples_per_chunk) {
            stsc.entries.push(StscEntry {
                first_chunk: u32::try_from(index + 1).map_err(|_| MuxError::Overflow("chunk count"))?,
                samples_per_chunk,
                sample_description_index: 1,
            });
        }
    }
    let (stco, co64) = if use_co64 {
        (
            None,
            Some(Co64 {
                entries: chunks.iter().map(|(_, offset)| *offset).collect(),
            }),
        )
    } else {
        let entries = chunks
            .iter()
            .map(|(_, offset)| u32::try_from(*offset).map_err(|_| MuxError::Overflow("stco chunk offset")))
            .collect::<Result<Vec<_>, _>>()?;
        (Some(Stco { entries }), None)
    };
    Ok(Stbl {
        stsd: track::stsd(track)?,
        stts,
        ctts,
        stss,
        stsc,
        stsz: Stsz {
            samples: StszSamples::Different {
                sizes: rows.iter().map(|r| r.size).collect(),
            },
        },
        stco,
        co64,
        ..Default::default()
    })
}

/// Converts a duration from `timescale` to the movie timescale, rounding up.
pub(crate) fn to_movie_time(duration: u64, timescale: u32) -> Result<u64, MuxError> {
    let scaled = (u128::from(duration) * u128::from(MOVIE_TIMESCALE)).div_ceil(u128::from(timescale));
    u64::try_from(scaled).map_err(|_| MuxError::Overflow("movie duration"))
}

/// Stage 4: the `moov` for chunk payloads laid out from `mdat_payload_start` on.
fn moov(
    tracks: &[&TrackConfig],
    rows: &[&[SampleRow]],
    order: &[Chunk],
    mdat_payload_start: u64,
    use_co64: bool,
) -> Result<Moov, MuxError> {
    let mut per_track: Vec<Vec<(Chunk, u64)>> = vec![Vec::new(); tracks.len()];
    let mut offset = mdat_payload_start;
    for chunk in order {
        per_track[chunk.track].push((*chunk, offset));
        offset = offset.checked_add(chunk.size).ok_or(MuxError::Overflow("file size"))?;
    }
    let mut traks = Vec::with_capacity(tracks.len());
    let mut movie_duration = 0u64;
    for (i, config) in tracks.iter().enumerate() {
        let media: u64 = rows[i].iter().map(|r| u64::from(r.duration)).sum();
        let movie = to_movie_time(media.saturating_sub(config.codec.priming().into()), config.timescale)?;
        movie_duration = movie_duration.max(movie);
        let stbl = sample_table(config, rows[i], &per_track[i], use_co64)?;
        traks.push(track::trak(config, TrackDurations { media, movie }, stbl));
    }
    let next_track_id = tracks.iter().map(|t| t.track_id).max().unwrap_or(0).saturating_add(1);
    Ok(Moov {
        mvhd: init::mvhd(MOVIE_TIMESCALE, movie_duration, next_track_id),
        trak: traks,
        ..Default::default()
    })
}

/// `isom`/`iso6`/`mp41` plus the brands of the codecs present.
pub(crate) fn progressive_brands(tracks: &[&TrackConfig]) -> Vec<mp4_atom::FourCC> {
    let mut brands = vec![fourcc(b"isom"), fourcc(b"iso6"), fourcc(b"mp41")];
    if tracks.iter().any(|c| matches!(c.codec, CodecConfig::Av1 { .. })) {
        brands.push(fourcc(b"av01"));
    }
    if tracks.iter().any(|c| matches!(c.codec, CodecConfig::H264 { .. })) {
        brands.push(fourcc(b"avc1"));
    }
    if tracks.iter().any(|c| matches!(c.codec, CodecConfig::Opus { .. })) {
        brands.push(fourcc(b"Opus"));
    }
    brands
}

/// Checks the tracks' configurations (valid, distinct track ids).
pub(crate) fn validate(tracks: &[&TrackConfig]) -> Result<(), MuxError> {
    if tracks.is_empty() {
        return Err(MuxError::Empty("no tracks"));
    }
    let mut ids = Vec::with_capacity(tracks.len());
    for config in tracks {
        codec::validate_track(config)?;
        if ids.contains(&config.track_id) {
            return Err(MuxError::InvalidConfig(format!(
                "duplicate track_id {}",
                config.track_id
            )));
        }
        ids.push(config.track_id);
    }
    Ok(())
}

/// Stage 5: `ftyp`, `moov` and the `mdat` header for chunks in file order (`order`), and the payload's length.
fn head(tracks: &[&TrackConfig], rows: &[&[SampleRow]], order: &[Chunk]) -> Result<(Vec<u8>, u64), MuxError> {
    let payload_len = order
        .iter()
        .try_fold(0u64, |acc, c| acc.checked_add(c.size))
        .ok_or(MuxError::Overflow("mdat size"))?;
    let ftyp = encode(&Ftyp {
        major_brand: fourcc(b"isom"),
        minor_version: 0x200,
        compatible_brands: progressive_brands(tracks),
    })?;
    // The moov's size does not depend on the offsets' values, only on stco vs co64: measure, then write.
    let mdat_head = mdat_header_len(payload_len);
    let last_chunk_size = order.last().map_or(0, |c| c.size);
    let mut use_co64 = false;
    let moov_bytes = loop {
        let probe = crate::hdr::add_hdr_boxes(encode(&moov(tracks, rows, order, 0, use_co64)?)?, tracks)?.len() as u64;
        let start = ftyp.len() as u64 + probe + mdat_head;
        let last_chunk_offset = start
            .checked_add(payload_len - last_chunk_size)
            .ok_or(MuxError::Overflow("chunk offset"))?;
        if !use_co64 && last_chunk_offset > u64::from(u32::MAX) {
            use_co64 = true;
            continue;
        }
        let bytes = crate::hdr::add_hdr_boxes(encode(&moov(tracks, rows, order, start, use_co64)?)?, tracks)?;
        if bytes.len() as u64 != probe {
            return Err(MuxError::Overflow("moov size changed between passes"));
        }
        break bytes;
    };
    let mut out = Vec::with_capacity(ftyp.len() + moov_bytes.len() + 16);
    out.extend(ftyp);
    out.extend(moov_bytes);
    out.extend(mdat_header(payload_len)?);
    Ok((out, payload_len))
}

/// Non-fragmented MP4 with moov before mdat (faststart): full sample tables (stts, stss for video, ctts if needed,
/// stsz, stsc, stco or co64), one trak per `(config, samples)`, samples interleaved in ~1 s chunks per track.
pub fn progressive_mp4(tracks: &[(TrackConfig, Vec<Sample>)]) -> Result<Vec<u8>, MuxError> {
    let configs: Vec<&TrackConfig> = tracks.iter().map(|(c, _)| c).collect();
    validate(&configs)?;
    let prepared: Vec<Vec<PreparedSample<'_>>> = tracks
        .iter()
        .map(|(config, samples)| sample::prepare(&config.codec, samples, false))
        .collect::<Result<_, _>>()?;
    let rows: Vec<Vec<SampleRow>> = prepared.iter().map(|p| p.iter().map(|s| s.row).collect()).collect();

    let timescales: Vec<u32> = configs.iter().map(|c| c.timescale).collect();
    let chunks = rows
        .iter()
        .enumerate()
        .flat_map(|(i, r)| chunk_track(i, timescales[i], r))
        .collect();
    let order = interleave(chunks, &timescales);
    let slices: Vec<&[SampleRow]> = rows.iter().map(Vec::as_slice).collect();
    let (head, payload_len) = head(&configs, &slices, &order)?;
    let total = usize::try_from(payload_len)
        .ok()
        .and_then(|p| p.checked_add(head.len()))
        .ok_or(MuxError::Overflow("file size"))?;
    let mut out = Vec::with_capacity(total);
    out.extend(head);
    for chunk in &order {
        for s in &prepared[chunk.track][chunk.first_sample..chunk.first_sample + chunk.sample_count] {
            out.extend_from_slice(&s.data);
        }
    }
    Ok(out)
}

/// A track whose samples are stored elsewhere in runs (for instance one run per CMAF segment): all its rows in
/// decode order, and the number of samples of each run. Each run's samples must be contiguous where they are
/// stored. Borrowed, so that a caller laying out several files over the same track copies nothing.
#[derive(Debug, Clone)]
pub struct StoredTrack<'a> {
    pub config: TrackConfig,
    pub rows: &'a [SampleRow],
    pub runs: &'a [u32],
}

/// Where one stored run sits in the progressive file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlacedRun {
    /// Index of the track in the input.
    pub track: usize,
    /// Index of the run in its track.
    pub run: usize,
    /// Byte offset of the run's first sample in the file.
    pub offset: u64,
    /// Bytes of the run's samples.
    pub size: u64,
}

/// A progressive file laid out over stored runs: its head (`ftyp`, `moov`, `mdat` header) and, in file order, the
/// runs that follow it back to back.
#[derive(Debug, Clone)]
pub struct ProgressiveLayout {
    pub head: Vec<u8>,
    pub runs: Vec<PlacedRun>,
    /// The file's size in bytes.
    pub size: u64,
}

/// Lays out a faststart MP4 whose `mdat` is the tracks' stored runs, one chunk per run, interleaved by time.
/// Only the head is built; the caller serves each run's bytes from where they are stored.
pub fn progressive_layout(tracks: &[StoredTrack<'_>]) -> Result<ProgressiveLayout, MuxError> {
    let configs: Vec<&TrackConfig> = tracks.iter().map(|t| &t.config).collect();
    validate(&configs)?;
    let mut chunks = Vec::new();
    for (i, t) in tracks.iter().enumerate() {
        if t.rows.is_empty() {
            return Err(MuxError::Empty("no samples"));
        }
        let counted: u64 = t.runs.iter().map(|&n| u64::from(n)).sum();
        if counted != t.rows.len() as u64 {
            return Err(MuxError::InvalidConfig(format!(
                "runs of {counted} samples for {} rows",
                t.rows.len()
            )));
        }
        let (mut first, mut time) = (0usize, 0u64);
        for (run, &n) in t.runs.iter().enumerate() {
            if n == 0 {
                return Err(MuxError::Empty("an empty run of samples"));
            }
            let rows = &t.rows[first..first + n as usize];
            chunks.push(Chunk {
                track: i,
                run,
                first_sample: first,
                sample_count: rows.len(),
                start: time,
                size: rows.iter().map(|r| u64::from(r.size)).sum(),
            });
            time += rows.iter().map(|r| u64::from(r.duration)).sum::<u64>();
            first += n as usize;
        }
    }
    let timescales: Vec<u32> = configs.iter().map(|c| c.timescale).collect();
    let order = interleave(chunks, &timescales);
    let rows: Vec<&[SampleRow]> = tracks.iter().map(|t| t.rows).collect();
    let (head, payload_len) = head(&configs, &rows, &order)?;
    let mut offset = head.len() as u64;
    let mut runs = Vec::with_capacity(order.len());
    for c in &order {
        runs.push(PlacedRun {
            track: c.track,
            run: c.run,
            offset,
            size: c.size,
        });
        offset += c.size;
    }
    Ok(ProgressiveLayout {
        size: head.len() as u64 + payload_len,
        head,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Any, Decode};

    fn row(size: u32, duration: u32) -> SampleRow {
        SampleRow {
            size,
            duration,
            is_sync: true,
            composition_offset: 0,
        }
    }

    #[test]
    fn chunks_of_about_one_second() {
        let rows: Vec<_> = (0..60).map(|_| row(10, 40)).collect(); // 25 fps in timescale 1000
        let chunks = chunk_track(0, 1000, &rows);
        assert_eq!(chunks.iter().map(|c| c.sample_count).collect::<Vec<_>>(), [25, 25, 10]);
        assert_eq!(chunks.iter().map(|c| c.start).collect::<Vec<_>>(), [0, 1000, 2000]);
        assert_eq!(chunks[0].size, 250);
    }

    #[test]
    fn interleaving_orders_by_time() {
        let video = chunk_track(0, 90000, &(0..50).map(|_| row(1, 3600)).collect::<Vec<_>>());
        let audio = chunk_track(1, 48000, &(0..100).map(|_| row(1, 960)).collect::<Vec<_>>());
        let order = interleave([video, audio].concat(), &[90000, 48000]);
        let tracks: Vec<_> = order.iter().map(|c| c.track).collect();
        assert_eq!(tracks, [0, 1, 0, 1]);
    }

    #[test]
    fn runs_and_movie_time() {
        assert_eq!(runs([1, 1, 2, 2, 2, 1]), [(2, 1), (3, 2), (1, 1)]);
        assert_eq!(to_movie_time(96000, 48000).unwrap(), 2000);
        assert_eq!(to_movie_time(1, 48000).unwrap(), 1);
        assert!(to_movie_time(u64::MAX, 1).is_err());
    }

    #[test]
    fn progressive_layout() {
        let track = TrackConfig {
            track_id: 1,
            timescale: 1000,
            codec: CodecConfig::Opus {
                channels: 1,
                pre_skip: 0,
                input_sample_rate: 48000,
            },
            language: "und".into(),
        };
        let samples: Vec<Sample> = (0..30u8)
            .map(|i| Sample {
                data: vec![i; 3],
                duration: 100,
                is_sync: true,
                composition_offset: 0,
            })
            .collect();
        let bytes = progressive_mp4(&[(track.clone(), samples)]).unwrap();
        let mut buf = bytes.as_slice();
        assert!(matches!(Any::decode(&mut buf).unwrap(), Any::Ftyp(_)));
        let Any::Moov(moov) = Any::decode(&mut buf).unwrap() else {
            panic!("moov second")
        };
        let payload_start = bytes.len() - buf.len() + 8;
        assert_eq!(&buf[4..8], b"mdat");
        assert_eq!(moov.mvhd.duration, 3000);
        let stbl = &moov.trak[0].mdia.minf.stbl;
        let offsets = &stbl.stco.as_ref().unwrap().entries;
        assert_eq!(offsets.len(), 3);
        assert_eq!(offsets[0] as usize, payload_start);
        assert_eq!(bytes[offsets[1] as usize], 10, "second chunk starts with sample 10");
        assert_eq!(stbl.stsc.entries.len(), 1);
        assert_eq!(stbl.stsc.entries[0].samples_per_chunk, 10);
        assert_eq!(
            stbl.stts.entries,
            [SttsEntry {
                sample_count: 30,
                sample_delta: 100
            }]
        );
        assert!(stbl.stss.is_none() && stbl.ctts.is_none());

        let dup = [(track.clone(), vec![]), (track.clone(), vec![])];
        assert!(matches!(progressive_mp4(&dup), Err(MuxError::InvalidConfig(_))));
        assert!(matches!(progressive_mp4(&[]), Err(MuxError::Empty(_))));
        assert!(matches!(progressive_mp4(&[(track, vec![])]), Err(MuxError::Empty(_))));
    }
}
