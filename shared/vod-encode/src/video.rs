//! The video chunk pipeline: decode → select onto the CFR grid → scale per rung → encode (each rung with the
//! encoder its codec names, through the `encoder` seam) → segments.
//!
//! The decoder runs on the calling thread and fans each selected, scaled picture out to one encoder thread
//! per rung over a bounded channel, so one decode feeds every rung.
//!
//! Rate control keeps its promise by measuring: a rung whose chunk delivered more than [`RATE_TOLERANCE`] off its
//! target is encoded again (from a fresh decode, only the rungs that missed) with the target corrected by what
//! was delivered, at most [`RATE_RETRIES`] times, keeping the pass closest to the target. Encoders whose one-pass
//! rate control is close already (x264 with VBV) rarely pay for it.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::Instant;

use vod_cmaf::{CodecConfig, Sample, TrackConfig};

use crate::encoder::{video_encoder, EncodedFrame, VideoCodec, VideoSettings};
use crate::scale::{Picture, Scaler};
use crate::select::GridSelector;
use crate::source::VideoSource;
use crate::timing::{duration_fraction, segment_start_frame, video_timescale};
use crate::{EncodeError, RenditionChunk, Rung, SegmentSamples, VideoChunkRequest};

/// Track id of every video rendition (one track per rendition file).
pub(crate) const VIDEO_TRACK_ID: u32 = 1;

/// Pictures queued per rung before the decoder waits for the encoder.
const QUEUE_DEPTH: usize = 4;

/// How far a chunk's delivered bitrate may be from its rung's target before the rung is encoded again.
pub(crate) const RATE_TOLERANCE: f64 = 0.08;
/// Extra passes for a rung that missed its target.
pub(crate) const RATE_RETRIES: usize = 2;
/// Chunks shorter than this (in seconds) are not re-encoded: one key frame dominates them.
const RATE_MIN_SECS: f64 = 1.0;

/// One segment of the chunk: number and first/end frame index on the CFR grid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentSpan {
    number: u32,
    start: u64,
    end: u64,
}

fn validate_rung(r: &Rung) -> Result<(), EncodeError> {
    let bad = |why: &str| EncodeError::InvalidRequest(format!("rung {:?}: {why}", r.name));
    if !(16..=16384).contains(&r.width) || !(16..=16384).contains(&r.height) {
        return Err(bad("width and height must be within 16..=16384"));
    }
    if (r.width | r.height) & 1 == 1 {
        return Err(bad("width and height must be even (4:2:0)"));
    }
    if r.bitrate_kbps == 0 || r.bitrate_kbps > 2_000_000 {
        return Err(bad("bitrate must be within 1..=2000000 kbps"));
    }
    r.codec.validate().map_err(|e| bad(&e))?;
    Ok(())
}

/// Segments of the request clipped to the presentation's `total_frames`.
pub(crate) fn plan(req: &VideoChunkRequest) -> Result<Vec<SegmentSpan>, EncodeError> {
    let (num, den) = req.frame_rate;
    if num == 0 || den == 0 {
        return Err(EncodeError::InvalidRequest(
            "frame rate must be a positive fraction".into(),
        ));
    }
    if duration_fraction(req.segment_duration).is_none() {
        return Err(EncodeError::InvalidRequest(
            "segment duration must be positive and finite".into(),
        ));
    }
    if req.first_segment >= req.end_segment {
        return Err(EncodeError::InvalidRequest("empty segment range".into()));
    }
    if req.rungs.is_empty() {
        return Err(EncodeError::InvalidRequest("no rungs".into()));
    }
    req.rungs.iter().try_for_each(validate_rung)?;
    let spans: Vec<SegmentSpan> = (req.first_segment..req.end_segment)
        .map(|k| SegmentSpan {
            number: k,
            start: segment_start_frame(k, req.segment_duration, req.frame_rate),
            end: segment_start_frame(k.saturating_add(1), req.segment_duration, req.frame_rate).min(req.total_frames),
        })
        .filter(|s| s.start < s.end)
        .collect();
    if spans.is_empty() {
        return Err(EncodeError::InvalidRequest(
            "the chunk starts past the end of the presentation".into(),
        ));
    }
    Ok(spans)
}

/// Messages to a rung's encoder thread: a picture and whether it starts a segment.
type Job = (Arc<Picture>, bool);

/// A rung encoder's result: the track's codec configuration and the encoded frames.
type RungOutput = (CodecConfig, Vec<EncodedFrame>);

/// The last picture scaled for a rung, keyed by the decoded frame's serial number.
type CachedPicture = (u64, Arc<Picture>);

