//! Byte-range planning for Matroska / WebM sources: which parts of the file an encoder task decoding a chunk
//! of video reads (the EBML and Segment headers, every level-1 element but the Clusters, the first clusters for
//! stream probing, and the clusters around the chunk, located through the Cues).
//!
//! `matroska-demuxer` keeps cue points private, so this is a small hand-written, bounds-checked EBML walker.
//! It reads untrusted input: every size is checked against the file, the elements loaded into memory are
//! capped, loops are bounded, and nothing panics; a file it cannot plan is read whole (`Ok(None)`).

use std::cmp::Ordering;

use crate::mp4::Need;
use crate::probe::ProbeError;
use crate::source::ReadAt;

// Same policy as the MP4 planner: probe prefix, seek margin and merging of close ranges.
use crate::mp4::{merge_ranges as merge, PROBE_PREFIX_SECS, SEEK_MARGIN_SECS};
/// Seconds after a chunk's end that are kept (then one more cluster of read-ahead).
const READ_AHEAD_SECS: f64 = 1.0;

/// Bytes read at once when walking element headers.
const WINDOW: usize = 64 * 1024;
/// Largest Cues element loaded into memory.
const MAX_CUES: u64 = 64 << 20;
/// Largest SeekHead or Info element loaded into memory.
const MAX_META: u64 = 1 << 20;
/// Bound on the top-level elements before the Segment (the EBML header, Void...).
const MAX_TOP_ELEMENTS: usize = 16;
/// Bound on the level-1 elements before the first Cluster.
const MAX_LEVEL1: usize = 4096;
/// Bound on the SeekHead elements followed.
const MAX_SEEK_HEADS: usize = 8;
/// Bound on the SeekHead entries (other than Clusters) followed, over all SeekHeads: each may cost a read.
const MAX_SEEK_ENTRIES: usize = 256;
/// Bound on the cue positions kept.
const MAX_CUE_POSITIONS: usize = 1 << 20;

const EBML_ID: u32 = 0x1A45_DFA3;
const SEGMENT_ID: u32 = 0x1853_8067;
const CLUSTER_ID: u32 = 0x1F43_B675;
const SEEK_HEAD_ID: u32 = 0x114D_9B74;
const SEEK_ID: u32 = 0x4DBB;
const SEEK_ID_ID: u32 = 0x53AB;
const SEEK_POSITION_ID: u32 = 0x53AC;
const INFO_ID: u32 = 0x1549_A966;
const TIMESTAMP_SCALE_ID: u32 = 0x2A_D7B1;
const CUES_ID: u32 = 0x1C53_BB6B;
const CUE_POINT_ID: u32 = 0xBB;
const CUE_TIME_ID: u32 = 0xB3;
const CUE_TRACK_POSITIONS_ID: u32 = 0xB7;
const CUE_CLUSTER_POSITION_ID: u32 = 0xF1;
const CUE_TRACK_ID: u32 = 0xF7;
const CLUSTER_TIMESTAMP_ID: u32 = 0xE7;
const CRC32_ID: u32 = 0xBF;
const VOID_ID: u32 = 0xEC;

/// Default TimestampScale: nanoseconds per tick.
const DEFAULT_TIMESTAMP_SCALE: u64 = 1_000_000;

/// Outcome of decoding an EBML element ID or size from the start of a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vint<T> {
    /// The value and the number of bytes it takes.
    Ok(T, usize),
    /// The slice ends before the value does.
    Short,
    /// Not a valid encoding (a zero first byte, an ID longer than 4 bytes).
    Invalid,
}

/// An element ID (1 to 4 bytes), marker bits kept as in the specification (`0x1A45DFA3`).
fn read_id(b: &[u8]) -> Vint<u32> {
    let Some(&first) = b.first() else {
        return Vint::Short;
    };
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return Vint::Invalid;
    }
    let Some(bytes) = b.get(..len) else {
        return Vint::Short;
    };
    Vint::Ok(bytes.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x)), len)
}

/// An element data size (1 to 8 bytes); `None` for the reserved "unknown size" (all value bits set).
fn read_size(b: &[u8]) -> Vint<Option<u64>> {
    let Some(&first) = b.first() else {
        return Vint::Short;
    };
    if first == 0 {
        return Vint::Invalid;
    }
    let len = first.leading_zeros() as usize + 1;
    let Some(bytes) = b.get(..len) else {
        return Vint::Short;
    };
    // len is 1..=8: the mask keeps the value bits of the first byte, 7 * len value bits in all.
    let first_bits = u64::from(first) & (0xFFu64 >> len);
    let value = bytes
        .iter()
        .skip(1)
        .fold(first_bits, |acc, &x| (acc << 8) | u64::from(x));
    let all_ones = (1u64 << (7 * len)) - 1;
    Vint::Ok((value != all_ones).then_some(value), len)
}

