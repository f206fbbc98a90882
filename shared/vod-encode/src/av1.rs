//! AV1 encoding of one rung with rav1e: the [`VideoEncoder`] of `VideoCodec::Av1`.
//!
//! One [`Av1Encoder`] per rung: bitrate-targeted single pass, speed preset from the rung, tiles matched to
//! the thread count, scene-cut detection off and a key frame forced at each segment's first frame (the
//! maximum key frame interval is longer than the chunk, so no other key frame appears). rav1e emits one
//! temporal unit per shown frame in input order, so samples need no composition offset. The temporal
//! delimiter OBU rav1e puts at the head of each unit is removed, as AV1-in-ISOBMFF asks. 10-bit pictures (of
//! deeper sources) are encoded as Main 10 with the source's colour description in the sequence header.

use num_traits::FromPrimitive;
use rav1e::prelude::{
    ChromaSampling, ChromaticityPoint, ColorDescription, ColorPrimaries, Config, ContentLight, Context, EncoderConfig,
    EncoderStatus, FrameParameters, FrameType, FrameTypeOverride, MasteringDisplay, MatrixCoefficients, PixelRange,
    Rational, SceneDetectionSpeed, TransferCharacteristics,
};

use vod_cmaf::CodecConfig;

use crate::encoder::{EncodedFrame, VideoEncoder, VideoSettings};
use crate::scale::Picture;
use crate::EncodeError;

/// A rav1e encoding session for one rung, of 8-bit (`u8`) or 10-bit (`u16`) pictures.
pub(crate) struct Av1Encoder<T: rav1e::Pixel> {
    ctx: Context<T>,
    colour: Option<vod_cmaf::Colour>,
    /// `seq_level_idx` of the sequence header.
    level: u8,
    width: usize,
    height: usize,
    out: Vec<EncodedFrame>,
}

/// The encoder for a rung's pictures: 10-bit when the settings say so.
pub(crate) fn av1_encoder(s: &VideoSettings, speed: u8) -> Result<Box<dyn VideoEncoder>, EncodeError> {
    Ok(if s.depth > 8 {
        Box::new(Av1Encoder::<u16>::new(s, speed)?)
    } else {
        Box::new(Av1Encoder::<u8>::new(s, speed)?)
    })
}

impl<T: rav1e::Pixel> Av1Encoder<T> {
    pub(crate) fn new(s: &VideoSettings, speed: u8) -> Result<Self, EncodeError> {
        let mut enc = EncoderConfig::with_speed_preset(speed.min(10));
        enc.width = s.width as usize;
        enc.height = s.height as usize;
        enc.bit_depth = if s.depth > 8 { 10 } else { 8 };
        enc.chroma_sampling = ChromaSampling::Cs420;
        // rav1e knows every H.273 code point AV1 has; one it does not is left unspecified.
        let colour = s.colour.and_then(|c| {
            Some((
                c,
                ColorDescription {
                    color_primaries: ColorPrimaries::from_u8(c.primaries)?,
                    transfer_characteristics: TransferCharacteristics::from_u8(c.transfer)?,
                    matrix_coefficients: MatrixCoefficients::from_u8(c.matrix)?,
                },
            ))
        });
        if let Some((c, description)) = colour {
            enc.color_description = Some(description);
            enc.pixel_range = if c.full_range {
                PixelRange::Full
            } else {
                PixelRange::Limited
            };
            // HDR10's static metadata as AV1 metadata OBUs (the sample entry gets `mdcv`/`clli` from the same).
            enc.mastering_display = c.mastering.map(|m| {
                // mdcv's units → AV1's: chromaticity 0.00002 → 0.16 fixed point, luminance 0.0001 cd/m² → 24.8
                // (max) and 18.14 (min) fixed point.
                let point = |(x, y): (u16, u16)| ChromaticityPoint {
                    x: (u32::from(x) * 65_536 / 50_000).min(65_535) as u16,
                    y: (u32::from(y) * 65_536 / 50_000).min(65_535) as u16,
                };
                MasteringDisplay {
                    primaries: m.primaries.map(point),
                    white_point: point(m.white_point),
                    max_luminance: (u64::from(m.max_luminance) * 256 / 10_000).min(u64::from(u32::MAX)) as u32,
                    min_luminance: (u64::from(m.min_luminance) * 16_384 / 10_000).min(u64::from(u32::MAX)) as u32,
                }
            });
            enc.content_light = c.light.map(|l| ContentLight {
                max_content_light_level: l.max_cll,
                max_frame_average_light_level: l.max_fall,
            });
        }
        enc.time_base = Rational::new(u64::from(s.frame_rate.1), u64::from(s.frame_rate.0));
        enc.bitrate = i32::try_from(u64::from(s.bitrate_kbps) * 1000).unwrap_or(i32::MAX);
        // In bitrate mode `quantizer` is the rate controller's ceiling (rav1e's default, 100, kept it from going
        // below about twice the target on ordinary content); 255 leaves it the whole range.
        enc.quantizer = 255;
        // Key frames only where forced. (A key-frame interval or a reservoir of one segment, to tell the rate
        // controller the cadence, makes rav1e 0.8's rate model overflow on static pictures.)
        enc.min_key_frame_interval = 0;
        enc.max_key_frame_interval = s.frames.saturating_add(1).max(1);
        enc.low_latency = true;
        // The real level (Annex A) for the picture size, frame rate and a peak of twice the target (rav1e's
        // one-pass rate control overshoots), not 31 ("unconstrained"), which hardware decoders may refuse.
        let fps = f64::from(s.frame_rate.0) / f64::from(s.frame_rate.1.max(1));
        let level = vod_cmaf::av1::level_for(s.width, s.height, fps, s.nominal_kbps.saturating_mul(2)).unwrap_or(31);
        enc.level_idx = Some(level);
        enc.tiles = s.threads.max(1);
        enc.speed_settings.scene_detection_mode = SceneDetectionSpeed::None;
        let cfg = Config::new().with_encoder_config(enc).with_threads(s.threads.max(1));
        let ctx = cfg
            .new_context::<T>()
            .map_err(|e| EncodeError::InvalidRequest(format!("AV1 encoder configuration: {e}")))?;
        Ok(Self {
            ctx,
            colour: colour.map(|(c, _)| c),
            level,
            width: s.width as usize,
            height: s.height as usize,
            out: Vec::new(),
        })
    }