fn rung_worker(codec: VideoCodec, settings: VideoSettings, rx: Receiver<Job>) -> Result<RungOutput, EncodeError> {
    let mut enc = video_encoder(codec, &settings)?;
    for (pic, key) in rx {
        enc.send(&pic, key)?;
    }
    enc.finish()
}

/// Bits per second a chunk delivered.
fn delivered_bps(chunk: &RenditionChunk, frame_rate: (u32, u32)) -> f64 {
    let (bytes, frames) = chunk
        .segments
        .iter()
        .flat_map(|s| &s.samples)
        .fold((0u64, 0u64), |(b, n), x| (b + x.data.len() as u64, n + 1));
    let secs = frames as f64 * f64::from(frame_rate.1) / f64::from(frame_rate.0.max(1));
    if secs > 0.0 {
        bytes as f64 * 8.0 / secs
    } else {
        0.0
    }
}

/// See [`crate::encode_video_chunk`].
pub(crate) fn encode_video_chunk(req: &VideoChunkRequest) -> Result<Vec<RenditionChunk>, EncodeError> {
    let spans = plan(req)?;
    let frames: u64 = spans.iter().map(|s| s.end - s.start).sum();
    let secs = frames as f64 * f64::from(req.frame_rate.1) / f64::from(req.frame_rate.0);
    let nominal: Vec<u32> = req.rungs.iter().map(|r| r.bitrate_kbps).collect();
    let mut best = encode_pass(req, req.rungs, &nominal, &spans)?;
    if secs < RATE_MIN_SECS {
        return Ok(best);
    }
    // Per rung: the (rate controller target, delivered) kb/s of every pass so far.
    let mut tries: Vec<Vec<(f64, f64)>> = req
        .rungs
        .iter()
        .zip(&best)
        .map(|(r, c)| vec![(f64::from(r.bitrate_kbps), delivered_bps(c, req.frame_rate) / 1000.0)])
        .collect();
    let off = |target: u32, got: f64| (got / f64::from(target) - 1.0).abs();
    for _ in 0..RATE_RETRIES {
        let mut again: Vec<(usize, Rung)> = Vec::new();
        for (i, (rung, t)) in req.rungs.iter().zip(&tries).enumerate() {
            let want = f64::from(rung.bitrate_kbps);
            let Some(&(used, got)) = t.last() else { continue };
            if off(rung.bitrate_kbps, delivered_bps(&best[i], req.frame_rate) / 1000.0) <= RATE_TOLERANCE || got <= 0.0
            {
                continue;
            }
            // An encoder that did not answer a large change of target (static pictures need fewer bits than any
            // target) is not asked again.
            if let [.., (u0, g0), (u1, g1)] = t[..] {
                if (u1 / u0 - 1.0).abs() > 0.25 && (g1 / g0 - 1.0).abs() < 0.05 {
                    continue;
                }
            }
            // The next target: proportional from the last pass, or along the line through the last two (log-log).
            let next = match t.len() {
                1 => used * want / got,
                n => {
                    let ((u0, g0), (u1, g1)) = (t[n - 2], t[n - 1]);
                    let slope = (g1.ln() - g0.ln()) / (u1.ln() - u0.ln());
                    if slope.is_finite() && slope > 0.1 {
                        (u1.ln() + (want.ln() - g1.ln()) / slope).exp()
                    } else {
                        used * want / got
                    }
                }
            };
            let next = next.clamp(want / 8.0, want * 4.0).round().max(1.0) as u32;
            again.push((
                i,
                Rung {
                    bitrate_kbps: next,
                    ..rung.clone()
                },
            ));
        }
        if again.is_empty() {
            break;
        }
        let rungs: Vec<Rung> = again.iter().map(|(_, r)| r.clone()).collect();
        let nominals: Vec<u32> = again.iter().map(|(i, _)| nominal[*i]).collect();
        let redone = encode_pass(req, &rungs, &nominals, &spans)?;
        for ((i, r), chunk) in again.iter().zip(redone) {
            let got = delivered_bps(&chunk, req.frame_rate) / 1000.0;
            tracing::info!(rung = %r.name, target = nominal[*i], asked = r.bitrate_kbps, delivered = got, "rate pass");
            tries[*i].push((f64::from(r.bitrate_kbps), got));
            let before = delivered_bps(&best[*i], req.frame_rate) / 1000.0;
            if off(nominal[*i], got) < off(nominal[*i], before) {
                best[*i] = chunk;
            }
        }
    }
    Ok(best)
}