/// Header of an element: its ID, the number of header bytes and the data size.
fn read_header(b: &[u8]) -> Vint<(u32, Option<u64>)> {
    let (id, id_len) = match read_id(b) {
        Vint::Ok(id, n) => (id, n),
        Vint::Short => return Vint::Short,
        Vint::Invalid => return Vint::Invalid,
    };
    match read_size(b.get(id_len..).unwrap_or_default()) {
        Vint::Ok(size, n) => Vint::Ok((id, size), id_len + n),
        Vint::Short => Vint::Short,
        Vint::Invalid => Vint::Invalid,
    }
}

/// An EBML unsigned integer (0 to 8 bytes, big-endian; empty = 0).
fn read_uint(b: &[u8]) -> Option<u64> {
    if b.len() > 8 {
        return None;
    }
    Some(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

/// The child elements of an in-memory element body: `Err` (then the end) at the first malformed one
/// (invalid header, unknown size, data past the end of the body).
struct Children<'a> {
    body: &'a [u8],
    pos: usize,
    failed: bool,
}

fn children(body: &[u8]) -> Children<'_> {
    Children {
        body,
        pos: 0,
        failed: false,
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<(u32, &'a [u8]), ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.body.len() {
            return None;
        }
        let rest = self.body.get(self.pos..).unwrap_or_default();
        let child = match read_header(rest) {
            Vint::Ok((id, Some(size)), n) => usize::try_from(size)
                .ok()
                .and_then(|size| n.checked_add(size))
                .and_then(|end| Some((id, rest.get(n..end)?, end))),
            _ => None,
        };
        match child {
            Some((id, data, end)) => {
                self.pos += end;
                Some(Ok((id, data)))
            }
            None => {
                self.failed = true;
                Some(Err(()))
            }
        }
    }
}

/// An element header positioned in the source.
#[derive(Debug, Clone, Copy)]
struct Element {
    id: u32,
    /// Offset of the element (its ID) in the source.
    offset: u64,
    /// Offset of its data.
    data: u64,
    /// Size of its data; `None` when unknown.
    size: Option<u64>,
}

impl Element {
    /// End of the element, checked against `limit` (the end of its parent): past the end of the file, the file
    /// is truncated; past the end of its parent only, it is corrupt.
    fn end(&self, limit: u64, file_size: u64) -> Result<Option<u64>, ProbeError> {
        let Some(size) = self.size else {
            return Ok(None);
        };
        let end = self.data.checked_add(size);
        match end {
            Some(end) if end <= limit => Ok(Some(end)),
            Some(end) if end <= file_size => Err(ProbeError::Corrupt(format!(
                "matroska element {:#X} at offset {} ends at {end}, past the end of its parent at {limit}",
                self.id, self.offset
            ))),
            _ => Err(ProbeError::Truncated(format!(
                "matroska element {:#X} at offset {} claims {size} bytes, the file has {file_size}",
                self.id, self.offset
            ))),
        }
    }
}

/// Reads from the source through a window, so that walking element headers costs few reads (each one may
/// be a ranged GET).
struct Reader<'a> {
    src: &'a dyn ReadAt,
    size: u64,
    window_at: u64,
    window: Vec<u8>,
}

impl<'a> Reader<'a> {
    fn new(src: &'a dyn ReadAt) -> Self {
        Reader {
            src,
            size: src.size(),
            window_at: 0,
            window: Vec::new(),
        }
    }

    /// Up to `len` bytes at `at`: fewer only at the end of the source. Callers bound `len`.
    fn bytes(&mut self, at: u64, len: usize) -> Result<&[u8], ProbeError> {
        if at >= self.size {
            return Ok(&[]);
        }
        let want = (len as u64).min(self.size - at);
        let window_end = self.window_at.saturating_add(self.window.len() as u64);
        if at < self.window_at || at.saturating_add(want) > window_end {
            let read = want.max(WINDOW as u64).min(self.size - at);
            let read = usize::try_from(read).map_err(|_| ProbeError::Corrupt(format!("matroska: {read}-byte read")))?;
            self.window = self.src.read_at(at, read)?;
            self.window_at = at;
        }
        let from = usize::try_from(at - self.window_at).unwrap_or(usize::MAX);
        let to = usize::try_from(want)
            .ok()
            .and_then(|w| from.checked_add(w))
            .unwrap_or(usize::MAX);
        let avail = self.window.get(from..).unwrap_or_default();
        Ok(avail.get(..to.saturating_sub(from)).unwrap_or(avail))
    }

