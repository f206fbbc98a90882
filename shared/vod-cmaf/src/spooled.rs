//! Progressive MP4 head as a stream: the same head and run layout as [`progressive_layout`](crate::progressive_layout),
//! made from sample rows and runs that the caller spooled (to a local file, say) with [`write_row`] and
//! [`write_run`]. The spools are read again once per sample table, so memory stays the same whatever the number
//! of samples: the tables pass through and are never held (a 2-hour title has about half a million rows).
//!
//! Stages: `stats` (one pass: table sizes, validation) → `skeleton` (the `moov` without table entries, encoded by
//! mp4-atom) → `emit` (the skeleton copied with grown container sizes, each table's entries streamed in) → `place`
//! (the runs in file order, merged across tracks by time).

use std::cmp::Ordering;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

use mp4_atom::{Co64, Ctts, Ftyp, Moov, Stbl, Stco, Stsc, Stss, Stsz, StszSamples, Stts};

use crate::boxes::{encode, fourcc, mdat_header, mdat_header_len};
use crate::progressive::{progressive_brands, to_movie_time, validate, PlacedRun, MOVIE_TIMESCALE};
use crate::sample::SampleRow;
use crate::track::{self, TrackDurations};
use crate::{init, MuxError, TrackConfig};

/// Bytes of one spooled row: size, duration, composition offset (little-endian 32-bit each) and the sync flag.
pub const ROW_BYTES: usize = 13;
/// Read buffer of each spool reader.
const READ_BUFFER: usize = 64 << 10;

/// Appends one sample row to a rows spool.
pub fn write_row<W: Write>(w: &mut W, row: &SampleRow) -> io::Result<()> {
    let mut b = [0u8; ROW_BYTES];
    b[0..4].copy_from_slice(&row.size.to_le_bytes());
    b[4..8].copy_from_slice(&row.duration.to_le_bytes());
    b[8..12].copy_from_slice(&row.composition_offset.to_le_bytes());
    b[12] = u8::from(row.is_sync);
    w.write_all(&b)
}

/// Appends the sample count of one run (one stored segment, say) to a runs spool.
pub fn write_run<W: Write>(w: &mut W, samples: u32) -> io::Result<()> {
    w.write_all(&samples.to_le_bytes())
}

