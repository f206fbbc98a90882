//! Finalizing a job once all its tasks finished: per track a segment index (number → object, byte size,
//! start, duration), per rendition the layout of its progressive MP4 (video + audio) over the stored segments, the
//! asset's rendition list with RFC 6381 codec strings, asset Ready; for indexing, the captions and search data (see
//! `index`); job Finished.
//!
//! It reads metadata only — task records a page at a time, track configurations and the segments' sample tables,
//! `FINALIZE_READS` at a time — never a segment's media bytes, and it holds none of it: segment records and sample
//! rows are spooled to scratch files, and every output (indexes, progressive heads and their pages of runs) is
//! written to a scratch file and streamed to storage. So its memory is the same for a clip and a 3-hour film;
//! its scratch disk grows with the sample count (13 bytes a sample). Every write is deterministic, so running it
//! twice is harmless; the job's transition to Finished happens once (conditional update).
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use tracing::info;
use vod_cmaf::sample::SampleRow;
use vod_cmaf::spooled::{place_spooled_runs, write_row, write_run, write_spooled_head, SpooledTrack};
use vod_cmaf::{CodecConfig, TrackConfig};
use vod_domain::job::{
    AudioEncoding, Job, JobId, JobState, KeyFrame, SegmentRecord, TaskKind, TaskState, VideoEncoding,
};
use vod_domain::{
    AssetOutput, AssetState, AudioRendition, BlobRef, IndexedSegment, ProgressiveFile, ProgressiveRun, Rendition,
    RunPage, RunPages, StoreError, Thumbnails,
};

use crate::scratch::{spool, TempFile};
use crate::task::{
    init_key, job_prefix, poster_key, segment_key, table_key, thumbnails_prefix, track_key, SampleTable, TaskError,
};
use crate::WorkerContext;

pub fn index_key(job: &Job, track: &str) -> String {
    format!("{}/{track}/index.json", job_prefix(job))
}
/// The progressive file's description (`ProgressiveFile`), its head and its pages of runs.
pub fn progressive_key(job: &Job, track: &str) -> String {
    format!("{}/{track}/progressive.json", job_prefix(job))
}
pub fn progressive_head_key(job: &Job, track: &str) -> String {
    format!("{}/{track}/progressive.head", job_prefix(job))
}
pub fn progressive_pages_key(job: &Job, track: &str) -> String {
    format!("{}/{track}/progressive.runs.json", job_prefix(job))
}

/// Sample tables read at once by the finalizer.
const FINALIZE_READS: usize = 16;
/// Tasks read per page.
const TASK_PAGE: u32 = 100;
/// Runs per page of a progressive file's runs (a page is about 25 KB).
const RUNS_PER_PAGE: usize = 256;
/// Write buffer of each spool.
const SPOOL_BUFFER: usize = 64 << 10;

fn io(what: &str) -> impl Fn(std::io::Error) -> TaskError + '_ {
    move |e| TaskError::Transient(format!("scratch {what}: {e}"))
}