    /// The element header at `at`.
    fn header(&mut self, at: u64) -> Result<Element, ProbeError> {
        let head = self.bytes(at, 12)?;
        match read_header(head) {
            Vint::Ok((id, size), n) => Ok(Element {
                id,
                offset: at,
                data: at.saturating_add(n as u64),
                size,
            }),
            Vint::Short => Err(ProbeError::Truncated(format!(
                "matroska element header cut at offset {at}"
            ))),
            Vint::Invalid => Err(ProbeError::Corrupt(format!(
                "matroska: invalid element header at offset {at}"
            ))),
        }
    }

    /// The data of an element whose end has been checked, if it is at most `max` bytes.
    fn body(&mut self, e: &Element, max: u64) -> Result<Option<Vec<u8>>, ProbeError> {
        let size = e.size.unwrap_or(u64::MAX);
        if size > max {
            return Ok(None);
        }
        let len = usize::try_from(size).map_err(|_| ProbeError::Corrupt("matroska: huge element".into()))?;
        let data = self.bytes(e.data, len)?;
        if data.len() != len {
            return Err(ProbeError::Truncated(format!(
                "matroska element {:#X} at offset {} cut short",
                e.id, e.offset
            )));
        }
        Ok(Some(data.to_vec()))
    }
}

/// What the walk of a file found.
#[derive(Debug, Default)]
struct Layout {
    /// Ranges of everything but Clusters: the headers up to the Segment data and every level-1 element found.
    meta: Vec<(u64, u64)>,
    /// Offset of the first Cluster.
    first_cluster: Option<u64>,
    /// Nanoseconds per tick.
    timestamp_scale: Option<u64>,
    /// Every cue track position.
    cues: Vec<Cue>,
    cues_parsed: bool,
    seek_heads: Vec<u64>,
    seek_entries: usize,
}

/// One cue track position: (CueTime in ticks, cluster offset relative to the Segment data, CueTrack or 0).
type Cue = (u64, u64, u64);

/// Why the walk stopped without a plan (the file is fine, it is just not plannable): read it whole.
struct Unplannable;

type Walk<T> = Result<Result<T, Unplannable>, ProbeError>;

/// Byte ranges `[start, end)` of a Matroska / WebM file that a decoder needs for `need`, sorted, non-overlapping,
/// within the file, and merged when closer than 256 KiB; `Ok(None)` when the file should be read whole.
///
/// - [`Need::Video`] `{ start_secs, end_secs }` (seconds from the start of the video stream, i.e. from the first
///   cue point): the EBML and Segment headers; every level-1 element but the Clusters (SeekHead, Info, Tracks,
///   Cues, Tags... before the first Cluster or wherever a SeekHead points); the clusters of the first second
///   (so that stream probing finds real packets); and the clusters from the last cue point at or before
///   `start_secs` − 2 s to the end of the cluster of the first cue point after `end_secs` + 1 s (one cluster of
///   read-ahead), or to the end of the segment.
/// - [`Need::Audio`]: `Ok(None)`. Clusters interleave audio with video, so an audio task reads everything.
///
/// Also `Ok(None)` for files that are fine but cannot be planned: no SeekHead, no Cues, elements of unknown size
/// before the first Cluster, stale SeekHead entries, cue points out of order, oversized metadata. `Err` for clear
/// damage: elements claiming bytes past the end of the file ([`ProbeError::Truncated`]), positions past the end
/// or invalid element headers ([`ProbeError::Corrupt`]).
pub fn matroska_needed_ranges(src: &dyn ReadAt, need: Need) -> Result<Option<Vec<(u64, u64)>>, ProbeError> {
    let (start_secs, end_secs) = match need {
        Need::Audio => return Ok(None),
        Need::Video { start_secs, end_secs } => (start_secs, end_secs),
    };
    if !start_secs.is_finite() || !end_secs.is_finite() {
        return Ok(None);
    }
    let file_size = src.size();
    Ok(plan(&mut Reader::new(src), start_secs, end_secs)?.map(|ranges| merge(ranges, file_size)))
}