/// One pass of the pipeline for `rungs` (`nominal`: each rung's own target, what the stream signals).
pub(crate) fn encode_pass(
    req: &VideoChunkRequest,
    rungs: &[Rung],
    nominal: &[u32],
    spans: &[SegmentSpan],
) -> Result<Vec<RenditionChunk>, EncodeError> {
    let (first, last) = match (spans.first(), spans.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => return Err(EncodeError::InvalidRequest("empty chunk".into())),
    };
    let (start, end) = (first.start, last.end);
    let (timescale, frame_duration) = video_timescale(req.frame_rate)
        .ok_or_else(|| EncodeError::InvalidRequest("frame rate must be a positive fraction".into()))?;
    let threads = req.threads.max(1);
    let started = Instant::now();

    let mut source = VideoSource::open(req.source, threads)?;
    // Sources of more than 8 bits keep 10 bits and their colour description in AV1 (Main 10); H.264 rungs are
    // 8-bit (High profile).
    let (source_depth, colour) = source.colour();
    let depth_of = |codec: VideoCodec| match codec {
        VideoCodec::Av1 { .. } if source_depth > 8 => 10,
        _ => 8,
    };
    let mut selector = GridSelector::new(req.frame_rate, source.time_base, source.origin, start, end);
    let mut pending = position_at_chunk(&mut source, req, &mut selector, start, threads)?;
    if pending.is_none() && colour.is_some() {
        // The chunk's first frame, decoded now for its HDR metadata (it is pushed first all the same).
        pending = source.next_frame()?;
    }
    // HDR10 static metadata rides on the frames (the HEVC decoder attaches its SEI to each): the chunk's first
    // frame gives it to the AV1 rungs.
    let colour = colour.map(|c| {
        let (mastering, light) = pending
            .as_ref()
            .map_or((None, None), |f| crate::source::hdr_metadata(&f.frame));
        vod_cmaf::Colour { mastering, light, ..c }
    });
    // The 8-bit (SDR) rungs of an HDR source see it tone-mapped, once per frame for all of them.
    let mut sdr = crate::tonemap::SdrFrames::new(&source, threads);

    let key_frames: Vec<u64> = spans.iter().map(|s| s.start).collect();
    let results = std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(rungs.len());
        let mut handles = Vec::with_capacity(rungs.len());
        for (rung, nominal) in rungs.iter().zip(nominal) {
            let (tx, rx) = sync_channel::<Job>(QUEUE_DEPTH);
            let settings = VideoSettings {
                width: rung.width,
                height: rung.height,
                bitrate_kbps: rung.bitrate_kbps,
                nominal_kbps: *nominal,
                frame_rate: req.frame_rate,
                threads,
                frames: end - start,
                depth: depth_of(rung.codec),
                colour: if depth_of(rung.codec) > 8 { colour } else { None },
            };
            senders.push(tx);
            let codec = rung.codec;
            handles.push(scope.spawn(move || rung_worker(codec, settings, rx)));
        }
        let mut scalers: Vec<(Scaler, Option<CachedPicture>)> = rungs
            .iter()
            .map(|r| {
                (
                    Scaler::with_depth(r.width, r.height, req.rotation, depth_of(r.codec)),
                    None,
                )
            })
            .collect();

        let mut emit = |index: u64, (serial, frame): &(u64, ffmpeg_next::frame::Video)| -> Result<(), EncodeError> {
            let key = key_frames.binary_search(&index).is_ok();
            for (((scaler, cache), tx), rung) in scalers.iter_mut().zip(&senders).zip(rungs) {
                let pic = match cache {
                    Some((s, pic)) if *s == *serial => Arc::clone(pic),
                    _ => {
                        let input = if depth_of(rung.codec) == 8 {
                            sdr.frame(*serial, frame)?
                        } else {
                            frame
                        };
                        let pic = Arc::new(scaler.scale(input)?);
                        *cache = Some((*serial, Arc::clone(&pic)));
                        pic
                    }
                };
                // A closed channel means that encoder failed: its error is collected on join.
                tx.send((pic, key))
                    .map_err(|_| EncodeError::Encode("encoder stopped".into()))?;
            }
            Ok(())
        };
        let decoded: Result<(), EncodeError> = (|| {
            let mut serial = 0u64;
            if let Some(f) = pending.take() {
                selector.push(f.pts, (serial, f.frame), &mut emit)?;
            }
            while !selector.done() {
                let Some(f) = source.next_frame()? else { break };
                serial += 1;
                selector.push(f.pts, (serial, f.frame), &mut emit)?;
            }
            if !selector.finish(&mut emit)? {
                return Err(EncodeError::Decode("no decodable video frame in the chunk".into()));
            }
            Ok(())
        })();
        drop(senders);
        let encoded: Vec<Result<RungOutput, EncodeError>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(EncodeError::Encode("a video encoder panicked".into())))
            })
            .collect();
        // An encoder error explains a decode-side "encoder stopped"; report it first.
        let encoded: Vec<RungOutput> = encoded.into_iter().collect::<Result<_, _>>()?;
        decoded?;
        Ok::<_, EncodeError>(encoded)
    })?;

    let elapsed = started.elapsed().as_secs_f64();
    tracing::info!(
        frames = end - start,
        decoded = source.frames_decoded(),
        rungs = rungs.len(),
        seconds = elapsed,
        fps = (end - start) as f64 / elapsed.max(1e-9),
        "video chunk encoded"
    );

    rungs
        .iter()
        .zip(results)
        .map(|(rung, (codec, frames))| {
            let segments = group(spans, start, frame_duration, frames)?;
            Ok(RenditionChunk {
                rung: rung.name.clone(),
                track: TrackConfig {
                    track_id: VIDEO_TRACK_ID,
                    timescale,
                    codec,
                    language: "und".into(),
                },
                segments,
            })
        })
        .collect()
}

