//! The audio pipeline: decode (libavcodec) → resample and remix to 48 kHz float (libswresample) → every audio
//! encoder asked (Opus 20 ms frames, AAC-LC 1024-sample frames) → packets grouped per segment. The source is
//! decoded once whatever the number of codecs.
//!
//! libavcodec rather than symphonia decodes: the video path already opens the source with libavformat,
//! libavcodec covers every audio codec a mezzanine may carry (HE-AAC, AC-3/E-AC-3, Opus, ALAC, PCM
//! variants...), and libavformat applies MP4 edit lists and encoder priming, which symphonia 0.6's MP4
//! reader does not (it would add AAC's 1024 priming samples). libswresample does rate conversion and
//! channel remixing (5.1 → stereo with the standard matrix, mono ↔ stereo) in one step, so rubato is not
//! needed either.
//!
//! Opus timing: `pre_skip` is the encoder lookahead; the track's duration (`duration_samples_48k`) is the
//! decoded source duration at 48 kHz. The encoder is fed that many samples and then silence until the
//! packets cover `pre_skip + duration` samples, so a player trimming `pre_skip` at the start and ending
//! at the duration gets every source sample.

use ffmpeg::{codec, format::Sample as SampleFormat, frame, media, software::resampling, ChannelLayout, Packet};
use ffmpeg_next as ffmpeg;
use vod_cmaf::{Sample, TrackConfig};

use crate::encoder::audio_encoder;
use crate::source::{check_codec, open_input, SourceFile};
use crate::timing::{duration_fraction, segment_start_sample};
use crate::{AudioOutput, AudioRequest, EncodeError, SegmentSamples};

/// Track id of the audio track (its own rendition file).
pub(crate) const AUDIO_TRACK_ID: u32 = 2;
/// How many read or decode errors in a row end decoding.
const MAX_CONSECUTIVE_ERRORS: u32 = 64;

/// See [`crate::encode_audio`].
pub(crate) fn encode_audio(req: &AudioRequest) -> Result<Vec<AudioOutput>, EncodeError> {
    let seg = duration_fraction(req.segment_duration)
        .ok_or_else(|| EncodeError::InvalidRequest("segment duration must be positive and finite".into()))?;
    if req.codecs.is_empty() {
        return Err(EncodeError::InvalidRequest("no audio codec asked".into()));
    }
    let mut encoders = req
        .codecs
        .iter()
        .map(|c| audio_encoder(*c, req.channels, req.bitrate_kbps))
        .collect::<Result<Vec<_>, _>>()?;
    let rate = encoders[0].sample_rate();
    if encoders.iter().any(|e| e.sample_rate() != rate) {
        return Err(EncodeError::InvalidRequest(
            "the audio encoders take different sample rates".into(),
        ));
    }
    let out_layout = ChannelLayout::default(i32::from(req.channels));
    let input_rate = decode(req.source, req.streams, out_layout, rate, |pcm| {
        for e in encoders.iter_mut() {
            e.push(pcm)?;
        }
        Ok(true)
    })?;
    let mut outputs = Vec::with_capacity(encoders.len());
    for (codec, encoder) in req.codecs.iter().zip(encoders) {
        let packet = encoder.packet_samples();
        let out = encoder.finish(input_rate)?;
        if out.duration == 0 {
            return Err(EncodeError::Decode("the audio stream is empty".into()));
        }
        outputs.push(AudioOutput {
            codec: *codec,
            track: TrackConfig {
                track_id: AUDIO_TRACK_ID,
                timescale: rate,
                codec: out.codec,
                language: req
                    .language
                    .filter(|l| l.len() == 3 && l.bytes().all(|b| b.is_ascii_lowercase()))
                    .unwrap_or("und")
                    .into(),
            },
            segments: group(out.packets, packet, rate, seg),
            duration_samples_48k: out.duration,
        });
    }
    Ok(outputs)
}

/// Where decoded samples go; false when it wants no more.
type Sink<'a> = &'a mut dyn FnMut(&[f32]) -> Result<bool, EncodeError>;

/// One decoded audio stream: its decoder, resampler and, when mixed with another, the samples not yet paired.
struct Lane {
    index: usize,
    decoder: codec::decoder::Audio,
    resampler: Option<Resampler>,
    pending: std::collections::VecDeque<f32>,
    decoded_any: bool,
}