/// Finalizes the job if every task finished and it is not finished yet.
pub async fn maybe_finalize(ctx: &WorkerContext, id: JobId) -> Result<(), TaskError> {
    let Some(job) = ctx.jobs.get_job(id).await? else {
        return Ok(());
    };
    if job.state.is_final() || job.tasks_done < job.tasks_total {
        return Ok(());
    }
    let Some(mut collected) = collect(ctx, &job).await? else {
        return Ok(());
    };
    let output = match job.preset.encode {
        true => Some(finalize_encoding(ctx, &job, &mut collected.tracks).await?),
        false => None,
    };
    let captions = match &job.preset.index {
        Some(spec) => Some(crate::index::finalize_index(ctx, &job, &collected.windows, spec).await?),
        None => None,
    };
    // Record the outputs on the asset (optimistic concurrency, retried on conflict).
    loop {
        let Some(mut asset) = ctx.assets.get(job.asset_id).await? else {
            // Deleted while the job finalized: nothing of it stays (search terms, progressive heads, captions).
            if captions.is_some() {
                ctx.search.put_terms(job.asset_id, &[]).await?;
            }
            return crate::task::discard(ctx, &job).await;
        };
        if let Some(o) = &output {
            // The asset shows this job's output only if no newer job's output is current (two jobs started on
            // the same probed asset may finish in any order); the update is conditional on the asset's version.
            let newer = match asset.output.as_ref().filter(|cur| cur.job_id != job.id) {
                Some(cur) => ctx
                    .jobs
                    .get_job(cur.job_id)
                    .await?
                    .is_some_and(|j| j.created_at > job.created_at),
                None => false,
            };
            if newer {
                info!(job_id = %job.id, "a newer job's output is current; this job's output is not shown");
            } else {
                asset.output = Some(o.clone());
                asset.state = AssetState::Ready;
            }
        }
        if let Some(c) = &captions {
            asset.captions = Some(c.clone());
        }
        asset.updated_at = Utc::now();
        match ctx.assets.update(&asset).await {
            Ok(_) => break,
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    if captions.is_some() {
        // The asset's terms: this transcript's and its sidecar caption tracks' together.
        vod_domain::search::refresh_terms(
            ctx.assets.as_ref(),
            ctx.blobs.as_ref(),
            ctx.search.as_ref(),
            job.asset_id,
        )
        .await?;
    }
    if ctx
        .jobs
        .transition_job(
            job.id,
            &[JobState::Processing, JobState::Scheduled],
            JobState::Finished,
            None,
        )
        .await?
    {
        info!(job_id = %job.id, progress = 100, "job finished");
        ctx.announce(job.id).await;
    }
    Ok(())
}

/// A track's segment records, gathered from the task records in segment order and spooled.
struct TrackSegments {
    codecs: String,
    timescale: u32,
    /// Audio: the source track's language and name.
    language: Option<String>,
    label: Option<String>,
    /// Records of `RECORD_BYTES` each (number, start, duration, size, key frame at and len — len 0: none), in order.
    records: BufWriter<File>,
    _guard: TempFile,
    count: u32,
    next: u32,
    /// Whether a segment number was skipped.
    gap: bool,
    bytes: u64,
    /// Highest bitrate of one segment, in bits per second.
    peak: u64,
}

/// Bytes of one spooled segment record.
const RECORD_BYTES: usize = 44;

impl TrackSegments {
    fn add(&mut self, s: &SegmentRecord) -> Result<(), TaskError> {
        if s.number < self.next {
            return Ok(()); // written twice (a task that ran again)
        }
        self.gap |= s.number != self.next;
        let mut b = [0u8; RECORD_BYTES];
        b[0..4].copy_from_slice(&s.number.to_le_bytes());
        b[4..12].copy_from_slice(&s.start.to_le_bytes());
        b[12..20].copy_from_slice(&s.duration.to_le_bytes());
        b[20..28].copy_from_slice(&s.size.to_le_bytes());
        if let Some(k) = s.key_frame {
            b[28..36].copy_from_slice(&k.at.to_le_bytes());
            b[36..44].copy_from_slice(&k.len.to_le_bytes());
        }
        self.records.write_all(&b).map_err(io("segment records"))?;
        self.count += 1;
        self.next = s.number + 1;
        self.bytes += s.size;
        if s.duration > 0 {
            self.peak = self
                .peak
                .max((s.size as f64 * 8.0 * self.timescale as f64 / s.duration as f64) as u64);
        }
        Ok(())
    }

    /// A reader of the records from the first.
    fn reader(&mut self) -> Result<Records, TaskError> {
        self.records.flush().map_err(io("segment records"))?;
        let mut f = self.records.get_ref().try_clone().map_err(io("segment records"))?;
        f.seek(SeekFrom::Start(0)).map_err(io("segment records"))?;
        Ok(Records(BufReader::with_capacity(SPOOL_BUFFER, f)))
    }
}

/// Spooled segment records, read back in order.
struct Records(BufReader<File>);

impl Iterator for Records {
    type Item = Result<SegmentRecord, TaskError>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut b = [0u8; RECORD_BYTES];
        match self.0.read_exact(&mut b) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) => return Some(Err(io("segment records")(e))),
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        Some(Ok(SegmentRecord {
            number: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            start: u64_at(4),
            duration: u64_at(12),
            size: u64_at(20),
            key_frame: match (u64_at(28), u64_at(36)) {
                (_, 0) => None,
                (at, len) => Some(KeyFrame { at, len }),
            },
        }))
    }
}