    fn drain(&mut self) -> Result<(), EncodeError> {
        loop {
            match self.ctx.receive_packet() {
                Ok(pkt) => self.out.push(EncodedFrame {
                    input_index: pkt.input_frameno,
                    key: pkt.frame_type == FrameType::KEY,
                    data: vod_cmaf::av1::strip_temporal_delimiters(&pkt.data).into_owned(),
                }),
                Err(EncoderStatus::Encoded) => {}
                Err(EncoderStatus::NeedMoreData | EncoderStatus::LimitReached) => return Ok(()),
                Err(e) => return Err(EncodeError::Encode(format!("rav1e receive_packet: {e}"))),
            }
        }
    }
}

impl<T: rav1e::Pixel> VideoEncoder for Av1Encoder<T> {
    fn send(&mut self, pic: &Picture, key: bool) -> Result<(), EncodeError> {
        if pic.width != self.width || pic.height != self.height {
            return Err(EncodeError::Encode("picture size does not match the encoder".into()));
        }
        let bytes = pic.bytes_per_sample();
        if bytes != std::mem::size_of::<T>() {
            return Err(EncodeError::Encode("picture depth does not match the encoder".into()));
        }
        let mut frame = self.ctx.new_frame();
        for (i, plane) in frame.planes.iter_mut().enumerate() {
            let (pw, _) = pic.plane_size(i);
            // 10-bit samples are little-endian u16, as rav1e reads them.
            plane.copy_from_raw_u8(&pic.planes[i], pw * bytes, bytes);
        }
        let params = FrameParameters {
            frame_type_override: if key {
                FrameTypeOverride::Key
            } else {
                FrameTypeOverride::No
            },
            ..FrameParameters::default()
        };
        match self.ctx.send_frame((frame, params)) {
            Ok(()) => {}
            // The queue is drained after every frame, so a full queue means the encoder is stuck.
            Err(EncoderStatus::EnoughData) => return Err(EncodeError::Encode("rav1e refused a frame".into())),
            Err(e) => return Err(EncodeError::Encode(format!("rav1e send_frame: {e}"))),
        }
        self.drain()
    }

    fn finish(mut self: Box<Self>) -> Result<(CodecConfig, Vec<EncodedFrame>), EncodeError> {
        self.ctx.flush();
        self.drain()?;
        let codec = CodecConfig::Av1 {
            // Validated to be ≤ 16384 by the pipeline.
            width: u16::try_from(self.width).unwrap_or(u16::MAX),
            height: u16::try_from(self.height).unwrap_or(u16::MAX),
            // The AV1CodecConfigurationRecord (`av1C` payload); rav1e writes level 31 there whatever its sequence
            // header says, so the record gets the sequence header's level (tier: Main).
            av1c: {
                let mut record = self.ctx.container_sequence_header();
                if let Some(b) = record.get_mut(1) {
                    *b = (*b & 0xe0) | (self.level & 0x1f);
                }
                record
            },
            colour: self.colour,
        };
        Ok((codec, std::mem::take(&mut self.out)))
    }
}