/// The ranges for a video chunk, before merging.
fn plan(r: &mut Reader<'_>, start_secs: f64, end_secs: f64) -> Result<Option<Vec<(u64, u64)>>, ProbeError> {
    let (layout, segment_data, segment_end) = match walk(r)? {
        Ok(found) => found,
        Err(Unplannable) => return Ok(None),
    };
    let Some(first_cluster) = layout.first_cluster else {
        return Ok(None);
    };
    if layout.seek_heads.is_empty() || layout.cues.is_empty() {
        return Ok(None);
    }
    let scale = layout.timestamp_scale.unwrap_or(DEFAULT_TIMESTAMP_SCALE);
    let mut cues = Vec::with_capacity(layout.cues.len());
    for &(ticks, rel, _) in &layout.cues {
        let at = segment_data
            .checked_add(rel)
            .filter(|&at| at < segment_end)
            .ok_or_else(|| ProbeError::Corrupt(format!("matroska: cue cluster position {rel} past the end")))?;
        if at < first_cluster {
            return Ok(None);
        }
        cues.push((ticks as f64 * scale as f64 / 1e9, at, ticks));
    }
    cues.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    cues.dedup();
    // Clusters follow each other in time: an index out of order is not one to plan from.
    if cues.windows(2).any(|w| matches!(w, [a, b] if b.1 < a.1)) {
        return Ok(None);
    }
    // Where clusters start, and where the last one ends when other elements (Cues, Tags...) follow it.
    let mut bounds: Vec<u64> = cues.iter().map(|c| c.1).collect();
    bounds.push(first_cluster);
    bounds.extend(layout.meta.iter().map(|m| m.0).filter(|&a| a > first_cluster));
    bounds.sort_unstable();
    bounds.dedup();
    // End of the cluster at `at`.
    let cluster_end = |at: u64| -> u64 {
        let i = bounds.partition_point(|&o| o <= at);
        bounds.get(i).copied().unwrap_or(segment_end)
    };

    // Chunk times count from the start of the video stream (the decoder's presentation time zero), which is the
    // first cue point (the first key frame), not from timestamp zero: files cut from longer recordings, or with
    // an encoder delay, start later.
    let origin = cues.first().map_or(0.0, |c| c.0);
    let mut ranges = layout.meta;
    // Stream probing: from the first cluster to the first cue point past the first second.
    let prefix_end = match cues.iter().find(|c| c.0 > origin + PROBE_PREFIX_SECS) {
        Some(&(_, at, _)) if at > first_cluster => at,
        _ => cluster_end(first_cluster),
    };
    ranges.push((first_cluster, prefix_end));
    // The chunk: from the last cue point at or before (start - margin), the earliest cluster at that time...
    let from = origin + start_secs - SEEK_MARGIN_SECS;
    let before = cues.partition_point(|c| c.0 <= from);
    let first = before.checked_sub(1).and_then(|i| cues.get(i)).and_then(|&(t, _, _)| {
        let first_at_t = cues.partition_point(|c| c.0.total_cmp(&t) == Ordering::Less);
        cues.get(first_at_t)
    });
    let start = first.map_or(first_cluster, |c| c.1);
    if start != first_cluster && r.header(start)?.id != CLUSTER_ID {
        return Ok(None);
    }
    // ...to the end of the cluster of the first cue point past (end + 1 s): one cluster of read-ahead.
    let last = cues.iter().find(|c| c.0 > origin + end_secs + READ_AHEAD_SECS);
    let end = match last {
        Some(&(_, at, _)) => cluster_end(at),
        None => segment_end,
    };
    // A stale index (times that do not match the clusters, after an edit) would plan the wrong clusters: the two
    // cue points the plan rests on must fall inside the clusters they name.
    for &(_, at, ticks) in first.into_iter().chain(last) {
        if !cue_in_cluster(r, at, ticks, segment_end)? {
            return Ok(None);
        }
    }
    ranges.push((start, end));
    Ok(Some(ranges))
}

/// Whether a cue time (in timestamp ticks) lies within the cluster at `at`: at or after its Timestamp and before
/// the next cluster's, when there is one.
fn cue_in_cluster(r: &mut Reader<'_>, at: u64, ticks: u64, segment_end: u64) -> Result<bool, ProbeError> {
    let Some((time, end)) = cluster_time(r, at, segment_end)? else {
        return Ok(false);
    };
    if ticks < time {
        return Ok(false);
    }
    if end < segment_end && r.header(end)?.id == CLUSTER_ID {
        if let Some((next, _)) = cluster_time(r, end, segment_end)? {
            return Ok(ticks < next);
        }
    }
    Ok(true)
}