/// Seeks (when the chunk does not start at frame 0) to the key frame at or before the chunk's first
/// output time, and returns the first decoded frame. If a seek lands after that time, it seeks further
/// back, and finally reopens the source and decodes from the start.
fn position_at_chunk(
    source: &mut VideoSource,
    req: &VideoChunkRequest,
    selector: &mut GridSelector<(u64, ffmpeg_next::frame::Video)>,
    start: u64,
    threads: usize,
) -> Result<Option<crate::source::DecodedFrame>, EncodeError> {
    if start == 0 {
        return Ok(None);
    }
    let (tn, td) = (i128::from(source.time_base.0), i128::from(source.time_base.1));
    let (fnum, fden) = (i128::from(req.frame_rate.0), i128::from(req.frame_rate.1));
    let ticks_per_second = td / tn.max(1);
    let target = i128::from(start).saturating_mul(fden).saturating_mul(td) / fnum.saturating_mul(tn).max(1);
    // Frames more than a second before the chunk's first output time are never selected (the selector
    // holds only the latest frame at or before it), so the decoder may skip the unreferenced ones.
    let unshown = i128::from(source.origin)
        .saturating_add(target)
        .saturating_sub(ticks_per_second.max(1));
    let unshown = i64::try_from(unshown).unwrap_or(if unshown < 0 { i64::MIN } else { i64::MAX });
    for back_seconds in [0i128, 2, 10, 60] {
        let ts = i128::from(source.origin)
            .saturating_add(target)
            .saturating_sub(back_seconds.saturating_mul(ticks_per_second.max(1)));
        let ts = i64::try_from(ts).unwrap_or(if ts < 0 { i64::MIN } else { i64::MAX });
        if source.seek(ts).is_err() {
            break;
        }
        source.skip_unshown_before(unshown);
        match source.next_frame()? {
            Some(f) if selector.covers_next(f.pts) => return Ok(Some(f)),
            _ => tracing::debug!(back_seconds, "seek landed after the chunk start; seeking further back"),
        }
    }
    *source = VideoSource::open(req.source, threads)?;
    source.skip_unshown_before(unshown);
    Ok(None)
}

/// Groups encoded frames (in input order, the first being output frame `start`) into segment samples.
fn group(
    spans: &[SegmentSpan],
    start: u64,
    frame_duration: u32,
    frames: Vec<EncodedFrame>,
) -> Result<Vec<SegmentSamples>, EncodeError> {
    let expected: u64 = spans.iter().map(|s| s.end - s.start).sum();
    if frames.len() as u64 != expected {
        return Err(EncodeError::Encode(format!(
            "encoder returned {} frames, expected {expected}",
            frames.len()
        )));
    }
    let mut frames = frames.into_iter();
    let mut out = Vec::with_capacity(spans.len());
    for span in spans {
        let mut samples = Vec::with_capacity((span.end - span.start) as usize);
        for index in span.start..span.end {
            let Some(f) = frames.next() else {
                return Err(EncodeError::Encode("encoder returned too few frames".into()));
            };
            if start + f.input_index != index {
                return Err(EncodeError::Encode("encoder returned frames out of order".into()));
            }
            if f.key != (index == span.start) {
                return Err(EncodeError::Encode(format!(
                    "frame {index}: key frame placement differs from segments"
                )));
            }
            samples.push(Sample {
                data: f.data,
                duration: frame_duration,
                is_sync: f.key,
                composition_offset: 0,
            });
        }
        out.push(SegmentSamples {
            number: span.number,
            base_media_decode_time: span.start.saturating_mul(u64::from(frame_duration)),
            samples,
        });
    }
    Ok(out)
}
