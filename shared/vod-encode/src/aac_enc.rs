//! AAC-LC by libavcodec's native encoder: the [`AudioEncoder`] of `AudioCodec::Aac` — 48 kHz, 1024-sample packets,
//! the AudioSpecificConfig from the encoder's global header, and its delay (`initial_padding`, 1024 samples) as the
//! track's priming, which the muxer trims with an edit list so AAC starts exactly where the source (and Opus) does.
use ffmpeg::format::{sample::Type as SampleType, Sample as SampleFormat};
use ffmpeg::{codec, ChannelLayout, Packet};
use ffmpeg_next as ffmpeg;
use vod_cmaf::CodecConfig;

use crate::encoder::{AudioEncoder, EncodedAudio};
use crate::EncodeError;

/// The output rate: 48 kHz like Opus, so both tracks share one timescale and one segment grid.
const RATE: u32 = 48_000;

fn failed(what: &str, e: ffmpeg::Error) -> EncodeError {
    EncodeError::Encode(format!("aac {what}: {e}"))
}

/// libavcodec's AAC encoder, fed interleaved f32 and given whole 1024-sample frames (planar).
pub(crate) struct AacEncoder {
    enc: ffmpeg::encoder::Audio,
    channels: usize,
    layout: ChannelLayout,
    frame_size: usize,
    /// Interleaved samples not yet sent.
    buffer: Vec<f32>,
    /// Samples per channel sent (the next frame's pts).
    sent: i64,
    /// Input samples per channel received.
    samples_in: u64,
    packets: Vec<Vec<u8>>,
    asc: Vec<u8>,
    priming: u32,
}

impl AacEncoder {
    pub(crate) fn new(channels: u8, bitrate_kbps: u32) -> Result<Self, EncodeError> {
        crate::source::init()?;
        if !(1..=2).contains(&channels) {
            return Err(EncodeError::InvalidRequest(format!(
                "{channels} output channels: AAC output is mono or stereo"
            )));
        }
        if !(8..=512).contains(&bitrate_kbps) {
            return Err(EncodeError::InvalidRequest(
                "AAC bitrate must be within 8..=512 kbps".into(),
            ));
        }
        let aac = ffmpeg::encoder::find(codec::Id::AAC)
            .ok_or_else(|| EncodeError::InvalidRequest("this FFmpeg has no AAC encoder".into()))?;
        let mut enc = codec::context::Context::new_with_codec(aac)
            .encoder()
            .audio()
            .map_err(|e| failed("context", e))?;
        let layout = ChannelLayout::default(i32::from(channels));
        enc.set_rate(RATE as i32);
        enc.set_channel_layout(layout);
        enc.set_format(SampleFormat::F32(SampleType::Planar));
        enc.set_bit_rate(bitrate_kbps as usize * 1000);
        enc.set_time_base(ffmpeg::Rational::new(1, RATE as i32));
        // The AudioSpecificConfig goes into `esds`, not into ADTS headers on every packet.
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
        let mut opts = ffmpeg::Dictionary::new();
        opts.set("profile", "aac_low");
        let enc = enc.open_with(opts).map_err(|e| failed("open", e))?;
        // ffmpeg-next exposes neither the global header nor the encoder delay; both are plain fields of the opened
        // context, read once here.
        let (asc, priming) = unsafe {
            // SAFETY: the context is open and owned by `enc`; `extradata` points to `extradata_size` bytes (or is
            // null) for as long as the context lives, and is copied out before `enc` can change.
            let ctx = &*enc.as_ptr();
            let asc = match (ctx.extradata.is_null(), usize::try_from(ctx.extradata_size)) {
                (false, Ok(n)) if n > 0 => std::slice::from_raw_parts(ctx.extradata, n).to_vec(),
                _ => Vec::new(),
            };
            (asc, ctx.initial_padding)
        };
        if asc.len() < 2 {
            return Err(EncodeError::Encode(
                "the AAC encoder wrote no AudioSpecificConfig".into(),
            ));
        }
        let frame_size = enc.frame_size() as usize;
        if frame_size == 0 {
            return Err(EncodeError::Encode("the AAC encoder reports no frame size".into()));
        }
        Ok(Self {
            enc,
            channels: usize::from(channels),
            layout,
            frame_size,
            buffer: Vec::new(),
            sent: 0,
            samples_in: 0,
            packets: Vec::new(),
            asc,
            priming: u32::try_from(priming).unwrap_or(0),
        })
    }

    /// Sends every whole frame buffered (and, with `last`, the remainder as a short final frame).
    fn send_frames(&mut self, last: bool) -> Result<(), EncodeError> {
        let frame_len = self.frame_size * self.channels;
        let mut done = 0;
        while self.buffer.len() - done >= frame_len || (last && self.buffer.len() > done) {
            let n = ((self.buffer.len() - done) / self.channels).min(self.frame_size);
            let mut frame = ffmpeg::frame::Audio::new(SampleFormat::F32(SampleType::Planar), n, self.layout);
            frame.set_rate(RATE);
            for ch in 0..self.channels {
                let plane = frame.plane_mut::<f32>(ch);
                for (i, s) in plane.iter_mut().take(n).enumerate() {
                    *s = self.buffer[done + i * self.channels + ch];
                }
            }
            frame.set_pts(Some(self.sent));
            self.sent += n as i64;
            done += n * self.channels;
            self.enc.send_frame(&frame).map_err(|e| failed("send_frame", e))?;
            self.drain()?;
        }
        self.buffer.drain(..done);
        Ok(())
    }

    fn drain(&mut self) -> Result<(), EncodeError> {
        let mut packet = Packet::empty();
        loop {
            match self.enc.receive_packet(&mut packet) {
                Ok(()) => self.packets.push(packet.data().unwrap_or_default().to_vec()),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => return Ok(()),
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(e) => return Err(failed("receive_packet", e)),
            }
        }
    }
}

impl AudioEncoder for AacEncoder {
    fn sample_rate(&self) -> u32 {
        RATE
    }
    fn packet_samples(&self) -> u32 {
        self.frame_size as u32
    }
    fn push(&mut self, pcm: &[f32]) -> Result<(), EncodeError> {
        self.samples_in += (pcm.len() / self.channels) as u64;
        self.buffer.extend_from_slice(pcm);
        self.send_frames(false)
    }
    fn finish(mut self: Box<Self>, _input_sample_rate: u32) -> Result<EncodedAudio, EncodeError> {
        self.send_frames(true)?;
        self.enc.send_eof().map_err(|e| failed("flush", e))?;
        self.drain()?;
        // The packets cover priming + input (the encoder pads its last frame); the edit list presents the input.
        let needed = (self.samples_in + u64::from(self.priming)).div_ceil(self.frame_size as u64);
        if (self.packets.len() as u64) < needed {
            return Err(EncodeError::Encode(format!(
                "the AAC encoder returned {} packets for {} samples",
                self.packets.len(),
                self.samples_in
            )));
        }
        Ok(EncodedAudio {
            codec: CodecConfig::Aac {
                channels: self.channels as u8,
                sample_rate: RATE,
                asc: std::mem::take(&mut self.asc),
                priming: self.priming,
            },
            packets: std::mem::take(&mut self.packets),
            duration: self.samples_in,
        })
    }
}