impl Lane {
    fn open(stream: &ffmpeg::format::stream::Stream, accepted: &[String]) -> Result<Lane, EncodeError> {
        let codec_id = stream.parameters().id();
        check_codec("audio", codec_id, accepted)?;
        if codec::decoder::find(codec_id).is_none() {
            return Err(EncodeError::UnsupportedCodec(format!("{codec_id:?}")));
        }
        let decoder = codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| EncodeError::Decode(format!("decoder parameters: {e}")))?
            .decoder()
            .audio()
            .map_err(|e| EncodeError::UnsupportedCodec(format!("{codec_id:?}: {e}")))?;
        Ok(Lane {
            index: stream.index(),
            decoder,
            resampler: None,
            pending: Default::default(),
            decoded_any: false,
        })
    }

    /// Receives every frame the decoder has, each converted to `layout` at `rate`, handing them to `sink` (or,
    /// without one, keeping them in `pending`). False when the sink wants no more.
    fn drain(
        &mut self,
        layout: ChannelLayout,
        rate: u32,
        errors: &mut u32,
        sink: Option<Sink>,
    ) -> Result<bool, EncodeError> {
        let mut sink = sink;
        loop {
            let mut f = frame::Audio::empty();
            match self.decoder.receive_frame(&mut f) {
                Ok(()) => {
                    *errors = 0;
                    self.decoded_any = true;
                    if f.samples() == 0 {
                        continue;
                    }
                    let pcm = Resampler::for_frame(&mut self.resampler, &mut f, layout, rate)?.run(&f)?;
                    match sink.as_mut() {
                        Some(sink) => {
                            if !sink(&pcm)? {
                                return Ok(false);
                            }
                        }
                        None => self.pending.extend(pcm),
                    }
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => return Ok(true),
                Err(ffmpeg::Error::Eof) => return Ok(true),
                Err(e) => {
                    *errors += 1;
                    if *errors > MAX_CONSECUTIVE_ERRORS {
                        return Err(EncodeError::Decode(e.to_string()));
                    }
                }
            }
        }
    }
}

