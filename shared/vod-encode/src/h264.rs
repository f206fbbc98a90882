//! H.264 encoding of one rung with x264 through libavcodec: the [`VideoEncoder`] of `VideoCodec::H264`.
//!
//! High profile, 8-bit 4:2:0, one-pass ABR at the rung's bitrate with a VBV cap (peak 1.5× the target, a buffer
//! of two seconds at the target), x264's preset from the rung, scene-cut off and an IDR forced at each segment's
//! first frame (no key frame interval, so no other key frame appears; every GOP is closed). Every chunk of a rung
//! is encoded with the same settings, so they share one SPS/PPS and one init segment. No B-frames: frames come
//! out in input order, so samples need no composition offset. x264 repeats SPS/PPS before each IDR in its Annex B
//! output; the first pair becomes the track's `avcC` and every access unit is stored length-prefixed without them
//! (`vod_cmaf::avc`).

use ffmpeg::codec::{self, threading};
use ffmpeg::format::Pixel;
use ffmpeg::{picture, Dictionary, Rational};
use ffmpeg_next as ffmpeg;

use vod_cmaf::{avc, CodecConfig};

use crate::encoder::{EncodedFrame, VideoEncoder, VideoSettings, X264Preset};
use crate::scale::Picture;
use crate::EncodeError;

/// An x264 encoding session for one rung.
pub(crate) struct H264Encoder {
    enc: ffmpeg::encoder::Video,
    packet: ffmpeg::Packet,
    width: usize,
    height: usize,
    sent: i64,
    avcc: Option<Vec<u8>>,
    out: Vec<EncodedFrame>,
}

fn failed(what: &str, e: ffmpeg::Error) -> EncodeError {
    EncodeError::Encode(format!("x264 {what}: {e}"))
}

impl H264Encoder {
    pub(crate) fn new(s: &VideoSettings, preset: X264Preset) -> Result<Self, EncodeError> {
        crate::source::init()?;
        let x264 = ffmpeg::encoder::find_by_name("libx264")
            .ok_or_else(|| EncodeError::InvalidRequest("this FFmpeg has no libx264 encoder".into()))?;
        let mut ctx = codec::context::Context::new_with_codec(x264);
        ctx.set_threading(threading::Config {
            kind: threading::Type::Frame,
            count: s.threads.max(1),
            ..threading::Config::default()
        });
        let mut enc = ctx.encoder().video().map_err(|e| failed("context", e))?;
        let (num, den) = s.frame_rate;
        if num == 0 || den == 0 {
            return Err(EncodeError::InvalidRequest(format!("frame rate {num}/{den}")));
        }
        enc.set_width(s.width);
        enc.set_height(s.height);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(Rational::new(den as i32, num as i32));
        enc.set_frame_rate(Some(Rational::new(num as i32, den as i32)));
        let bps = u64::from(s.bitrate_kbps) * 1000;
        enc.set_bit_rate(bps as usize);
        enc.set_max_b_frames(0);
        // Key frames only where forced; a fixed interval so that every chunk of a rung writes the same SPS.
        enc.set_gop(i32::MAX as u32);
        let mut opts = Dictionary::new();
        opts.set("preset", preset.as_str());
        opts.set("profile", "high");
        opts.set("forced-idr", "1");
        // VBV caps from the rung's nominal target: the same in every chunk (x264 derives the level from them).
        let kbps = s.nominal_kbps;
        opts.set(
            "x264-params",
            &format!(
                "scenecut=0:open-gop=0:bframes=0:keyint=infinite:vbv-maxrate={}:vbv-bufsize={}:aud=0",
                kbps + kbps / 2,
                kbps * 2
            ),
        );
        let enc = enc.open_with(opts).map_err(|e| failed("open", e))?;
        Ok(Self {
            enc,
            packet: ffmpeg::Packet::empty(),
            width: s.width as usize,
            height: s.height as usize,
            sent: 0,
            avcc: None,
            out: Vec::new(),
        })
    }

    fn drain(&mut self) -> Result<(), EncodeError> {
        loop {
            match self.enc.receive_packet(&mut self.packet) {
                Ok(()) => {
                    let data = self.packet.data().unwrap_or_default();
                    if self.avcc.is_none() {
                        if let Ok(record) = avc::avcc_from_annex_b(data) {
                            self.avcc = Some(record);
                        }
                    }
                    let index = self.packet.pts().unwrap_or(-1);
                    let Ok(input_index) = u64::try_from(index) else {
                        return Err(EncodeError::Encode("x264 returned a packet without a timestamp".into()));
                    };
                    self.out.push(EncodedFrame {
                        input_index,
                        key: self.packet.is_key(),
                        data: avc::to_length_prefixed(data),
                    });
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => return Ok(()),
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(e) => return Err(failed("receive_packet", e)),
            }
        }
    }
}

impl VideoEncoder for H264Encoder {
    fn send(&mut self, pic: &Picture, key: bool) -> Result<(), EncodeError> {
        if pic.width != self.width || pic.height != self.height {
            return Err(EncodeError::Encode("picture size does not match the encoder".into()));
        }
        // A fresh frame per picture: the encoder may keep a reference to the one sent before.
        let mut frame = pic.to_frame();
        frame.set_pts(Some(self.sent));
        frame.set_kind(if key { picture::Type::I } else { picture::Type::None });
        self.sent += 1;
        self.enc.send_frame(&frame).map_err(|e| failed("send_frame", e))?;
        self.drain()
    }

    fn finish(mut self: Box<Self>) -> Result<(CodecConfig, Vec<EncodedFrame>), EncodeError> {
        self.enc.send_eof().map_err(|e| failed("flush", e))?;
        self.drain()?;
        let avcc = self
            .avcc
            .take()
            .ok_or_else(|| EncodeError::Encode("x264 produced no SPS/PPS".into()))?;
        let codec = CodecConfig::H264 {
            // Validated to be ≤ 16384 by the pipeline.
            width: u16::try_from(self.width).unwrap_or(u16::MAX),
            height: u16::try_from(self.height).unwrap_or(u16::MAX),
            avcc,
        };
        Ok((codec, std::mem::take(&mut self.out)))
    }
}