/// The Timestamp (first child) and end of the Cluster at `at`; `None` when it is not a cluster with one.
fn cluster_time(r: &mut Reader<'_>, at: u64, segment_end: u64) -> Result<Option<(u64, u64)>, ProbeError> {
    let cluster = r.header(at)?;
    if cluster.id != CLUSTER_ID {
        return Ok(None);
    }
    let Some(end) = cluster.end(segment_end, r.size)? else {
        return Ok(None);
    };
    // The Timestamp comes first, after a CRC-32 or Void element at most.
    let mut at = cluster.data;
    for _ in 0..3 {
        let child = match r.header(at) {
            Ok(c) => c,
            Err(_) => return Ok(None),
        };
        let Ok(Some(child_end)) = child.end(end, r.size) else {
            return Ok(None);
        };
        match child.id {
            CLUSTER_TIMESTAMP_ID => return Ok(r.body(&child, 8)?.and_then(|b| read_uint(&b)).map(|t| (t, end))),
            CRC32_ID | VOID_ID => at = child_end,
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Walks the headers up to the Segment, its level-1 elements up to the first Cluster, and every element its
/// SeekHeads point to. Returns the layout with the Segment's data start and end.
fn walk(r: &mut Reader<'_>) -> Walk<(Layout, u64, u64)> {
    let file_size = r.size;
    let mut layout = Layout::default();
    // The EBML header, then (possibly after Void elements) the Segment.
    let mut pos = 0u64;
    let mut segment = None;
    for i in 0..MAX_TOP_ELEMENTS {
        let e = r.header(pos)?;
        if i == 0 && e.id != EBML_ID {
            return Err(ProbeError::UnsupportedFormat("not an EBML file".into()));
        }
        if e.id == SEGMENT_ID {
            segment = Some(e);
            break;
        }
        let Some(end) = e.end(file_size, file_size)? else {
            return Err(ProbeError::Corrupt(format!(
                "matroska: top-level element {:#X} of unknown size",
                e.id
            )));
        };
        pos = end;
    }
    let Some(segment) = segment else {
        return Ok(Err(Unplannable));
    };
    // An unknown-size Segment runs to the end of the file.
    let segment_end = segment.end(file_size, file_size)?.unwrap_or(file_size);
    layout.meta.push((0, segment.data));

    let mut pending_seek_heads = Vec::new();
    let mut pos = segment.data;
    let mut count = 0usize;
    while pos < segment_end {
        count += 1;
        if count > MAX_LEVEL1 {
            return Ok(Err(Unplannable));
        }
        let e = r.header(pos)?;
        if e.id == CLUSTER_ID {
            layout.first_cluster = Some(pos);
            break;
        }
        let Some(end) = e.end(segment_end, file_size)? else {
            return Ok(Err(Unplannable));
        };
        layout.meta.push((pos, end));
        match e.id {
            SEEK_HEAD_ID => pending_seek_heads.push(e),
            INFO_ID | CUES_ID => {
                if let Err(u) = load(r, &e, &mut layout)? {
                    return Ok(Err(u));
                }
            }
            _ => {}
        }
        pos = end;
    }

    // SeekHeads (including those they point to), and the elements they index.
    while let Some(seek_head) = pending_seek_heads.pop() {
        if layout.seek_heads.contains(&seek_head.offset) {
            continue;
        }
        if layout.seek_heads.len() >= MAX_SEEK_HEADS {
            return Ok(Err(Unplannable));
        }
        layout.seek_heads.push(seek_head.offset);
        let Some(body) = r.body(&seek_head, MAX_META)? else {
            return Ok(Err(Unplannable));
        };
        for (id, rel) in seek_entries(&body)? {
            // Some muxers index every Cluster in a SeekHead: those entries cost nothing.
            if id == CLUSTER_ID {
                continue;
            }
            layout.seek_entries += 1;
            if layout.seek_entries > MAX_SEEK_ENTRIES {
                return Ok(Err(Unplannable));
            }
            let at = segment
                .data
                .checked_add(rel)
                .filter(|&at| at < segment_end)
                .ok_or_else(|| {
                    ProbeError::Corrupt(format!("matroska: SeekHead position {rel} past the end of the segment"))
                })?;
            let e = r.header(at)?;
            if e.id != id {
                // A stale index (the file was edited): not worth planning around.
                return Ok(Err(Unplannable));
            }
            let Some(end) = e.end(segment_end, file_size)? else {
                return Ok(Err(Unplannable));
            };
            layout.meta.push((at, end));
            match id {
                SEEK_HEAD_ID => pending_seek_heads.push(e),
                INFO_ID | CUES_ID => {
                    if let Err(u) = load(r, &e, &mut layout)? {
                        return Ok(Err(u));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Ok((layout, segment.data, segment_end)))
}

/// Loads an Info (timestamp scale) or Cues (cue positions) element into the layout; the first of each only.
fn load(r: &mut Reader<'_>, e: &Element, layout: &mut Layout) -> Walk<()> {
    match e.id {
        INFO_ID if layout.timestamp_scale.is_none() => {
            let Some(body) = r.body(e, MAX_META)? else {
                return Ok(Err(Unplannable));
            };
            let mut scale = DEFAULT_TIMESTAMP_SCALE;
            for child in children(&body) {
                let (id, data) = child.map_err(|()| ProbeError::Corrupt("matroska: malformed Info".into()))?;
                if id == TIMESTAMP_SCALE_ID && !data.is_empty() {
                    scale = read_uint(data).ok_or_else(|| ProbeError::Corrupt("matroska: TimestampScale".into()))?;
                }
            }
            if scale == 0 {
                return Ok(Err(Unplannable));
            }
            layout.timestamp_scale = Some(scale);
        }
        CUES_ID if !layout.cues_parsed => {
            let Some(body) = r.body(e, MAX_CUES)? else {
                return Ok(Err(Unplannable));
            };
            layout.cues_parsed = true;
            match cue_positions(&body)? {
                Some(cues) => layout.cues = cues,
                None => return Ok(Err(Unplannable)),
            }
        }
        _ => {}
    }
    Ok(Ok(()))
}

/// The (SeekID, SeekPosition) entries of a SeekHead body.
fn seek_entries(body: &[u8]) -> Result<Vec<(u32, u64)>, ProbeError> {
    let bad = || ProbeError::Corrupt("matroska: malformed SeekHead".into());
    let mut entries = Vec::new();
    for child in children(body) {
        let (id, seek) = child.map_err(|()| bad())?;
        if id != SEEK_ID {
            continue;
        }
        let (mut seek_id, mut position) = (None, None);
        for field in children(seek) {
            let (id, data) = field.map_err(|()| bad())?;
            match id {
                SEEK_ID_ID => match read_id(data) {
                    Vint::Ok(v, n) if n == data.len() => seek_id = Some(v),
                    _ => return Err(bad()),
                },
                SEEK_POSITION_ID => position = Some(read_uint(data).ok_or_else(bad)?),
                _ => {}
            }
        }
        if let (Some(id), Some(pos)) = (seek_id, position) {
            entries.push((id, pos));
        }
    }
    Ok(entries)
}

/// (CueTime, CueClusterPosition, CueTrack or 0) of every cue track position in a Cues body, positions relative
/// to the Segment data; `None` beyond [`MAX_CUE_POSITIONS`].
fn cue_positions(body: &[u8]) -> Result<Option<Vec<Cue>>, ProbeError> {
    let bad = || ProbeError::Corrupt("matroska: malformed Cues".into());
    let mut cues = Vec::new();
    for child in children(body) {
        let (id, point) = child.map_err(|()| bad())?;
        if id != CUE_POINT_ID {
            continue;
        }
        let mut time = None;
        let mut positions = Vec::new();
        for field in children(point) {
            let (id, data) = field.map_err(|()| bad())?;
            match id {
                CUE_TIME_ID => time = Some(read_uint(data).ok_or_else(bad)?),
                CUE_TRACK_POSITIONS_ID => {
                    let (mut track, mut position) = (0, None);
                    for f in children(data) {
                        let (id, data) = f.map_err(|()| bad())?;
                        match id {
                            CUE_CLUSTER_POSITION_ID => position = Some(read_uint(data).ok_or_else(bad)?),
                            CUE_TRACK_ID => track = read_uint(data).ok_or_else(bad)?,
                            _ => {}
                        }
                    }
                    if let Some(p) = position {
                        positions.push((p, track));
                    }
                }
                _ => {}
            }
            if positions.len() > MAX_CUE_POSITIONS {
                return Ok(None);
            }
        }
        let Some(time) = time else {
            return Err(bad());
        };
        if cues.len().saturating_add(positions.len()) > MAX_CUE_POSITIONS {
            return Ok(None);
        }
        cues.extend(positions.into_iter().map(|(p, track)| (time, p, track)));
    }
    Ok(Some(cues))
}

/// Key frames of track `track` as its cue points list them (muxers cue the key frames of the video track), in
/// milliseconds from the track's first cue point; empty when the file has no Cues or they cannot be read.
pub(crate) fn cue_key_frames(src: &dyn ReadAt, track: u64) -> Vec<u64> {
    let Ok(Ok((layout, _, _))) = walk(&mut Reader::new(src)) else {
        return Vec::new();
    };
    let scale = layout.timestamp_scale.unwrap_or(DEFAULT_TIMESTAMP_SCALE) as f64 / 1e9;
    let times: Vec<f64> = layout
        .cues
        .iter()
        .filter(|c| c.2 == track)
        .map(|c| c.0 as f64 * scale)
        .collect();
    let origin = times.iter().copied().fold(f64::INFINITY, f64::min);
    crate::probe::key_frame_list(times, origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_one_to_four_bytes() {
        assert_eq!(read_id(&[0xBB]), Vint::Ok(0xBB, 1));
        assert_eq!(read_id(&[0x4D, 0xBB, 0xFF]), Vint::Ok(0x4DBB, 2));
        assert_eq!(read_id(&[0x2A, 0xD7, 0xB1]), Vint::Ok(0x2AD7B1, 3));
        assert_eq!(read_id(&[0x1A, 0x45, 0xDF, 0xA3]), Vint::Ok(EBML_ID, 4));
        assert_eq!(read_id(&[0x1A, 0x45, 0xDF]), Vint::Short);
        assert_eq!(read_id(&[]), Vint::Short);
        // IDs are at most 4 bytes long.
        assert_eq!(read_id(&[0x08, 1, 2, 3, 4]), Vint::Invalid);
        assert_eq!(read_id(&[0x00, 1, 2, 3, 4]), Vint::Invalid);
    }

    #[test]
    fn sizes_of_one_to_eight_bytes() {
        assert_eq!(read_size(&[0x80]), Vint::Ok(Some(0), 1));
        assert_eq!(read_size(&[0x81]), Vint::Ok(Some(1), 1));
        assert_eq!(read_size(&[0xFE]), Vint::Ok(Some(126), 1));
        assert_eq!(read_size(&[0xFF]), Vint::Ok(None, 1));
        assert_eq!(read_size(&[0x40, 0x02]), Vint::Ok(Some(2), 2));
        assert_eq!(read_size(&[0x7F, 0xFF]), Vint::Ok(None, 2));
        // Zero-length data with a long encoding.
        assert_eq!(read_size(&[0x01, 0, 0, 0, 0, 0, 0, 0]), Vint::Ok(Some(0), 8));
        assert_eq!(
            read_size(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]),
            Vint::Ok(Some(0x23_4567_89AB_CDEF), 8)
        );
        // The largest known size, and the reserved unknown size 0x01FFFFFFFFFFFFFF.
        assert_eq!(
            read_size(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]),
            Vint::Ok(Some((1 << 56) - 2), 8)
        );
        assert_eq!(read_size(&0x01FF_FFFF_FFFF_FFFFu64.to_be_bytes()), Vint::Ok(None, 8));
        assert_eq!(read_size(&[0x01, 0xFF, 0xFF]), Vint::Short);
        assert_eq!(read_size(&[0x00, 0xFF]), Vint::Invalid);
        assert_eq!(read_size(&[]), Vint::Short);
    }

    #[test]
    fn headers_and_children() {
        // Void (0xEC) of 2 bytes, then a CueTime (0xB3) with an 8-byte size of 1.
        let body = [0xEC, 0x82, 0, 0, 0xB3, 0x01, 0, 0, 0, 0, 0, 0, 1, 7];
        assert_eq!(read_header(&body), Vint::Ok((0xEC, Some(2)), 2));
        let kids: Vec<_> = children(&body).collect();
        assert_eq!(kids, vec![Ok((0xEC, &[0u8, 0][..])), Ok((0xB3, &[7u8][..]))]);
        // A zero-length child.
        assert_eq!(children(&[0xB3, 0x80]).collect::<Vec<_>>(), vec![Ok((0xB3, &[][..]))]);
        // A child past the end of its parent, of unknown size, or with an invalid header: an error, then the end.
        assert_eq!(children(&[0xB3, 0x85, 1]).collect::<Vec<_>>(), vec![Err(())]);
        assert_eq!(children(&[0xB3, 0xFF, 1]).collect::<Vec<_>>(), vec![Err(())]);
        assert_eq!(children(&[0xB3, 0x00, 1]).collect::<Vec<_>>(), vec![Err(())]);
        assert_eq!(
            children(&[0x80, 0x80, 0x05]).collect::<Vec<_>>(),
            vec![Ok((0x80, &[][..])), Err(())]
        );
        assert_eq!(
            children(&0x01FF_FFFF_FFFF_FFFFu64.to_be_bytes()).collect::<Vec<_>>(),
            vec![Err(())]
        );
        assert_eq!(read_uint(&[]), Some(0));
        assert_eq!(read_uint(&[1, 0]), Some(256));
        assert_eq!(read_uint(&[0; 9]), None);
    }

    /// An element: ID bytes, a size coded on 8 bytes, the data.
    fn el(id: &[u8], data: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        v.push(0x01);
        v.extend_from_slice(&(data.len() as u64).to_be_bytes()[1..]);
        v.extend_from_slice(data);
        v
    }

    /// EBML header + Segment { SeekHead { Cues at `cues_rel` }, Info, Cluster × 3, Cues { 0 s, 2 s, 4 s } }.
    fn file(seek_position: Option<u64>) -> Vec<u8> {
        let ebml = el(&[0x1A, 0x45, 0xDF, 0xA3], &el(&[0x42, 0x82], b"webm"));
        let info = el(&[0x15, 0x49, 0xA9, 0x66], &el(&[0x2A, 0xD7, 0xB1], &[0x0F, 0x42, 0x40]));
        // Clusters of 100 data bytes: their Timestamp (ms) and padding.
        let cluster = |ms: u64| {
            el(
                &[0x1F, 0x43, 0xB6, 0x75],
                &[el(&[0xE7], &ms.to_be_bytes()), vec![0u8; 83]].concat(),
            )
        };
        let seek_head_len = el(
            &[0x11, 0x4D, 0x9B, 0x74],
            &el(
                &[0x4D, 0xBB],
                &[el(&[0x53, 0xAB], &[0; 4]), el(&[0x53, 0xAC], &[0; 8])].concat(),
            ),
        )
        .len();
        let first_cluster = (seek_head_len + info.len()) as u64;
        let cluster_len = cluster(0).len() as u64;
        let cues_rel = first_cluster + 3 * cluster_len;
        let cue = |ms: u64, rel: u64| {
            el(
                &[0xBB],
                &[
                    el(&[0xB3], &ms.to_be_bytes()),
                    el(&[0xB7], &[el(&[0xF7], &[1]), el(&[0xF1], &rel.to_be_bytes())].concat()),
                ]
                .concat(),
            )
        };
        let cues = el(
            &[0x1C, 0x53, 0xBB, 0x6B],
            &[
                cue(0, first_cluster),
                cue(2000, first_cluster + cluster_len),
                cue(4000, first_cluster + 2 * cluster_len),
            ]
            .concat(),
        );
        let seek_head = el(
            &[0x11, 0x4D, 0x9B, 0x74],
            &el(
                &[0x4D, 0xBB],
                &[
                    el(&[0x53, 0xAB], &[0x1C, 0x53, 0xBB, 0x6B]),
                    el(&[0x53, 0xAC], &seek_position.unwrap_or(cues_rel).to_be_bytes()),
                ]
                .concat(),
            ),
        );
        assert_eq!(seek_head.len(), seek_head_len);
        let body = [seek_head, info, cluster(0), cluster(2000), cluster(4000), cues].concat();
        [ebml, el(&[0x18, 0x53, 0x80, 0x67], &body)].concat()
    }

    #[test]
    fn plans_a_hand_made_file() {
        let f = file(None);
        let video = |a: f64, z: f64| Need::Video {
            start_secs: a,
            end_secs: z,
        };
        // EBML header 0..26, Segment header ..38, SeekHead ..92, Info ..118, Clusters at 118, 230, 342, Cues
        // 454..652.
        let planned = |a: f64, z: f64| {
            let mut ranges = plan(&mut Reader::new(&f), a, z).unwrap().unwrap();
            ranges.sort_unstable();
            ranges.dedup();
            ranges
        };
        let meta = [(0, 38), (38, 92), (92, 118), (454, 652)];
        // From the cue point at 2 s to the end of the clusters (no cue point past 7 s).
        let mut want = [&meta[..], &[(118, 230), (230, 652)]].concat();
        want.sort_unstable();
        assert_eq!(planned(4.0, 6.0), want);
        // From the first cluster to the end of the one at 4 s, the first cue point past 2 s.
        let mut want = [&meta[..], &[(118, 230), (118, 454)]].concat();
        want.sort_unstable();
        assert_eq!(planned(0.0, 1.0), want);
        // Everything is within MERGE_GAP: one range over the whole file.
        let ranges = matroska_needed_ranges(&f, video(4.0, 6.0)).unwrap().unwrap();
        assert_eq!(ranges, vec![(0, f.len() as u64)]);
        assert_eq!(matroska_needed_ranges(&f, Need::Audio).unwrap(), None);
        // The SeekHead pointing past the end, or at something other than Cues.
        assert!(matroska_needed_ranges(&file(Some(1 << 40)), video(0.0, 2.0)).is_err());
        assert!(!matches!(
            matroska_needed_ranges(&file(Some(3)), video(0.0, 2.0)),
            Ok(Some(_))
        ));
        // Every truncation and every single-byte change of the header area: no panic.
        for cut in 0..f.len() {
            let _ = matroska_needed_ranges(&f[..cut].to_vec(), video(2.0, 4.0));
        }
        for at in 0..f.len().min(200) {
            for x in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
                let mut g = f.clone();
                g[at] = x;
                let _ = matroska_needed_ranges(&g, video(2.0, 4.0));
            }
        }
    }

    #[test]
    fn merging() {
        let m = merge(
            vec![(10, 20), (0, 5), (30, 25), (5, 40), (1 << 20, 2 << 20), (90, 1 << 30)],
            1 << 21,
        );
        assert_eq!(m, vec![(0, 40), (1 << 20, 2 << 20)]);
    }
}
