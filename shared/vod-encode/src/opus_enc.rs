//! Opus by libopus: the [`AudioEncoder`] of `AudioCodec::Opus` — 48 kHz, 20 ms packets, the encoder's lookahead
//! as the `dOps` pre-skip, and silence padding so the packets cover pre-skip + the input.
use vod_cmaf::CodecConfig;

use crate::encoder::{AudioEncoder, EncodedAudio};
use crate::EncodeError;

/// Opus always runs at 48 kHz.
const RATE: u32 = 48_000;
/// 20 ms frames.
const FRAME: usize = 960;
/// Largest Opus packet (RFC 6716 recommends 4000 bytes as the buffer size).
const MAX_PACKET: usize = 4000;

/// libopus in 20 ms frames, tracking the input duration.
pub(crate) struct OpusEncoder {
    enc: opus::Encoder,
    channels: usize,
    buffer: Vec<f32>,
    packets: Vec<Vec<u8>>,
    /// Input samples (per channel) received.
    samples_in: u64,
    pre_skip: u16,
}

impl OpusEncoder {
    pub(crate) fn new(channels: u8, bitrate_kbps: u32) -> Result<Self, EncodeError> {
        let ch = match channels {
            1 => opus::Channels::Mono,
            2 => opus::Channels::Stereo,
            n => {
                return Err(EncodeError::InvalidRequest(format!(
                    "{n} output channels: Opus output is mono or stereo"
                )))
            }
        };
        if !(6..=510).contains(&bitrate_kbps) {
            return Err(EncodeError::InvalidRequest(
                "Opus bitrate must be within 6..=510 kbps".into(),
            ));
        }
        let err = |e: opus::Error| EncodeError::Encode(format!("opus: {e}"));
        let mut enc = opus::Encoder::new(RATE, ch, opus::Application::Audio).map_err(err)?;
        enc.set_bitrate(opus::Bitrate::Bits(
            i32::try_from(bitrate_kbps * 1000).unwrap_or(i32::MAX),
        ))
        .map_err(err)?;
        let lookahead = enc.get_lookahead().map_err(err)?;
        let pre_skip =
            u16::try_from(lookahead).map_err(|_| EncodeError::Encode("opus lookahead out of range".into()))?;
        Ok(Self {
            enc,
            channels: usize::from(channels),
            buffer: Vec::new(),
            packets: Vec::new(),
            samples_in: 0,
            pre_skip,
        })
    }

    fn encode(&mut self, pcm: &[f32]) -> Result<(), EncodeError> {
        self.samples_in += (pcm.len() / self.channels) as u64;
        self.buffer.extend_from_slice(pcm);
        let frame_len = FRAME * self.channels;
        let whole = self.buffer.len() / frame_len * frame_len;
        for chunk in self.buffer[..whole].chunks_exact(frame_len) {
            let packet = self
                .enc
                .encode_vec_float(chunk, MAX_PACKET)
                .map_err(|e| EncodeError::Encode(format!("opus: {e}")))?;
            self.packets.push(packet);
        }
        self.buffer.drain(..whole);
        Ok(())
    }

    /// Pads with silence until the packets cover `pre_skip + duration`; returns packets, pre-skip, duration.
    fn pad(mut self) -> Result<(Vec<Vec<u8>>, u16, u64), EncodeError> {
        let duration = self.samples_in;
        let needed_frames = (duration + u64::from(self.pre_skip)).div_ceil(FRAME as u64);
        let frame_len = FRAME * self.channels;
        let silence = vec![0.0f32; frame_len];
        while (self.packets.len() as u64) < needed_frames {
            let missing = frame_len - self.buffer.len() % frame_len;
            self.buffer.extend_from_slice(&silence[..missing]);
            let before = self.samples_in;
            self.encode(&[])?;
            self.samples_in = before;
        }
        Ok((self.packets, self.pre_skip, duration))
    }
}

impl AudioEncoder for OpusEncoder {
    fn sample_rate(&self) -> u32 {
        RATE
    }
    fn packet_samples(&self) -> u32 {
        FRAME as u32
    }
    fn push(&mut self, pcm: &[f32]) -> Result<(), EncodeError> {
        self.encode(pcm)
    }
    fn finish(self: Box<Self>, input_sample_rate: u32) -> Result<EncodedAudio, EncodeError> {
        let channels = u8::try_from(self.channels).unwrap_or(2);
        let (packets, pre_skip, duration) = (*self).pad()?;
        Ok(EncodedAudio {
            codec: CodecConfig::Opus {
                channels,
                pre_skip,
                input_sample_rate,
            },
            packets,
            duration,
        })
    }
}