/// Decodes audio of the source, converted to interleaved f32 in `out_layout` at `out_rate`, handing the samples
/// to `sink` in decode order until it returns false. `streams` are audio stream ordinals (in the probe's order):
/// none for the source's main audio stream, one, or two mono streams mixed as left and right (or averaged for a
/// mono output). Returns the (first) source's sample rate.
fn decode(
    source: SourceFile,
    streams: &[u32],
    out_layout: ChannelLayout,
    out_rate: u32,
    mut sink: impl FnMut(&[f32]) -> Result<bool, EncodeError>,
) -> Result<u32, EncodeError> {
    let mut input = open_input(source)?;
    let accepted = &source.format.audio_codecs;
    let mut lanes = if streams.is_empty() {
        vec![Lane::open(
            &input.streams().best(media::Type::Audio).ok_or(EncodeError::NoAudio)?,
            accepted,
        )?]
    } else {
        if streams.len() > 2 {
            return Err(EncodeError::InvalidRequest(
                "at most two audio streams are mixed".into(),
            ));
        }
        let audio: Vec<_> = input
            .streams()
            .filter(|s| s.parameters().medium() == media::Type::Audio)
            .collect();
        streams
            .iter()
            .map(|&n| {
                let s = audio.get(n as usize).ok_or_else(|| {
                    EncodeError::InvalidRequest(format!("the source has no audio stream #{n} ({} found)", audio.len()))
                })?;
                Lane::open(s, accepted)
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let mixed = lanes.len() > 1;
    // Mixed streams are each decoded to mono, then paired sample by sample.
    let lane_layout = if mixed { ChannelLayout::MONO } else { out_layout };
    let stereo = out_layout.channels() == 2;
    let mut errors = 0u32;
    let sink: Sink = &mut sink;

    let mut wanted = true;
    while wanted {
        let mut packet = Packet::empty();
        match packet.read(&mut input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => {
                errors += 1;
                if errors > MAX_CONSECUTIVE_ERRORS {
                    return Err(EncodeError::Decode(format!("read: {e}")));
                }
                continue;
            }
        }
        let Some(lane) = lanes.iter_mut().find(|l| l.index == packet.stream()) else {
            continue;
        };
        if let Err(e) = lane.decoder.send_packet(&packet) {
            errors += 1;
            tracing::debug!(error = %e, "audio packet rejected");
            if errors > MAX_CONSECUTIVE_ERRORS {
                return Err(EncodeError::Decode(e.to_string()));
            }
            continue;
        }
        wanted = lane.drain(lane_layout, out_rate, &mut errors, (!mixed).then_some(&mut *sink))?;
        if mixed && wanted {
            wanted = pair(&mut lanes, stereo, sink, false)?;
        }
    }
    if wanted {
        for lane in lanes.iter_mut() {
            // Ignoring a failed EOF: draining below returns whatever the decoder still holds.
            let _ = lane.decoder.send_eof();
            if wanted {
                wanted = lane.drain(lane_layout, out_rate, &mut errors, (!mixed).then_some(&mut *sink))?;
            }
        }
    }
    if let Some(silent) = lanes.iter().position(|l| !l.decoded_any) {
        return Err(EncodeError::Decode(if mixed {
            format!("no decodable audio frame in audio stream #{}", streams[silent])
        } else {
            "no decodable audio frame".into()
        }));
    }
    if wanted {
        for lane in lanes.iter_mut() {
            if let Some(r) = lane.resampler.as_mut() {
                let tail = r.flush()?;
                if mixed {
                    lane.pending.extend(tail);
                } else {
                    sink(&tail)?;
                }
            }
        }
        if mixed {
            pair(&mut lanes, stereo, sink, true)?;
        }
    }
    Ok(lanes[0].decoder.rate())
}

/// Hands two mono lanes' samples out as stereo (left, right) or averaged to mono: the samples both lanes have, or
/// at the `end` all of them, the shorter lane padded with silence. False when the sink wants no more.
fn pair(lanes: &mut [Lane], stereo: bool, sink: Sink, end: bool) -> Result<bool, EncodeError> {
    let [left, right] = lanes else {
        return Err(EncodeError::InvalidRequest("two audio streams are paired".into()));
    };
    let n = if end {
        left.pending.len().max(right.pending.len())
    } else {
        left.pending.len().min(right.pending.len())
    };
    if n == 0 {
        return Ok(true);
    }
    let mut out = Vec::with_capacity(n * if stereo { 2 } else { 1 });
    for _ in 0..n {
        let (l, r) = (
            left.pending.pop_front().unwrap_or(0.0),
            right.pending.pop_front().unwrap_or(0.0),
        );
        if stereo {
            out.extend([l, r]);
        } else {
            out.push(0.5 * (l + r));
        }
    }
    sink(&out)
}

/// See [`crate::decode_speech_pcm`].
pub(crate) fn decode_pcm(req: &crate::PcmRequest) -> Result<Vec<i16>, EncodeError> {
    let window_ok = req.start_secs.is_finite()
        && req.end_secs.is_finite()
        && req.start_secs >= 0.0
        && req.end_secs > req.start_secs;
    if !(window_ok && (8000..=192_000).contains(&req.sample_rate)) {
        return Err(EncodeError::InvalidRequest("PCM window or rate out of range".into()));
    }
    let rate = req.sample_rate as f64;
    let (first, last) = (
        (req.start_secs * rate).round() as u64,
        (req.end_secs * rate).round() as u64,
    );
    let mut out = Vec::with_capacity((last - first).min(1 << 26) as usize);
    let mut position = 0u64;
    decode(req.source, &[], ChannelLayout::MONO, req.sample_rate, |pcm| {
        for s in pcm {
            if position >= first && position < last {
                out.push((s.clamp(-1.0, 1.0) * 32767.0).round() as i16);
            }
            position += 1;
        }
        Ok(position < last)
    })?;
    Ok(out)
}

/// Groups packets of `packet` samples at `rate` into segments: segment `k` starts with the first packet whose
/// decode time is at or after `ceil(k × segment_duration × rate)`.
fn group(packets: Vec<Vec<u8>>, packet: u32, rate: u32, seg: (u128, u128)) -> Vec<SegmentSamples> {
    let mut out: Vec<SegmentSamples> = Vec::new();
    let mut next_k = 0u64;
    let mut next_start = 0u64;
    for (i, data) in packets.into_iter().enumerate() {
        let t = i as u64 * u64::from(packet);
        if t >= next_start || out.is_empty() {
            // Skip segments too short to hold a packet (only with segments under 20 ms).
            while segment_start_sample(next_k + 1, seg, rate) <= t {
                next_k += 1;
            }
            out.push(SegmentSamples {
                number: u32::try_from(next_k).unwrap_or(u32::MAX),
                base_media_decode_time: t,
                samples: Vec::new(),
            });
            next_k += 1;
            next_start = segment_start_sample(next_k, seg, rate);
        }
        if let Some(s) = out.last_mut() {
            s.samples.push(Sample {
                data,
                duration: packet,
                is_sync: true,
                composition_offset: 0,
            });
        }
    }
    out
}

/// libswresample converting decoded frames to interleaved f32 at the output rate in the output layout.
struct Resampler {
    ctx: resampling::Context,
    in_format: SampleFormat,
    in_layout: ChannelLayout,
    in_rate: u32,
    out_rate: u32,
    out_layout: ChannelLayout,
    channels: usize,
}

impl Resampler {
    /// The resampler for this frame's format, rebuilt if the input format changed. Fills in a missing
    /// channel layout on the frame.
    fn for_frame<'a>(
        slot: &'a mut Option<Resampler>,
        f: &mut frame::Audio,
        out_layout: ChannelLayout,
        out_rate: u32,
    ) -> Result<&'a mut Resampler, EncodeError> {
        let channels = f.channels();
        if channels == 0 || f.rate() == 0 {
            return Err(EncodeError::Decode("audio frame without channels or rate".into()));
        }
        let mut layout = f.channel_layout();
        if layout.is_empty() || layout.channels() != i32::from(channels) {
            layout = ChannelLayout::default(i32::from(channels));
            f.set_channel_layout(layout);
        }
        let (fmt, rate) = (f.format(), f.rate());
        let stale = !matches!(slot, Some(r) if r.in_format == fmt && r.in_layout == layout && r.in_rate == rate && r.out_rate == out_rate);
        if stale {
            let ctx = resampling::Context::get(
                fmt,
                layout,
                rate,
                SampleFormat::F32(sample_packed()),
                out_layout,
                out_rate,
            )
            .map_err(|e| EncodeError::UnsupportedCodec(format!("cannot resample {fmt:?} {rate} Hz: {e}")))?;
            // Samples still buffered in a replaced resampler are dropped: formats only change at stream
            // discontinuities.
            *slot = Some(Resampler {
                ctx,
                in_format: fmt,
                in_layout: layout,
                in_rate: rate,
                out_rate,
                out_layout,
                channels: usize::try_from(out_layout.channels()).unwrap_or(1).max(1),
            });
        }
        slot.as_mut()
            .ok_or_else(|| EncodeError::Encode("resampler missing".into()))
    }

    fn run(&mut self, input: &frame::Audio) -> Result<Vec<f32>, EncodeError> {
        let capacity = input.samples() * self.out_rate as usize / self.in_rate.max(1) as usize + 1024;
        let mut out = frame::Audio::new(SampleFormat::F32(sample_packed()), capacity, self.out_layout);
        self.ctx
            .run(input, &mut out)
            .map_err(|e| EncodeError::Encode(format!("resample: {e}")))?;
        Ok(self.interleaved(&out))
    }

    fn flush(&mut self) -> Result<Vec<f32>, EncodeError> {
        let mut all = Vec::new();
        for _ in 0..64 {
            let mut out = frame::Audio::new(SampleFormat::F32(sample_packed()), 8192, self.out_layout);
            self.ctx
                .flush(&mut out)
                .map_err(|e| EncodeError::Encode(format!("resample flush: {e}")))?;
            if out.samples() == 0 {
                break;
            }
            all.extend(self.interleaved(&out));
        }
        Ok(all)
    }

    fn interleaved(&self, out: &frame::Audio) -> Vec<f32> {
        let n = out.samples() * self.channels;
        let bytes = out.data(0);
        bytes
            .chunks_exact(4)
            .take(n)
            .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

fn sample_packed() -> ffmpeg::format::sample::Type {
    ffmpeg::format::sample::Type::Packed
}