/// Reads `N` bytes, or `None` at the end of the spool (a torn record is an error).
fn read_record<const N: usize, R: Read>(r: &mut R) -> Result<Option<[u8; N]>, MuxError> {
    let mut b = [0u8; N];
    let mut got = 0;
    while got < N {
        match r.read(&mut b[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(MuxError::InvalidConfig("a spool ends inside a record".into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(b))
}

fn read_row<R: Read>(r: &mut R) -> Result<Option<SampleRow>, MuxError> {
    Ok(read_record::<ROW_BYTES, _>(r)?.map(|b| SampleRow {
        size: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        duration: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        composition_offset: i32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        is_sync: b[12] != 0,
    }))
}

fn read_run<R: Read>(r: &mut R) -> Result<Option<u32>, MuxError> {
    Ok(read_record::<4, _>(r)?.map(u32::from_le_bytes))
}

/// A buffered reader from the start of a spool.
fn reread<R: Read + Seek>(spool: &mut R) -> Result<BufReader<&mut R>, MuxError> {
    spool.seek(SeekFrom::Start(0))?;
    Ok(BufReader::with_capacity(READ_BUFFER, spool))
}

/// A track whose rows (decode order) and runs (sample count of each stored run) were spooled.
pub struct SpooledTrack<R> {
    pub config: TrackConfig,
    pub rows: R,
    pub runs: R,
}

/// What the head of a spooled layout came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpooledHead {
    /// Bytes of `ftyp`, `moov` and the `mdat` header.
    pub head_len: u64,
    /// The whole file's size.
    pub size: u64,
}

/// Counts a run-length encoding would make, with the same cut as `progressive::runs`.
#[derive(Default)]
struct RunCounter<T> {
    last: Option<(T, u32)>,
    entries: u64,
}

impl<T: PartialEq + Copy> RunCounter<T> {
    fn push(&mut self, v: T) {
        match &mut self.last {
            Some((last, count)) if *last == v && *count < u32::MAX => *count += 1,
            _ => {
                self.last = Some((v, 1));
                self.entries += 1;
            }
        }
    }
}

/// Stage 1: one pass over a track's spools — how many entries each table gets, and the track's totals.
#[derive(Default)]
struct TrackStats {
    samples: u64,
    stts: u64,
    ctts: u64,
    any_cto: bool,
    negative_cto: bool,
    sync: u64,
    chunks: u64,
    stsc: u64,
    payload: u64,
    media: u64,
}

fn stats<R: Read + Seek>(t: &mut SpooledTrack<R>) -> Result<TrackStats, MuxError> {
    let mut s = TrackStats::default();
    let (mut stts, mut ctts, mut stsc) = (RunCounter::default(), RunCounter::default(), RunCounter::default());
    let mut rows = reread(&mut t.rows)?;
    let mut runs = reread(&mut t.runs)?;
    while let Some(n) = read_run(&mut runs)? {
        if n == 0 {
            return Err(MuxError::Empty("an empty run of samples"));
        }
        stsc.push(n);
        s.chunks += 1;
        for _ in 0..n {
            let row = read_row(&mut rows)?
                .ok_or_else(|| MuxError::InvalidConfig("the runs count more samples than the rows".into()))?;
            s.samples += 1;
            stts.push(row.duration);
            ctts.push(row.composition_offset);
            s.any_cto |= row.composition_offset != 0;
            s.negative_cto |= row.composition_offset < 0;
            s.sync += u64::from(row.is_sync);
            s.payload = s
                .payload
                .checked_add(u64::from(row.size))
                .ok_or(MuxError::Overflow("mdat size"))?;
            s.media += u64::from(row.duration);
        }
    }
    if read_row(&mut rows)?.is_some() {
        return Err(MuxError::InvalidConfig("rows beyond the runs' samples".into()));
    }
    if s.samples == 0 {
        return Err(MuxError::Empty("no samples"));
    }
    if s.samples > u64::from(u32::MAX) || s.chunks > u64::from(u32::MAX) {
        return Err(MuxError::Overflow("sample count"));
    }
    (s.stts, s.ctts, s.stsc) = (stts.entries, ctts.entries, stsc.entries);
    Ok(s)
}

impl TrackStats {
    fn has_stss(config: &TrackConfig) -> bool {
        config.codec.is_video()
    }

    /// Bytes the entries add to each table box of this track.
    fn extra(&self, kind: &[u8; 4], use_co64: bool) -> u64 {
        match kind {
            b"stts" => 8 * self.stts,
            b"ctts" => 8 * self.ctts,
            b"stss" => 4 * self.sync,
            b"stsc" => 12 * self.stsc,
            b"stsz" => 4 * self.samples,
            b"stco" if !use_co64 => 4 * self.chunks,
            b"co64" if use_co64 => 8 * self.chunks,
            _ => 0,
        }
    }

    fn total_extra(&self, config: &TrackConfig, use_co64: bool) -> u64 {
        let mut kinds: Vec<&[u8; 4]> = vec![b"stts", b"stsc", b"stsz", b"stco", b"co64"];
        if self.any_cto {
            kinds.push(b"ctts");
        }
        if Self::has_stss(config) {
            kinds.push(b"stss");
        }
        kinds.into_iter().map(|k| self.extra(k, use_co64)).sum()
    }
}

/// Stage 2: the `moov` with every table present but empty (durations and sample entries final).
fn skeleton(tracks: &[&TrackConfig], stats: &[TrackStats], use_co64: bool) -> Result<Vec<u8>, MuxError> {
    let mut traks = Vec::with_capacity(tracks.len());
    let mut movie_duration = 0u64;
    for (config, s) in tracks.iter().zip(stats) {
        let movie = to_movie_time(s.media.saturating_sub(config.codec.priming().into()), config.timescale)?;
        movie_duration = movie_duration.max(movie);
        let stbl = Stbl {
            stsd: track::stsd(config)?,
            stts: Stts::default(),
            ctts: s.any_cto.then(Ctts::default),
            stss: TrackStats::has_stss(config).then(Stss::default),
            stsc: Stsc::default(),
            stsz: Stsz {
                samples: StszSamples::Different { sizes: Vec::new() },
            },
            stco: (!use_co64).then(Stco::default),
            co64: use_co64.then(Co64::default),
            ..Default::default()
        };
        traks.push(track::trak(config, TrackDurations { media: s.media, movie }, stbl));
    }
    let next_track_id = tracks.iter().map(|t| t.track_id).max().unwrap_or(0).saturating_add(1);
    let moov = encode(&Moov {
        mvhd: init::mvhd(MOVIE_TIMESCALE, movie_duration, next_track_id),
        trak: traks,
        ..Default::default()
    })?;
    // The sample entries' HDR boxes (`stsd` is copied as it is by the emitter).
    crate::hdr::add_hdr_boxes(moov, tracks)
}

/// One run of a track, as the merge reads it.
#[derive(Clone, Copy)]
struct Run {
    track: usize,
    /// Index of the run in its track.
    run: usize,
    /// Decode time of its first sample, in the track's timescale.
    start: u64,
    duration: u64,
    size: u64,
}

/// The tracks' runs in file order — by start time, ties by track order — as `progressive_layout` interleaves
/// them, read from the spools as the merge goes.
struct Merge<'a, R> {
    cursors: Vec<(BufReader<&'a mut R>, BufReader<&'a mut R>)>,
    timescales: Vec<u32>,
    next: Vec<Option<Run>>,
}

impl<'a, R: Read + Seek> Merge<'a, R> {
    fn new(tracks: &'a mut [SpooledTrack<R>]) -> Result<Self, MuxError> {
        let timescales = tracks.iter().map(|t| t.config.timescale).collect();
        let mut cursors = Vec::with_capacity(tracks.len());
        for t in tracks.iter_mut() {
            cursors.push((reread(&mut t.rows)?, reread(&mut t.runs)?));
        }
        let mut m = Merge {
            next: vec![None; cursors.len()],
            cursors,
            timescales,
        };
        for track in 0..m.cursors.len() {
            m.read(track, 0, 0)?;
        }
        Ok(m)
    }

    /// Reads track `track`'s run number `run`, which starts at `start`.
    fn read(&mut self, track: usize, run: usize, start: u64) -> Result<(), MuxError> {
        let (rows, runs) = &mut self.cursors[track];
        self.next[track] = match read_run(runs)? {
            None => None,
            Some(samples) => {
                let (mut size, mut duration) = (0u64, 0u64);
                for _ in 0..samples {
                    let row = read_row(rows)?
                        .ok_or_else(|| MuxError::InvalidConfig("the runs count more samples than the rows".into()))?;
                    size += u64::from(row.size);
                    duration += u64::from(row.duration);
                }
                Some(Run {
                    track,
                    run,
                    start,
                    duration,
                    size,
                })
            }
        };
        Ok(())
    }

    /// The next run in file order.
    fn pop(&mut self) -> Result<Option<Run>, MuxError> {
        let mut best: Option<Run> = None;
        for n in self.next.iter().flatten() {
            best = match best {
                // `n` comes after `b` in track order: it wins only if it starts strictly earlier.
                Some(b) => {
                    let (tb, tn) = (
                        u128::from(self.timescales[b.track]),
                        u128::from(self.timescales[n.track]),
                    );
                    match (u128::from(n.start) * tb).cmp(&(u128::from(b.start) * tn)) {
                        Ordering::Less => Some(*n),
                        _ => Some(b),
                    }
                }
                None => Some(*n),
            };
        }
        if let Some(b) = best {
            self.read(b.track, b.run + 1, b.start + b.duration)?;
        }
        Ok(best)
    }
}

/// Stage 3: writes the head — `ftyp`, the skeleton with its containers grown and its tables' entries streamed
/// in, the `mdat` header — and returns its length and the file's size.
pub fn write_spooled_head<R: Read + Seek, W: Write>(
    tracks: &mut [SpooledTrack<R>],
    out: &mut W,
) -> Result<SpooledHead, MuxError> {
    let configs: Vec<&TrackConfig> = tracks.iter().map(|t| &t.config).collect();
    validate(&configs)?;
    let ftyp = encode(&Ftyp {
        major_brand: fourcc(b"isom"),
        minor_version: 0x200,
        compatible_brands: progressive_brands(&configs),
    })?;
    drop(configs);
    let stats = tracks.iter_mut().map(stats).collect::<Result<Vec<_>, _>>()?;
    let payload_len = stats
        .iter()
        .try_fold(0u64, |acc, s| acc.checked_add(s.payload))
        .ok_or(MuxError::Overflow("mdat size"))?;
    let mut last_size = 0;
    {
        let mut m = Merge::new(tracks)?;
        while let Some(r) = m.pop()? {
            last_size = r.size;
        }
    }
    // The moov's size depends only on stco vs co64, which depends on the last chunk's offset.
    let configs: Vec<&TrackConfig> = tracks.iter().map(|t| &t.config).collect();
    let mdat_head = mdat_header_len(payload_len);
    let moov_len = |use_co64: bool| -> Result<(Vec<u8>, u64), MuxError> {
        let skel = skeleton(&configs, &stats, use_co64)?;
        let extra: u64 = configs
            .iter()
            .zip(&stats)
            .map(|(c, s)| s.total_extra(c, use_co64))
            .sum();
        let len = skel.len() as u64 + extra;
        Ok((skel, len))
    };
    let (mut skel, mut moov) = moov_len(false)?;
    let mut use_co64 = false;
    let payload_start = |moov: u64| ftyp.len() as u64 + moov + mdat_head;
    if payload_start(moov) + (payload_len - last_size) > u64::from(u32::MAX) {
        use_co64 = true;
        (skel, moov) = moov_len(true)?;
    }
    let extras: Vec<u64> = configs
        .iter()
        .zip(&stats)
        .map(|(c, s)| s.total_extra(c, use_co64))
        .collect();
    drop(configs);
    let start = payload_start(moov);
    out.write_all(&ftyp)?;
    let mut emit = Emit {
        tracks,
        stats: &stats,
        extras: &extras,
        use_co64,
        payload_start: start,
        track: None,
        traks_seen: 0,
    };
    emit.boxes(&skel, out)?;
    out.write_all(&mdat_header(payload_len)?)?;
    Ok(SpooledHead {
        head_len: start,
        size: start + payload_len,
    })
}

/// Stage 4: the runs in file order with their offsets, given the head's length.
pub fn place_spooled_runs<R: Read + Seek>(
    tracks: &mut [SpooledTrack<R>],
    head_len: u64,
    mut f: impl FnMut(PlacedRun) -> Result<(), MuxError>,
) -> Result<(), MuxError> {
    let mut m = Merge::new(tracks)?;
    let mut offset = head_len;
    while let Some(r) = m.pop()? {
        f(PlacedRun {
            track: r.track,
            run: r.run,
            offset,
            size: r.size,
        })?;
        offset = offset.checked_add(r.size).ok_or(MuxError::Overflow("file size"))?;
    }
    Ok(())
}

/// The skeleton's copier: containers grow by their tables' entries, tables get them streamed in.
struct Emit<'a, R> {
    tracks: &'a mut [SpooledTrack<R>],
    stats: &'a [TrackStats],
    extras: &'a [u64],
    use_co64: bool,
    payload_start: u64,
    /// The `trak` being copied.
    track: Option<usize>,
    traks_seen: usize,
}

fn box_header<W: Write>(out: &mut W, size: u64, kind: &[u8]) -> Result<(), MuxError> {
    let size = u32::try_from(size).map_err(|_| MuxError::Overflow("box size"))?;
    out.write_all(&size.to_be_bytes())?;
    out.write_all(kind)?;
    Ok(())
}

fn be32<W: Write>(out: &mut W, v: u32) -> Result<(), MuxError> {
    Ok(out.write_all(&v.to_be_bytes())?)
}

impl<R: Read + Seek> Emit<'_, R> {
    fn boxes<W: Write>(&mut self, mut buf: &[u8], out: &mut W) -> Result<(), MuxError> {
        while !buf.is_empty() {
            if buf.len() < 8 {
                return Err(MuxError::InvalidConfig("truncated skeleton box".into()));
            }
            let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if size < 8 || size > buf.len() {
                return Err(MuxError::InvalidConfig("skeleton box of an unexpected size".into()));
            }
            let (this, rest) = buf.split_at(size);
            let mut kind = [0u8; 4];
            kind.copy_from_slice(&this[4..8]);
            match &kind {
                b"moov" => {
                    box_header(out, size as u64 + self.extras.iter().sum::<u64>(), &kind)?;
                    self.boxes(&this[8..], out)?;
                }
                b"trak" => {
                    let t = self.traks_seen;
                    self.traks_seen += 1;
                    self.track = Some(t);
                    box_header(out, size as u64 + self.extras[t], &kind)?;
                    self.boxes(&this[8..], out)?;
                    self.track = None;
                }
                b"mdia" | b"minf" | b"stbl" => {
                    let t = self
                        .track
                        .ok_or_else(|| MuxError::InvalidConfig("a table outside a trak".into()))?;
                    box_header(out, size as u64 + self.extras[t], &kind)?;
                    self.boxes(&this[8..], out)?;
                }
                b"stts" | b"ctts" | b"stss" | b"stsc" | b"stsz" | b"stco" | b"co64" => self.table(&kind, this, out)?,
                _ => out.write_all(this)?,
            }
            buf = rest;
        }
        Ok(())
    }

    /// One table box: its header and version from the skeleton, its count and entries from the spools.
    fn table<W: Write>(&mut self, kind: &[u8; 4], skel: &[u8], out: &mut W) -> Result<(), MuxError> {
        let t = self
            .track
            .ok_or_else(|| MuxError::InvalidConfig("a table outside a trak".into()))?;
        let s = &self.stats[t];
        box_header(out, skel.len() as u64 + s.extra(kind, self.use_co64), kind)?;
        let mut version_flags = [skel[8], skel[9], skel[10], skel[11]];
        if kind == b"ctts" && s.negative_cto {
            version_flags[0] = 1;
        }
        out.write_all(&version_flags)?;
        let count = |n: u64| u32::try_from(n).map_err(|_| MuxError::Overflow("table entries"));
        match kind {
            b"stts" => {
                be32(out, count(s.stts)?)?;
                self.run_lengths(t, out, |r| r.duration as i64)?;
            }
            b"ctts" => {
                be32(out, count(s.ctts)?)?;
                self.run_lengths(t, out, |r| i64::from(r.composition_offset))?;
            }
            b"stss" => {
                be32(out, count(s.sync)?)?;
                let mut rows = reread(&mut self.tracks[t].rows)?;
                let mut number = 0u32;
                while let Some(row) = read_row(&mut rows)? {
                    number += 1;
                    if row.is_sync {
                        be32(out, number)?;
                    }
                }
            }
            b"stsc" => {
                be32(out, count(s.stsc)?)?;
                let mut runs = reread(&mut self.tracks[t].runs)?;
                let (mut chunk, mut last) = (0u32, None);
                while let Some(n) = read_run(&mut runs)? {
                    chunk += 1;
                    if last != Some(n) {
                        for v in [chunk, n, 1] {
                            be32(out, v)?;
                        }
                        last = Some(n);
                    }
                }
            }
            b"stsz" => {
                be32(out, 0)?;
                be32(out, count(s.samples)?)?;
                let mut rows = reread(&mut self.tracks[t].rows)?;
                while let Some(row) = read_row(&mut rows)? {
                    be32(out, row.size)?;
                }
            }
            _ => {
                // stco or co64: this track's runs' offsets in the merged file order.
                let chunks = if kind == b"stco" && !self.use_co64 || kind == b"co64" && self.use_co64 {
                    s.chunks
                } else {
                    0
                };
                be32(out, count(chunks)?)?;
                if chunks > 0 {
                    let mut offset = self.payload_start;
                    let mut m = Merge::new(self.tracks)?;
                    while let Some(r) = m.pop()? {
                        if r.track == t {
                            if self.use_co64 {
                                out.write_all(&offset.to_be_bytes())?;
                            } else {
                                let o = u32::try_from(offset).map_err(|_| MuxError::Overflow("stco chunk offset"))?;
                                be32(out, o)?;
                            }
                        }
                        offset += r.size;
                    }
                }
            }
        }
        Ok(())
    }

    /// `stts` or `ctts` entries: (count, value) over the rows, cut as `progressive::runs` cuts them.
    fn run_lengths<W: Write>(
        &mut self,
        t: usize,
        out: &mut W,
        value: impl Fn(&SampleRow) -> i64,
    ) -> Result<(), MuxError> {
        let mut rows = reread(&mut self.tracks[t].rows)?;
        let mut current: Option<(i64, u32)> = None;
        let flush = |out: &mut W, (v, n): (i64, u32)| -> Result<(), MuxError> {
            be32(out, n)?;
            be32(out, v as u32)
        };
        while let Some(row) = read_row(&mut rows)? {
            let v = value(&row);
            current = match current {
                Some((last, n)) if last == v && n < u32::MAX => Some((last, n + 1)),
                Some(done) => {
                    flush(out, done)?;
                    Some((v, 1))
                }
                None => Some((v, 1)),
            };
        }
        if let Some(done) = current {
            flush(out, done)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{progressive_layout, CodecConfig, StoredTrack};
    use std::io::Cursor;

    fn spool(config: &TrackConfig, rows: &[SampleRow], runs: &[u32]) -> SpooledTrack<Cursor<Vec<u8>>> {
        let (mut r, mut n) = (Vec::new(), Vec::new());
        for row in rows {
            write_row(&mut r, row).unwrap();
        }
        for &c in runs {
            write_run(&mut n, c).unwrap();
        }
        SpooledTrack {
            config: config.clone(),
            rows: Cursor::new(r),
            runs: Cursor::new(n),
        }
    }

    fn video(id: u32) -> TrackConfig {
        TrackConfig {
            track_id: id,
            timescale: 90000,
            codec: CodecConfig::Av1 {
                width: 64,
                height: 32,
                av1c: vec![0x81, 0x00, 0x0c, 0x00],
                colour: None,
            },
            language: "und".into(),
        }
    }

    fn audio(id: u32) -> TrackConfig {
        TrackConfig {
            track_id: id,
            timescale: 48000,
            codec: CodecConfig::Opus {
                channels: 2,
                pre_skip: 312,
                input_sample_rate: 48000,
            },
            language: "eng".into(),
        }
    }

    /// Deterministic rows and runs: `segments` runs of `per` samples (the last one shorter), sizes varying.
    fn rows(seed: u32, segments: u32, per: u32, duration: u32, cto: bool) -> (Vec<SampleRow>, Vec<u32>) {
        let mut rows = Vec::new();
        let mut runs = Vec::new();
        for s in 0..segments {
            let n = if s + 1 == segments { per / 2 + 1 } else { per };
            runs.push(n);
            for i in 0..n {
                rows.push(SampleRow {
                    size: 100 + (seed.wrapping_mul(31).wrapping_add(s * 7 + i * 13) % 900),
                    duration: if i % 5 == 4 { duration + 1 } else { duration },
                    is_sync: i == 0,
                    composition_offset: if cto { (i as i32 % 3 - 1) * 3000 } else { 0 },
                });
            }
        }
        (rows, runs)
    }

    fn same_as_layout(tracks: Vec<(TrackConfig, Vec<SampleRow>, Vec<u32>)>) {
        let stored: Vec<StoredTrack<'_>> = tracks
            .iter()
            .map(|(c, r, n)| StoredTrack {
                config: c.clone(),
                rows: r,
                runs: n,
            })
            .collect();
        let layout = progressive_layout(&stored).unwrap();
        let mut spooled: Vec<_> = tracks.iter().map(|(c, r, n)| spool(c, r, n)).collect();
        let mut head = Vec::new();
        let summary = write_spooled_head(&mut spooled, &mut head).unwrap();
        assert_eq!(head.len(), layout.head.len());
        assert!(head == layout.head, "the streamed head is byte for byte the built one");
        assert_eq!(summary.head_len, head.len() as u64);
        assert_eq!(summary.size, layout.size);
        let mut placed = Vec::new();
        place_spooled_runs(&mut spooled, summary.head_len, |r| {
            placed.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(placed, layout.runs);
    }

    #[test]
    fn the_streamed_head_is_the_built_head() {
        let (vr, vn) = rows(1, 7, 48, 3750, false);
        let (ar, an) = rows(2, 8, 100, 960, false);
        same_as_layout(vec![
            (video(1), vr.clone(), vn.clone()),
            (audio(2), ar.clone(), an.clone()),
        ]);
        // With composition offsets (negative ones: ctts version 1), video alone, audio alone.
        let (cr, cn) = rows(3, 5, 30, 3000, true);
        same_as_layout(vec![(video(1), cr, cn), (audio(2), ar.clone(), an.clone())]);
        same_as_layout(vec![(video(1), vr.clone(), vn.clone())]);
        same_as_layout(vec![(audio(7), ar, an)]);
        // HDR10 metadata boxes in the video's sample entry.
        let mut hdr = video(1);
        if let CodecConfig::Av1 { colour, .. } = &mut hdr.codec {
            *colour = Some(crate::hdr::tests::hdr10());
        }
        same_as_layout(vec![(hdr, vr, vn)]);
    }

    #[test]
    fn inconsistent_spools_are_refused() {
        let (r, _) = rows(1, 2, 10, 3000, false);
        for runs in [vec![10, 5], vec![10, 7], vec![10, 0, 6]] {
            let mut t = vec![spool(&video(1), &r, &runs)];
            assert!(write_spooled_head(&mut t, &mut Vec::new()).is_err(), "{runs:?}");
        }
        let mut torn = spool(&video(1), &r, &[10, 6]);
        torn.rows.get_mut().pop();
        assert!(write_spooled_head(&mut [torn], &mut Vec::new()).is_err());
        let mut empty = vec![spool(&audio(1), &[], &[])];
        assert!(matches!(
            write_spooled_head(&mut empty, &mut Vec::new()),
            Err(MuxError::Empty(_))
        ));
    }
}