/// What the task records say, gathered a page at a time.
struct Collected {
    tracks: BTreeMap<String, TrackSegments>,
    /// Index tasks: (task index, window end in ms).
    windows: Vec<(u32, u64)>,
}

/// Reads the job's task records a page at a time; `None` if a task is not finished.
async fn collect(ctx: &WorkerContext, job: &Job) -> Result<Option<Collected>, TaskError> {
    let mut c = Collected {
        tracks: BTreeMap::new(),
        windows: Vec::new(),
    };
    let mut after = None;
    loop {
        let (page, next) = ctx.jobs.task_page(job.id, after, TASK_PAGE).await?;
        for t in page {
            if t.state != TaskState::Finished {
                return Ok(None);
            }
            if let TaskKind::Index { end_ms, .. } = t.kind {
                c.windows.push((t.index, end_ms));
            }
            for out in &t.outputs {
                let track = match c.tracks.get_mut(&out.track) {
                    Some(track) => track,
                    None => {
                        let (file, guard) = spool(&ctx.scratch, "segments").map_err(io("segment records"))?;
                        c.tracks.entry(out.track.clone()).or_insert(TrackSegments {
                            codecs: out.codecs.clone(),
                            timescale: out.timescale,
                            language: out.language.clone(),
                            label: out.label.clone(),
                            records: BufWriter::with_capacity(SPOOL_BUFFER, file),
                            _guard: guard,
                            count: 0,
                            next: 0,
                            gap: false,
                            bytes: 0,
                            peak: 0,
                        })
                    }
                };
                for s in &out.segments {
                    track.add(s)?;
                }
            }
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(Some(c))
}

/// The encoding part: segment indexes, progressive files and the rendition list.
async fn finalize_encoding(
    ctx: &WorkerContext,
    job: &Job,
    tracks: &mut BTreeMap<String, TrackSegments>,
) -> Result<AssetOutput, TaskError> {
    let want = job.plan.segment_count;
    // Audio tracks are named by their encoding (jobs stored before AAC wrote one, "audio"); video tracks have
    // every segment.
    let is_audio = |name: &str| AudioEncoding::of_track(name).is_some();
    for (name, t) in tracks.iter() {
        if !is_audio(name) && (t.gap || t.count != want) {
            return Err(TaskError::Permanent(format!(
                "track {name} has {} of {want} segments",
                t.count
            )));
        }
    }
    for (name, t) in tracks.iter_mut() {
        write_index(ctx, job, name, t).await?;
    }

    let mut audio: Vec<((AudioEncoding, u32), AudioRendition, ReadTrack)> = Vec::new();
    for (name, t) in tracks.iter_mut() {
        let Some(encoding) = AudioEncoding::of_track(name) else {
            continue;
        };
        let track = read_track(ctx, job, name, t).await?;
        let channels = match track.config.codec {
            CodecConfig::Opus { channels, .. } | CodecConfig::Aac { channels, .. } => channels,
            _ => 2,
        };
        // The presented duration: without the AAC encoder's priming.
        let presented = track.media.saturating_sub(track.config.codec.priming().into());
        let secs = presented as f64 / t.timescale as f64;
        let rendition = AudioRendition {
            name: name.clone(),
            codecs: t.codecs.clone(),
            channels,
            sample_rate: 48_000,
            bitrate: if secs > 0.0 {
                (track.payload as f64 * 8.0 / secs) as u64
            } else {
                0
            },
            timescale: t.timescale,
            init: init_key(job, name),
            index: index_key(job, name),
            language: t.language.clone(),
            label: t.label.clone(),
        };
        audio.push((encoding, rendition, track));
    }
    // Listed by source track, then in the preset's codec order (Opus first where both exist): the first of each
    // codec is the default track.
    audio.sort_by_key(|((e, n), _, _)| (*n, job.preset.audio.codecs.iter().position(|c| c == e)));

    let mut renditions = Vec::new();
    let fps = job.plan.frame_rate.0 as f64 / job.plan.frame_rate.1.max(1) as f64;
    let duration_secs = job.plan.total_frames as f64 / fps;
    for rung in &job.rungs {
        let Some(t) = tracks.get_mut(&rung.name) else {
            return Err(TaskError::Permanent(format!("no output for rendition {}", rung.name)));
        };
        let video = read_track(ctx, job, &rung.name, t).await?;
        let colour = match video.config.codec {
            CodecConfig::Av1 { colour: Some(c), .. } => Some(vod_media::ColourDescription {
                primaries: c.primaries,
                transfer: c.transfer,
                matrix: c.matrix,
                full_range: c.full_range,
            }),
            _ => None,
        };
        let mut files = vec![video];
        // The progressive file pairs each video codec with the audio its players have: AAC beside H.264, Opus
        // beside AV1 (the other one where only one exists).
        let preferred = match rung.encoding {
            VideoEncoding::H264 { .. } => AudioEncoding::Aac,
            VideoEncoding::Av1 { .. } => AudioEncoding::Opus,
        };
        if let Some((_, _, a)) = audio.iter().find(|((e, _), _, _)| *e == preferred).or(audio.first()) {
            files.push(a.try_clone()?);
        }
        write_progressive(ctx, job, &rung.name, files).await?;
        renditions.push(Rendition {
            name: rung.name.clone(),
            width: rung.width,
            height: rung.height,
            bitrate: if duration_secs > 0.0 {
                (t.bytes as f64 * 8.0 / duration_secs) as u64
            } else {
                0
            },
            peak_bitrate: t.peak,
            codecs: t.codecs.clone(),
            frame_rate: job.plan.frame_rate,
            timescale: t.timescale,
            init: init_key(job, &rung.name),
            index: index_key(job, &rung.name),
            progressive: progressive_key(job, &rung.name),
            colour,
        });
    }
    let output = AssetOutput {
        job_id: job.id,
        bucket: ctx.media_bucket.clone(),
        prefix: job_prefix(job),
        segment_duration: job.plan.segment_duration,
        segment_count: job.plan.segment_count,
        duration_secs,
        renditions,
        audio: audio.into_iter().map(|(_, a, _)| a).collect(),
        thumbnails: job.plan.thumbnails.as_ref().map(|t| Thumbnails {
            layout: t.clone(),
            sheets: thumbnails_prefix(job),
            poster: poster_key(job),
        }),
    };
    Ok(output)
}

/// Writes a track's segment index (`SegmentIndex` as JSON), streamed from the spooled records.
async fn write_index(ctx: &WorkerContext, job: &Job, name: &str, t: &mut TrackSegments) -> Result<(), TaskError> {
    let (file, guard) = spool(&ctx.scratch, "index").map_err(io("index"))?;
    let mut out = BufWriter::with_capacity(SPOOL_BUFFER, file);
    let json = |e: serde_json::Error| TaskError::Permanent(format!("segment index of {name}: {e}"));
    // The same document as `serde_json::to_vec(&SegmentIndex { .. })`, written a segment at a time.
    write!(
        out,
        "{{\"track\":{},\"codecs\":{},\"timescale\":{},\"init\":{},\"segments\":[",
        serde_json::to_string(name).map_err(json)?,
        serde_json::to_string(&t.codecs).map_err(json)?,
        t.timescale,
        serde_json::to_string(&init_key(job, name)).map_err(json)?,
    )
    .map_err(io("index"))?;
    for (i, s) in t.reader()?.enumerate() {
        let s = s?;
        if i > 0 {
            out.write_all(b",").map_err(io("index"))?;
        }
        let entry = IndexedSegment {
            number: s.number,
            key: segment_key(job, name, s.number),
            start: s.start,
            duration: s.duration,
            size: s.size,
            key_frame: s.key_frame,
        };
        serde_json::to_writer(&mut out, &entry).map_err(json)?;
    }
    out.write_all(b"]}").map_err(io("index"))?;
    out.flush().map_err(io("index"))?;
    drop(out);
    ctx.blobs
        .put_file(
            &BlobRef::new(&ctx.media_bucket, index_key(job, name)),
            guard.path(),
            "application/json",
        )
        .await?;
    Ok(())
}

/// A track's sample rows and runs spooled from its segments' sample tables, with its segment records.
struct ReadTrack {
    name: String,
    config: TrackConfig,
    rows: File,
    runs: File,
    records: File,
    /// Bytes and duration (in the track's timescale) of all its samples.
    payload: u64,
    media: u64,
    _guards: std::sync::Arc<(TempFile, TempFile)>,
}

impl ReadTrack {
    /// Another handle on the same spools (the audio track goes into every rendition's file).
    fn try_clone(&self) -> Result<Self, TaskError> {
        let clone = |f: &File| f.try_clone().map_err(io("spool"));
        Ok(ReadTrack {
            name: self.name.clone(),
            config: self.config.clone(),
            rows: clone(&self.rows)?,
            runs: clone(&self.runs)?,
            records: clone(&self.records)?,
            payload: self.payload,
            media: self.media,
            _guards: self._guards.clone(),
        })
    }
}

/// Reads a track's configuration and the sample tables of its segments (`FINALIZE_READS` at a time, in order),
/// spooling their rows: metadata only, never the segments' media bytes, and none of it held.
async fn read_track(ctx: &WorkerContext, job: &Job, name: &str, t: &mut TrackSegments) -> Result<ReadTrack, TaskError> {
    let get_all = |key: String| async move {
        let blob = BlobRef::new(&ctx.media_bucket, key);
        let meta = ctx
            .blobs
            .head(&blob)
            .await?
            .ok_or_else(|| TaskError::Transient(format!("{} is missing", blob.key)))?;
        Ok::<_, TaskError>(ctx.blobs.read_range(&blob, 0, meta.size).await?)
    };
    let config: TrackConfig = serde_json::from_slice(&get_all(track_key(job, name)).await?)
        .map_err(|e| TaskError::Permanent(format!("track configuration of {name}: {e}")))?;
    let (rows_file, rows_guard) = spool(&ctx.scratch, "rows").map_err(io("rows"))?;
    let (runs_file, runs_guard) = spool(&ctx.scratch, "runs").map_err(io("runs"))?;
    let mut rows = BufWriter::with_capacity(SPOOL_BUFFER, rows_file);
    let mut runs = BufWriter::with_capacity(SPOOL_BUFFER, runs_file);
    let get_all = &get_all;
    let mut tables = futures::stream::iter(t.reader()?)
        .map(|record| async move {
            let s = record?;
            let table: SampleTable = serde_json::from_slice(&get_all(table_key(job, name, s.number)).await?)
                .map_err(|e| TaskError::Permanent(format!("sample table of {name}/{}: {e}", s.number)))?;
            let payload: u64 = table.samples.iter().map(|e| u64::from(e.size)).sum();
            if payload > s.size || table.samples.is_empty() {
                return Err(TaskError::Permanent(format!(
                    "segment {name}/{} does not hold its samples",
                    s.number
                )));
            }
            Ok(table)
        })
        .buffered(FINALIZE_READS);
    // Tables arrive in segment order; each is spooled and dropped.
    let (mut payload, mut media) = (0u64, 0u64);
    while let Some(table) = tables.try_next().await? {
        let n = u32::try_from(table.samples.len())
            .map_err(|_| TaskError::Permanent(format!("a segment of {name} has too many samples")))?;
        write_run(&mut runs, n).map_err(io("runs"))?;
        for e in &table.samples {
            let row = SampleRow {
                size: e.size,
                duration: e.duration,
                is_sync: e.sync,
                composition_offset: e.cto,
            };
            write_row(&mut rows, &row).map_err(io("rows"))?;
            payload += u64::from(e.size);
            media += u64::from(e.duration);
        }
    }
    drop(tables);
    let finish = |w: BufWriter<File>| w.into_inner().map_err(|e| io("spool")(e.into_error()));
    Ok(ReadTrack {
        name: name.to_string(),
        config,
        rows: finish(rows)?,
        runs: finish(runs)?,
        records: t.reader()?.0.into_inner(),
        payload,
        media,
        _guards: std::sync::Arc::new((rows_guard, runs_guard)),
    })
}

/// Collects a progressive file's runs into pages of `RUNS_PER_PAGE`, written back to back.
struct Pager<W> {
    out: W,
    at: u64,
    current: Vec<ProgressiveRun>,
    first_offset: u64,
    pages: Vec<RunPage>,
}

impl<W: Write> Pager<W> {
    fn push(&mut self, run: ProgressiveRun, offset: u64) -> std::io::Result<()> {
        if self.current.is_empty() {
            self.first_offset = offset;
        }
        self.current.push(run);
        if self.current.len() == RUNS_PER_PAGE {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.current.is_empty() {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&self.current)?;
        self.out.write_all(&bytes)?;
        self.pages.push(RunPage {
            offset: self.first_offset,
            at: self.at,
            len: bytes.len() as u64,
        });
        self.at += bytes.len() as u64;
        self.current.clear();
        Ok(())
    }
}

/// Lays out a rendition's progressive MP4 over its segments: writes its head, its pages of runs (the head first,
/// then each segment's samples in file order) and its description. The head is streamed from the spools on a
/// blocking thread into a scratch file, then uploaded from there.
async fn write_progressive(ctx: &WorkerContext, job: &Job, name: &str, files: Vec<ReadTrack>) -> Result<(), TaskError> {
    let media = |key: String| BlobRef::new(&ctx.media_bucket, key);
    let (head_key, pages_key) = (progressive_head_key(job, name), progressive_pages_key(job, name));
    let (head_file, head_guard) = spool(&ctx.scratch, "head").map_err(io("head"))?;
    let (pages_file, pages_guard) = spool(&ctx.scratch, "pages").map_err(io("pages"))?;
    let (job2, head_key2, name2) = (job.clone(), head_key.clone(), name.to_string());
    let laid_out = tokio::task::spawn_blocking(move || -> Result<(u64, Vec<RunPage>), TaskError> {
        let bad = |e: vod_cmaf::MuxError| TaskError::Permanent(format!("progressive {name2}: {e}"));
        let mut tracks = Vec::with_capacity(files.len());
        let mut records = Vec::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            let mut config = f.config.clone();
            config.track_id = i as u32 + 1;
            let clone = |f: &File| f.try_clone().map_err(io("spool"));
            tracks.push(SpooledTrack {
                config,
                rows: clone(&f.rows)?,
                runs: clone(&f.runs)?,
            });
            let mut r = clone(&f.records)?;
            r.seek(SeekFrom::Start(0)).map_err(io("segment records"))?;
            records.push(Records(BufReader::with_capacity(SPOOL_BUFFER, r)));
        }
        let mut out = BufWriter::with_capacity(SPOOL_BUFFER, head_file);
        let head = write_spooled_head(&mut tracks, &mut out).map_err(bad)?;
        out.flush().map_err(io("head"))?;
        let mut pager = Pager {
            out: BufWriter::with_capacity(SPOOL_BUFFER, pages_file),
            at: 0,
            current: Vec::with_capacity(RUNS_PER_PAGE),
            first_offset: 0,
            pages: Vec::new(),
        };
        let head_run = ProgressiveRun {
            key: head_key2,
            at: 0,
            size: head.head_len,
        };
        pager.push(head_run, 0).map_err(io("pages"))?;
        let invalid = |m: String| vod_cmaf::MuxError::InvalidConfig(m);
        place_spooled_runs(&mut tracks, head.head_len, |r| {
            let track = &files[r.track];
            let rec = records[r.track]
                .next()
                .ok_or_else(|| invalid(format!("{}: more runs than segments", track.name)))?
                .map_err(|e| invalid(e.to_string()))?;
            // The mdat payload closes the segment: its samples are its last bytes, in order.
            let at = rec.size.checked_sub(r.size).ok_or_else(|| {
                invalid(format!(
                    "{} segment {} is smaller than its samples",
                    track.name, rec.number
                ))
            })?;
            let run = ProgressiveRun {
                key: segment_key(&job2, &track.name, rec.number),
                at,
                size: r.size,
            };
            pager.push(run, r.offset).map_err(vod_cmaf::MuxError::Io)
        })
        .map_err(bad)?;
        pager.flush().map_err(io("pages"))?;
        pager.out.flush().map_err(io("pages"))?;
        Ok((head.size, pager.pages))
    })
    .await
    .map_err(|e| TaskError::Transient(format!("progressive layout of {name}: {e}")))??;
    let (size, pages) = laid_out;
    ctx.blobs
        .put_file(&media(head_key), head_guard.path(), "video/mp4")
        .await?;
    ctx.blobs
        .put_file(&media(pages_key.clone()), pages_guard.path(), "application/json")
        .await?;
    let file = ProgressiveFile {
        size,
        head: String::new(),
        runs: Vec::new(),
        pages: Some(RunPages { key: pages_key, pages }),
    };
    let body = serde_json::to_vec(&file).map_err(|e| TaskError::Permanent(e.to_string()))?;
    ctx.blobs
        .put(&media(progressive_key(job, name)), body, "application/json")
        .await?;
    Ok(())
}
