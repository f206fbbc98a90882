//! AV1 temporal units → where their tile data lies, for subsample encryption: walks the OBUs of each sample and
//! parses sequence headers, frame headers (with the reference-frame state they depend on) and tile group headers
//! just far enough to know the byte range of every tile's `decode_tile()` data (AV1 spec §5, §7.20, §7.21).
//!
//! Hand-written: the one complete Rust frame-header parser on crates.io (cros-codecs) asserts and slices
//! unchecked on malformed OBUs, and the others are alphas or stop before the tile group; this one checks every read.

use std::ops::Range;

/// Why a sample's OBUs could not be walked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AV1: {0}")]
pub struct Av1Error(pub &'static str);

type Result<T> = std::result::Result<T, Av1Error>;

const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;
const OBU_FRAME_HEADER: u8 = 3;
const OBU_TILE_GROUP: u8 = 4;
const OBU_FRAME: u8 = 6;
const OBU_REDUNDANT_FRAME_HEADER: u8 = 7;
const OBU_TILE_LIST: u8 = 8;

const NUM_REF_FRAMES: usize = 8;
const REFS_PER_FRAME: usize = 7;
const MAX_SEGMENTS: usize = 8;
const SEG_LVL_MAX: usize = 8;
const MAX_TILE_COLS: u32 = 64;
const MAX_TILE_ROWS: u32 = 64;
const PRIMARY_REF_NONE: u32 = 7;
const SELECT_SCREEN_CONTENT_TOOLS: u32 = 2;
const SELECT_INTEGER_MV: u32 = 2;

const KEY_FRAME: u32 = 0;
const INTER_FRAME: u32 = 1;
const INTRA_ONLY_FRAME: u32 = 2;
const SWITCH_FRAME: u32 = 3;

const SEGMENTATION_FEATURE_BITS: [u32; SEG_LVL_MAX] = [8, 6, 6, 6, 6, 3, 0, 0];
const SEGMENTATION_FEATURE_SIGNED: [bool; SEG_LVL_MAX] = [true, true, true, true, true, false, false, false];
const SEGMENTATION_FEATURE_MAX: [i32; SEG_LVL_MAX] = [255, 63, 63, 63, 63, 7, 0, 0];

/// MSB-first bit reader over one OBU payload; every read is bounds-checked.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize, // in bits
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn bit(&mut self) -> Result<u32> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or(Av1Error("header runs past the end of its OBU"))?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    fn flag(&mut self) -> Result<bool> {
        Ok(self.bit()? == 1)
    }

    /// f(n), n <= 32: reads the (at most 5) bytes covering the field at once.
    fn f(&mut self, n: u32) -> Result<u32> {
        if n > 32 {
            return Err(Av1Error("field wider than 32 bits"));
        }
        if n == 0 {
            return Ok(0);
        }
        let end = self.pos + n as usize;
        let bytes = self
            .data
            .get(self.pos / 8..end.div_ceil(8))
            .ok_or(Av1Error("header runs past the end of its OBU"))?;
        let window = bytes.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b));
        let value = (window >> (bytes.len() * 8 - (end - self.pos / 8 * 8))) & ((1u64 << n) - 1);
        self.pos = end;
        Ok(value as u32)
    }

    /// su(n): n-bit two's complement.
    fn su(&mut self, n: u32) -> Result<i32> {
        let value = i64::from(self.f(n)?);
        let sign = 1i64 << (n.clamp(1, 32) - 1);
        let signed = if value & sign != 0 { value - 2 * sign } else { value };
        i32::try_from(signed).map_err(|_| Av1Error("signed field out of range"))
    }

    /// ns(n): non-symmetric unsigned value in 0..n.
    fn ns(&mut self, n: u32) -> Result<u32> {
        if n == 0 {
            return Err(Av1Error("ns(0)"));
        }
        let w = 32 - n.leading_zeros(); // FloorLog2(n) + 1
        let m = ((1u64 << w) - u64::from(n)) as u32;
        let v = self.f(w - 1)?;
        if v < m {
            return Ok(v);
        }
        let extra = self.bit()?;
        Ok((v << 1) - m + extra)
    }

    /// uvlc().
    fn uvlc(&mut self) -> Result<u32> {
        let mut leading_zeros = 0u32;
        while !self.flag()? {
            leading_zeros += 1;
        }
        if leading_zeros >= 32 {
            return Ok(u32::MAX);
        }
        let value = self.f(leading_zeros)?;
        Ok(((1u64 << leading_zeros) - 1 + u64::from(value)).min(u64::from(u32::MAX)) as u32)
    }

    /// le(n): n little-endian bytes, byte aligned.
    fn le(&mut self, n: u32) -> Result<u32> {
        let mut value = 0u64;
        for i in 0..n.min(4) {
            value |= u64::from(self.f(8)?) << (8 * i);
        }
        u32::try_from(value).map_err(|_| Av1Error("le field out of range"))
    }

    fn byte_alignment(&mut self) {
        self.pos = self.pos.div_ceil(8) * 8;
    }

    fn byte_pos(&self) -> usize {
        self.pos / 8
    }
}

pub(crate) use vod_cmaf::av1::Obu;

/// The OBUs of a sample (`vod_cmaf::av1::obus`, the one OBU walker), with this parser's error.
pub(crate) fn obus(data: &[u8]) -> Result<Vec<Obu>> {
    vod_cmaf::av1::obus(data).map_err(|e| Av1Error(e.0))
}

/// What frame headers need from a sequence header.
#[derive(Debug, Clone, Copy, Default)]
struct SequenceHeader {
    reduced_still_picture_header: bool,
    decoder_model_info_present: bool,
    equal_picture_interval: bool,
    buffer_removal_time_length: u32,
    frame_presentation_time_length: u32,
    /// (operating_point_idc, decoder_model_present_for_this_op) of the first `operating_points_count` points.
    operating_points: [(u32, bool); 32],
    operating_points_count: usize,
    frame_width_bits: u32,
    frame_height_bits: u32,
    max_frame_width: u32,
    max_frame_height: u32,
    frame_id_numbers_present: bool,
    delta_frame_id_length: u32,
    frame_id_length: u32,
    use_128x128_superblock: bool,
    enable_warped_motion: bool,
    enable_order_hint: bool,
    enable_ref_frame_mvs: bool,
    seq_force_screen_content_tools: u32,
    seq_force_integer_mv: u32,
    order_hint_bits: u32,
    enable_superres: bool,
    enable_cdef: bool,
    enable_restoration: bool,
    mono_chrome: bool,
    subsampling_x: bool,
    subsampling_y: bool,
    separate_uv_delta_q: bool,
    film_grain_params_present: bool,
}

impl SequenceHeader {
    fn num_planes(&self) -> u32 {
        if self.mono_chrome {
            1
        } else {
            3
        }
    }

    fn parse(payload: &[u8]) -> Result<Self> {
        let mut r = Bits::new(payload);
        let mut s = SequenceHeader::default();
        let seq_profile = r.f(3)?;
        if seq_profile > 2 {
            return Err(Av1Error("seq_profile above 2"));
        }
        let _still_picture = r.flag()?;
        s.reduced_still_picture_header = r.flag()?;
        if s.reduced_still_picture_header {
            let _seq_level_idx = r.f(5)?;
            s.operating_points_count = 1;
        } else {
            let timing_info_present = r.flag()?;
            let mut buffer_delay_length = 0;
            if timing_info_present {
                let _num_units_in_display_tick = r.f(32)?;
                let _time_scale = r.f(32)?;
                s.equal_picture_interval = r.flag()?;
                if s.equal_picture_interval {
                    let _num_ticks_per_picture_minus_1 = r.uvlc()?;
                }
                s.decoder_model_info_present = r.flag()?;
                if s.decoder_model_info_present {
                    buffer_delay_length = r.f(5)? + 1;
                    let _num_units_in_decoding_tick = r.f(32)?;
                    s.buffer_removal_time_length = r.f(5)? + 1;
                    s.frame_presentation_time_length = r.f(5)? + 1;
                }
            }
            let initial_display_delay_present = r.flag()?;
            let count = r.f(5)? + 1;
            for _ in 0..count {
                let idc = r.f(12)?;
                let seq_level_idx = r.f(5)?;
                if seq_level_idx > 7 {
                    let _seq_tier = r.bit()?;
                }
                let mut decoder_model_present = false;
                if s.decoder_model_info_present {
                    decoder_model_present = r.flag()?;
                    if decoder_model_present {
                        let _decoder_buffer_delay = r.f(buffer_delay_length)?;
                        let _encoder_buffer_delay = r.f(buffer_delay_length)?;
                        let _low_delay_mode_flag = r.bit()?;
                    }
                }
                if initial_display_delay_present && r.flag()? {
                    let _initial_display_delay_minus_1 = r.f(4)?;
                }
                s.operating_points[s.operating_points_count] = (idc, decoder_model_present);
                s.operating_points_count += 1;
            }
        }
        s.frame_width_bits = r.f(4)? + 1;
        s.frame_height_bits = r.f(4)? + 1;
        s.max_frame_width = r.f(s.frame_width_bits)? + 1;
        s.max_frame_height = r.f(s.frame_height_bits)? + 1;
        if !s.reduced_still_picture_header {
            s.frame_id_numbers_present = r.flag()?;
        }
        if s.frame_id_numbers_present {
            s.delta_frame_id_length = r.f(4)? + 2;
            s.frame_id_length = r.f(3)? + 1 + s.delta_frame_id_length;
        }
        s.use_128x128_superblock = r.flag()?;
        let _enable_filter_intra = r.bit()?;
        let _enable_intra_edge_filter = r.bit()?;
        if s.reduced_still_picture_header {
            s.seq_force_screen_content_tools = SELECT_SCREEN_CONTENT_TOOLS;
            s.seq_force_integer_mv = SELECT_INTEGER_MV;
        } else {
            let _enable_interintra_compound = r.bit()?;
            let _enable_masked_compound = r.bit()?;
            s.enable_warped_motion = r.flag()?;
            let _enable_dual_filter = r.bit()?;
            s.enable_order_hint = r.flag()?;
            if s.enable_order_hint {
                let _enable_jnt_comp = r.bit()?;
                s.enable_ref_frame_mvs = r.flag()?;
            }
            s.seq_force_screen_content_tools = if r.flag()? {
                SELECT_SCREEN_CONTENT_TOOLS
            } else {
                r.f(1)?
            };
            s.seq_force_integer_mv = if s.seq_force_screen_content_tools > 0 {
                if r.flag()? {
                    SELECT_INTEGER_MV
                } else {
                    r.f(1)?
                }
            } else {
                SELECT_INTEGER_MV
            };
            if s.enable_order_hint {
                s.order_hint_bits = r.f(3)? + 1;
            }
        }
        s.enable_superres = r.flag()?;
        s.enable_cdef = r.flag()?;
        s.enable_restoration = r.flag()?;
        // color_config()
        let high_bitdepth = r.flag()?;
        let bit_depth = if seq_profile == 2 && high_bitdepth {
            if r.flag()? {
                12
            } else {
                10
            }
        } else if high_bitdepth {
            10
        } else {
            8
        };
        s.mono_chrome = if seq_profile == 1 { false } else { r.flag()? };
        let (mut color_primaries, mut transfer_characteristics, mut matrix_coefficients) = (2, 2, 2);
        if r.flag()? {
            color_primaries = r.f(8)?;
            transfer_characteristics = r.f(8)?;
            matrix_coefficients = r.f(8)?;
        }
        if s.mono_chrome {
            let _color_range = r.bit()?;
            s.subsampling_x = true;
            s.subsampling_y = true;
        } else {
            if color_primaries == 1 && transfer_characteristics == 13 && matrix_coefficients == 0 {
                // sRGB: 4:4:4, full range.
            } else {
                let _color_range = r.bit()?;
                match seq_profile {
                    0 => (s.subsampling_x, s.subsampling_y) = (true, true),
                    1 => {}
                    _ => {
                        if bit_depth == 12 {
                            s.subsampling_x = r.flag()?;
                            s.subsampling_y = s.subsampling_x && r.flag()?;
                        } else {
                            s.subsampling_x = true;
                        }
                    }
                }
                if s.subsampling_x && s.subsampling_y {
                    let _chroma_sample_position = r.f(2)?;
                }
            }
            s.separate_uv_delta_q = r.flag()?;
        }
        s.film_grain_params_present = r.flag()?;
        Ok(s)
    }
}

/// What the reference update process (§7.20) keeps of a frame, as far as later headers' syntax depends on it.
#[derive(Debug, Clone, Copy, Default)]
struct RefSlot {
    valid: bool,
    frame_type: u32,
    upscaled_width: u32,
    frame_width: u32,
    frame_height: u32,
    render_width: u32,
    render_height: u32,
    order_hint: u32,
    seg_enabled: [[bool; SEG_LVL_MAX]; MAX_SEGMENTS],
    seg_data: [[i32; SEG_LVL_MAX]; MAX_SEGMENTS],
}

/// The tiling of the frame whose tile groups are being read.
#[derive(Debug, Clone, Copy, Default)]
struct Tiling {
    cols: u32,
    rows: u32,
    cols_log2: u32,
    rows_log2: u32,
    size_bytes: u32,
}

/// The state a header needs after it has been parsed: what it refreshes and how its tiles are laid out.
#[derive(Debug, Clone, Copy, Default)]
struct CurrentFrame {
    slot: RefSlot,
    refresh_frame_flags: u32,
    tiling: Tiling,
    /// Tiles not yet seen in tile groups.
    next_tile: u32,
}

/// Parses the OBUs of consecutive samples of one track, keeping the state frame headers depend on.
#[derive(Debug, Default, Clone)]
pub(crate) struct Av1Parser {
    seq: Option<SequenceHeader>,
    refs: [RefSlot; NUM_REF_FRAMES],
    /// The frame whose header was seen and whose tile groups are pending (SeenFrameHeader).
    current: Option<CurrentFrame>,
}

impl Av1Parser {
    /// Reads the sequence header OBUs of an `av1C` record's `configOBUs`.
    pub fn with_config_obus(config_obus: &[u8]) -> Result<Self> {
        let mut parser = Self::default();
        for obu in obus(config_obus)? {
            if obu.obu_type == OBU_SEQUENCE_HEADER {
                parser.seq = Some(SequenceHeader::parse(&config_obus[obu.payload.clone()])?);
            }
        }
        Ok(parser)
    }

    /// Walks one sample and returns its OBUs with, for each, the byte ranges (in the sample) of its tiles' data.
    pub fn tiles(&mut self, sample: &[u8]) -> Result<Vec<(Obu, Vec<Range<usize>>)>> {
        let mut out = Vec::new();
        for obu in obus(sample)? {
            let payload = &sample[obu.payload.clone()];
            let tiles = match obu.obu_type {
                OBU_SEQUENCE_HEADER => {
                    self.seq = Some(SequenceHeader::parse(payload)?);
                    Vec::new()
                }
                OBU_TEMPORAL_DELIMITER => {
                    self.current = None;
                    Vec::new()
                }
                OBU_FRAME_HEADER | OBU_REDUNDANT_FRAME_HEADER => {
                    if self.current.is_none() {
                        self.check_layer()?;
                        let mut r = Bits::new(payload);
                        self.frame_header(&mut r, &obu)?;
                    }
                    Vec::new()
                }
                OBU_FRAME => {
                    if self.current.is_some() {
                        return Err(Av1Error("frame OBU while a frame's tile groups are pending"));
                    }
                    self.check_layer()?;
                    let mut r = Bits::new(payload);
                    self.frame_header(&mut r, &obu)?;
                    if self.current.is_none() {
                        return Err(Av1Error("frame OBU with show_existing_frame"));
                    }
                    r.byte_alignment();
                    let start = r.byte_pos();
                    self.tile_group(payload, start, obu.payload.start)?
                }
                OBU_TILE_GROUP => {
                    self.check_layer()?;
                    self.tile_group(payload, 0, obu.payload.start)?
                }
                OBU_TILE_LIST => return Err(Av1Error("tile list OBUs are not supported")),
                _ => Vec::new(), // metadata, padding, reserved: no tiles, left clear
            };
            out.push((obu, tiles));
        }
        Ok(out)
    }

    fn seq(&self) -> Result<&SequenceHeader> {
        self.seq.as_ref().ok_or(Av1Error("frame before any sequence header"))
    }

    /// Only non-scalable streams are parsed (one operating point covering every OBU); scalable ones are refused.
    fn check_layer(&self) -> Result<()> {
        if self.seq()?.operating_points[0].0 != 0 {
            return Err(Av1Error("scalable AV1 (operating_point_idc != 0) is not supported"));
        }
        Ok(())
    }

    fn relative_dist(seq: &SequenceHeader, a: u32, b: u32) -> i64 {
        if !seq.enable_order_hint || seq.order_hint_bits == 0 {
            return 0;
        }
        let diff = i64::from(a) - i64::from(b);
        let m = 1i64 << (seq.order_hint_bits - 1);
        (diff & (m - 1)) - (diff & m)
    }

    /// uncompressed_header() (§5.9.2). Leaves `self.current` set for a frame whose tile groups follow, or
    /// applies the reference update at once for show_existing_frame.
    fn frame_header(&mut self, r: &mut Bits, obu: &Obu) -> Result<()> {
        let seq = *self.seq()?;
        let id_len = seq.frame_id_length;
        let all_frames = (1u32 << NUM_REF_FRAMES) - 1;
        let mut cur = CurrentFrame::default();
        let frame_type;
        let show_frame;
        let showable_frame;
        let error_resilient_mode;
        if seq.reduced_still_picture_header {
            frame_type = KEY_FRAME;
            show_frame = true;
            showable_frame = false;
            error_resilient_mode = true;
        } else {
            if r.flag()? {
                // show_existing_frame
                let idx = r.f(3)? as usize;
                if seq.decoder_model_info_present && !seq.equal_picture_interval {
                    let _frame_presentation_time = r.f(seq.frame_presentation_time_length)?;
                }
                if seq.frame_id_numbers_present {
                    let _display_frame_id = r.f(id_len)?;
                }
                let slot = *self.refs.get(idx).ok_or(Av1Error("frame_to_show_map_idx"))?;
                if !slot.valid {
                    return Err(Av1Error("show_existing_frame of an empty reference slot"));
                }
                if slot.frame_type == KEY_FRAME {
                    // Frame loading process (§7.21), then all slots are refreshed with it.
                    self.refs = [slot; NUM_REF_FRAMES];
                }
                self.current = None;
                return Ok(());
            }
            frame_type = r.f(2)?;
            show_frame = r.flag()?;
            if show_frame && seq.decoder_model_info_present && !seq.equal_picture_interval {
                let _frame_presentation_time = r.f(seq.frame_presentation_time_length)?;
            }
            showable_frame = if show_frame { frame_type != KEY_FRAME } else { r.flag()? };
            error_resilient_mode = if frame_type == SWITCH_FRAME || (frame_type == KEY_FRAME && show_frame) {
                true
            } else {
                r.flag()?
            };
        }
        let frame_is_intra = frame_type == INTRA_ONLY_FRAME || frame_type == KEY_FRAME;
        if frame_type == KEY_FRAME && show_frame {
            for slot in &mut self.refs {
                slot.valid = false;
                slot.order_hint = 0;
            }
        }
        let disable_cdf_update = r.flag()?;
        let allow_screen_content_tools = if seq.seq_force_screen_content_tools == SELECT_SCREEN_CONTENT_TOOLS {
            r.f(1)?
        } else {
            seq.seq_force_screen_content_tools
        };
        let mut force_integer_mv = if allow_screen_content_tools != 0 {
            if seq.seq_force_integer_mv == SELECT_INTEGER_MV {
                r.f(1)?
            } else {
                seq.seq_force_integer_mv
            }
        } else {
            0
        };
        if frame_is_intra {
            force_integer_mv = 1;
        }
        if seq.frame_id_numbers_present {
            let _current_frame_id = r.f(id_len)?;
        }
        let frame_size_override_flag = if frame_type == SWITCH_FRAME {
            true
        } else if seq.reduced_still_picture_header {
            false
        } else {
            r.flag()?
        };
        let order_hint = r.f(seq.order_hint_bits)?;
        let primary_ref_frame = if frame_is_intra || error_resilient_mode {
            PRIMARY_REF_NONE
        } else {
            r.f(3)?
        };
        if seq.decoder_model_info_present && r.flag()? {
            // buffer_removal_time_present_flag
            for &(idc, model_present) in &seq.operating_points[..seq.operating_points_count] {
                if model_present {
                    let in_temporal = (idc >> obu.temporal_id) & 1 != 0;
                    let in_spatial = (idc >> (obu.spatial_id + 8)) & 1 != 0;
                    if idc == 0 || (in_temporal && in_spatial) {
                        let _buffer_removal_time = r.f(seq.buffer_removal_time_length)?;
                    }
                }
            }
        }
        let mut allow_intrabc = false;
        let refresh_frame_flags = if frame_type == SWITCH_FRAME || (frame_type == KEY_FRAME && show_frame) {
            all_frames
        } else {
            r.f(8)?
        };
        if frame_type == INTRA_ONLY_FRAME && refresh_frame_flags == all_frames {
            return Err(Av1Error("intra-only frame refreshing every slot"));
        }
        if (!frame_is_intra || refresh_frame_flags != all_frames) && error_resilient_mode && seq.enable_order_hint {
            for slot in &mut self.refs {
                let ref_order_hint = r.f(seq.order_hint_bits)?;
                if ref_order_hint != slot.order_hint {
                    *slot = RefSlot {
                        order_hint: ref_order_hint,
                        ..RefSlot::default()
                    };
                }
            }
        }
        let mut s = RefSlot {
            valid: true,
            frame_type,
            order_hint,
            ..RefSlot::default()
        };
        let mut ref_frame_idx = [0usize; REFS_PER_FRAME];
        let mut allow_high_precision_mv = false;
        if frame_is_intra {
            self.frame_size(r, &seq, frame_size_override_flag, &mut s)?;
            Self::render_size(r, &mut s)?;
            if allow_screen_content_tools != 0 && s.upscaled_width == s.frame_width {
                allow_intrabc = r.flag()?;
            }
        } else {
            let frame_refs_short_signaling = seq.enable_order_hint && r.flag()?;
            if frame_refs_short_signaling {
                let last = r.f(3)? as usize;
                let gold = r.f(3)? as usize;
                ref_frame_idx = self.set_frame_refs(&seq, last, gold, order_hint);
            }
            for idx in &mut ref_frame_idx {
                if !frame_refs_short_signaling {
                    *idx = r.f(3)? as usize;
                }
                if seq.frame_id_numbers_present {
                    let _delta_frame_id_minus_1 = r.f(seq.delta_frame_id_length)?;
                }
            }
            for &idx in &ref_frame_idx {
                if !self.refs.get(idx).is_some_and(|slot| slot.valid) {
                    return Err(Av1Error("inter frame referencing an empty slot"));
                }
            }
            if frame_size_override_flag && !error_resilient_mode {
                // frame_size_with_refs()
                let mut found = false;
                for &idx in &ref_frame_idx {
                    if r.flag()? {
                        let slot = self.refs[idx];
                        s.upscaled_width = slot.upscaled_width;
                        s.frame_width = slot.upscaled_width;
                        s.frame_height = slot.frame_height;
                        s.render_width = slot.render_width;
                        s.render_height = slot.render_height;
                        found = true;
                        break;
                    }
                }
                if found {
                    Self::superres_params(r, &seq, &mut s)?;
                } else {
                    self.frame_size(r, &seq, frame_size_override_flag, &mut s)?;
                    Self::render_size(r, &mut s)?;
                }
            } else {
                self.frame_size(r, &seq, frame_size_override_flag, &mut s)?;
                Self::render_size(r, &mut s)?;
            }
            allow_high_precision_mv = force_integer_mv == 0 && r.flag()?;
            if !r.flag()? {
                // is_filter_switchable == 0
                let _interpolation_filter = r.f(2)?;
            }
            let _is_motion_mode_switchable = r.bit()?;
            if !error_resilient_mode && seq.enable_ref_frame_mvs {
                let _use_ref_frame_mvs = r.bit()?;
            }
        }
        if s.frame_width == 0 || s.frame_height == 0 {
            return Err(Av1Error("frame size 0"));
        }
        if !(seq.reduced_still_picture_header || disable_cdf_update) {
            let _disable_frame_end_update_cdf = r.bit()?;
        }
        // setup_past_independence() / load_previous(): the segmentation feature state.
        let (mut seg_enabled_features, mut seg_data) = if primary_ref_frame == PRIMARY_REF_NONE {
            (
                [[false; SEG_LVL_MAX]; MAX_SEGMENTS],
                [[0i32; SEG_LVL_MAX]; MAX_SEGMENTS],
            )
        } else {
            let idx = *ref_frame_idx
                .get(primary_ref_frame as usize)
                .ok_or(Av1Error("primary_ref_frame"))?;
            let slot = self.refs[idx];
            (slot.seg_enabled, slot.seg_data)
        };
        cur.tiling = self.tile_info(r, &seq, &s)?;
        // quantization_params()
        let base_q_idx = r.f(8)?;
        let mut deltas_zero = Self::delta_q(r)? == 0;
        if seq.num_planes() > 1 {
            let diff_uv_delta = seq.separate_uv_delta_q && r.flag()?;
            deltas_zero &= Self::delta_q(r)? == 0;
            deltas_zero &= Self::delta_q(r)? == 0;
            if diff_uv_delta {
                deltas_zero &= Self::delta_q(r)? == 0;
                deltas_zero &= Self::delta_q(r)? == 0;
            }
        }
        if r.flag()? {
            // using_qmatrix
            let _qm_y = r.f(4)?;
            let _qm_u = r.f(4)?;
            if seq.separate_uv_delta_q {
                let _qm_v = r.f(4)?;
            }
        }
        // segmentation_params()
        let segmentation_enabled = r.flag()?;
        if segmentation_enabled {
            let update_data = if primary_ref_frame == PRIMARY_REF_NONE {
                true
            } else {
                if r.flag()? {
                    // segmentation_update_map
                    let _segmentation_temporal_update = r.bit()?;
                }
                r.flag()?
            };
            if update_data {
                for i in 0..MAX_SEGMENTS {
                    for j in 0..SEG_LVL_MAX {
                        let enabled = r.flag()?;
                        let mut value = 0;
                        if enabled {
                            let bits = SEGMENTATION_FEATURE_BITS[j];
                            let limit = SEGMENTATION_FEATURE_MAX[j];
                            value = if SEGMENTATION_FEATURE_SIGNED[j] {
                                r.su(1 + bits)?.clamp(-limit, limit)
                            } else {
                                (r.f(bits)? as i32).clamp(0, limit)
                            };
                        }
                        seg_enabled_features[i][j] = enabled;
                        seg_data[i][j] = value;
                    }
                }
            }
        } else {
            seg_enabled_features = [[false; SEG_LVL_MAX]; MAX_SEGMENTS];
            seg_data = [[0; SEG_LVL_MAX]; MAX_SEGMENTS];
        }
        s.seg_enabled = seg_enabled_features;
        s.seg_data = seg_data;
        // delta_q_params(), delta_lf_params()
        let delta_q_present = base_q_idx > 0 && r.flag()?;
        if delta_q_present {
            let _delta_q_res = r.f(2)?;
            if !allow_intrabc && r.flag()? {
                // delta_lf_present
                let _delta_lf_res = r.f(2)?;
                let _delta_lf_multi = r.bit()?;
            }
        }
        // CodedLossless: every segment's qindex (ignoring delta q) is 0 and all DC/AC deltas are 0.
        let coded_lossless = (0..MAX_SEGMENTS).all(|id| {
            let qindex = if segmentation_enabled && seg_enabled_features[id][0] {
                (i64::from(base_q_idx) + i64::from(seg_data[id][0])).clamp(0, 255)
            } else {
                i64::from(base_q_idx)
            };
            qindex == 0 && deltas_zero
        });
        let all_lossless = coded_lossless && s.frame_width == s.upscaled_width;
        // loop_filter_params()
        if !(coded_lossless || allow_intrabc) {
            let level0 = r.f(6)?;
            let level1 = r.f(6)?;
            if seq.num_planes() > 1 && (level0 != 0 || level1 != 0) {
                let _level2 = r.f(6)?;
                let _level3 = r.f(6)?;
            }
            let _sharpness = r.f(3)?;
            if r.flag()? && r.flag()? {
                // loop_filter_delta_enabled && loop_filter_delta_update
                for _ in 0..8 {
                    if r.flag()? {
                        let _ref_delta = r.su(7)?;
                    }
                }
                for _ in 0..2 {
                    if r.flag()? {
                        let _mode_delta = r.su(7)?;
                    }
                }
            }
        }
        // cdef_params()
        if !(coded_lossless || allow_intrabc || !seq.enable_cdef) {
            let _cdef_damping_minus_3 = r.f(2)?;
            let cdef_bits = r.f(2)?;
            for _ in 0..(1u32 << cdef_bits) {
                let _y = r.f(6)?;
                if seq.num_planes() > 1 {
                    let _uv = r.f(6)?;
                }
            }
        }
        // lr_params()
        if !(all_lossless || allow_intrabc || !seq.enable_restoration) {
            let mut uses_lr = false;
            let mut uses_chroma_lr = false;
            for plane in 0..seq.num_planes() {
                if r.f(2)? != 0 {
                    uses_lr = true;
                    uses_chroma_lr |= plane > 0;
                }
            }
            if uses_lr {
                // lr_unit_shift; with 64x64 superblocks a set one is followed by lr_unit_extra_shift.
                let lr_unit_shift = r.flag()?;
                if !seq.use_128x128_superblock && lr_unit_shift {
                    let _lr_unit_extra_shift = r.bit()?;
                }
                if seq.subsampling_x && seq.subsampling_y && uses_chroma_lr {
                    let _lr_uv_shift = r.bit()?;
                }
            }
        }
        // read_tx_mode()
        if !coded_lossless {
            let _tx_mode_select = r.bit()?;
        }
        // frame_reference_mode()
        let reference_select = !frame_is_intra && r.flag()?;
        // skip_mode_params()
        if self.skip_mode_allowed(&seq, frame_is_intra, reference_select, &ref_frame_idx, order_hint) {
            let _skip_mode_present = r.bit()?;
        }
        if !(frame_is_intra || error_resilient_mode || !seq.enable_warped_motion) {
            let _allow_warped_motion = r.bit()?;
        }
        let _reduced_tx_set = r.bit()?;
        // global_motion_params()
        if !frame_is_intra {
            for _ in 0..REFS_PER_FRAME {
                let gm_type = if r.flag()? {
                    if r.flag()? {
                        2 // ROTZOOM
                    } else if r.flag()? {
                        1 // TRANSLATION
                    } else {
                        3 // AFFINE
                    }
                } else {
                    0 // IDENTITY
                };
                if gm_type >= 2 {
                    Self::global_param(r, gm_type, 2, allow_high_precision_mv)?;
                    Self::global_param(r, gm_type, 3, allow_high_precision_mv)?;
                    if gm_type == 3 {
                        Self::global_param(r, gm_type, 4, allow_high_precision_mv)?;
                        Self::global_param(r, gm_type, 5, allow_high_precision_mv)?;
                    }
                }
                if gm_type >= 1 {
                    Self::global_param(r, gm_type, 0, allow_high_precision_mv)?;
                    Self::global_param(r, gm_type, 1, allow_high_precision_mv)?;
                }
            }
        }
        // film_grain_params()
        if seq.film_grain_params_present && (show_frame || showable_frame) && r.flag()? {
            Self::film_grain(r, &seq, frame_type)?;
        }
        cur.slot = s;
        cur.refresh_frame_flags = refresh_frame_flags;
        self.current = Some(cur);
        Ok(())
    }

    fn delta_q(r: &mut Bits) -> Result<i32> {
        if r.flag()? {
            r.su(7)
        } else {
            Ok(0)
        }
    }

    /// read_global_param(): the number of bits read depends only on the type and the index (decode_subexp).
    fn global_param(r: &mut Bits, gm_type: u32, idx: u32, allow_high_precision_mv: bool) -> Result<()> {
        let abs_bits = if idx < 2 {
            if gm_type == 1 {
                9 - u32::from(!allow_high_precision_mv)
            } else {
                12
            }
        } else {
            12
        };
        let num_syms = (2u32 << abs_bits) + 1;
        // decode_subexp(numSyms)
        let (mut i, mut mk, k) = (0u32, 0u32, 3u32);
        loop {
            let b2 = if i > 0 { k + i - 1 } else { k };
            let a = 1u32 << b2;
            if num_syms <= mk + 3 * a {
                r.ns(num_syms - mk)?;
                return Ok(());
            }
            if r.flag()? {
                i += 1;
                mk += a;
                if i > 20 {
                    return Err(Av1Error("global motion parameter too long"));
                }
            } else {
                r.f(b2)?;
                return Ok(());
            }
        }
    }

    fn film_grain(r: &mut Bits, seq: &SequenceHeader, frame_type: u32) -> Result<()> {
        let _grain_seed = r.f(16)?;
        let update_grain = if frame_type == INTER_FRAME { r.flag()? } else { true };
        if !update_grain {
            let _film_grain_params_ref_idx = r.f(3)?;
            return Ok(());
        }
        let num_y_points = r.f(4)?;
        for _ in 0..num_y_points {
            r.f(16)?;
        }
        let chroma_scaling_from_luma = !seq.mono_chrome && r.flag()?;
        let (mut num_cb_points, mut num_cr_points) = (0, 0);
        if !(seq.mono_chrome
            || chroma_scaling_from_luma
            || (seq.subsampling_x && seq.subsampling_y && num_y_points == 0))
        {
            num_cb_points = r.f(4)?;
            for _ in 0..num_cb_points {
                r.f(16)?;
            }
            num_cr_points = r.f(4)?;
            for _ in 0..num_cr_points {
                r.f(16)?;
            }
        }
        let _grain_scaling_minus_8 = r.f(2)?;
        let ar_coeff_lag = r.f(2)?;
        let num_pos_luma = 2 * ar_coeff_lag * (ar_coeff_lag + 1);
        let num_pos_chroma = if num_y_points > 0 {
            for _ in 0..num_pos_luma {
                r.f(8)?;
            }
            num_pos_luma + 1
        } else {
            num_pos_luma
        };
        if chroma_scaling_from_luma || num_cb_points > 0 {
            for _ in 0..num_pos_chroma {
                r.f(8)?;
            }
        }
        if chroma_scaling_from_luma || num_cr_points > 0 {
            for _ in 0..num_pos_chroma {
                r.f(8)?;
            }
        }
        let _ar_coeff_shift_minus_6 = r.f(2)?;
        let _grain_scale_shift = r.f(2)?;
        if num_cb_points > 0 {
            r.f(25)?;
        }
        if num_cr_points > 0 {
            r.f(25)?;
        }
        let _overlap_flag = r.bit()?;
        let _clip_to_restricted_range = r.bit()?;
        Ok(())
    }

    fn frame_size(&self, r: &mut Bits, seq: &SequenceHeader, override_flag: bool, s: &mut RefSlot) -> Result<()> {
        if override_flag {
            s.frame_width = r.f(seq.frame_width_bits)? + 1;
            s.frame_height = r.f(seq.frame_height_bits)? + 1;
        } else {
            s.frame_width = seq.max_frame_width;
            s.frame_height = seq.max_frame_height;
        }
        s.upscaled_width = s.frame_width;
        Self::superres_params(r, seq, s)
    }

    /// superres_params() (+ compute_image_size(), done by the callers from the widths).
    fn superres_params(r: &mut Bits, seq: &SequenceHeader, s: &mut RefSlot) -> Result<()> {
        let denom = if seq.enable_superres && r.flag()? {
            r.f(3)? + 9
        } else {
            8
        };
        s.upscaled_width = s.frame_width;
        s.frame_width = ((u64::from(s.upscaled_width) * 8 + u64::from(denom / 2)) / u64::from(denom)) as u32;
        Ok(())
    }

    fn render_size(r: &mut Bits, s: &mut RefSlot) -> Result<()> {
        if r.flag()? {
            s.render_width = r.f(16)? + 1;
            s.render_height = r.f(16)? + 1;
        } else {
            s.render_width = s.upscaled_width;
            s.render_height = s.frame_height;
        }
        Ok(())
    }

    /// set_frame_refs() (§7.8): the reference indices of frame_refs_short_signaling.
    fn set_frame_refs(&self, seq: &SequenceHeader, last: usize, gold: usize, order_hint: u32) -> [usize; 7] {
        const LAST2: usize = 1;
        const LAST3: usize = 2;
        const GOLDEN: usize = 3;
        const BWDREF: usize = 4;
        const ALTREF2: usize = 5;
        const ALTREF: usize = 6;
        let mut idx: [Option<usize>; REFS_PER_FRAME] = [None; REFS_PER_FRAME];
        idx[0] = Some(last);
        idx[GOLDEN] = Some(gold);
        let mut used = [false; NUM_REF_FRAMES];
        used[last & 7] = true;
        used[gold & 7] = true;
        let cur_frame_hint = 1i64 << seq.order_hint_bits.saturating_sub(1);
        let shifted: Vec<i64> = self
            .refs
            .iter()
            .map(|slot| cur_frame_hint + Self::relative_dist(seq, slot.order_hint, order_hint))
            .collect();
        let find = |used: &[bool; NUM_REF_FRAMES], backward: bool, latest: bool| -> Option<usize> {
            let mut best: Option<(usize, i64)> = None;
            for (i, &hint) in shifted.iter().enumerate() {
                if used[i] || (hint >= cur_frame_hint) != backward {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some((_, b)) => {
                        if latest {
                            hint >= b
                        } else {
                            hint < b
                        }
                    }
                };
                if better {
                    best = Some((i, hint));
                }
            }
            best.map(|b| b.0)
        };
        if let Some(i) = find(&used, true, true) {
            idx[ALTREF] = Some(i);
            used[i] = true;
        }
        if let Some(i) = find(&used, true, false) {
            idx[BWDREF] = Some(i);
            used[i] = true;
        }
        if let Some(i) = find(&used, true, false) {
            idx[ALTREF2] = Some(i);
            used[i] = true;
        }
        for slot in [LAST2, LAST3, BWDREF, ALTREF2, ALTREF] {
            if idx[slot].is_none() {
                if let Some(i) = find(&used, false, true) {
                    idx[slot] = Some(i);
                    used[i] = true;
                }
            }
        }
        let mut earliest: Option<(usize, i64)> = None;
        for (i, &hint) in shifted.iter().enumerate() {
            if earliest.is_none_or(|(_, e)| hint < e) {
                earliest = Some((i, hint));
            }
        }
        let fallback = earliest.map_or(0, |e| e.0);
        idx.map(|i| i.unwrap_or(fallback))
    }

    fn skip_mode_allowed(
        &self,
        seq: &SequenceHeader,
        frame_is_intra: bool,
        reference_select: bool,
        ref_frame_idx: &[usize; REFS_PER_FRAME],
        order_hint: u32,
    ) -> bool {
        if frame_is_intra || !reference_select || !seq.enable_order_hint {
            return false;
        }
        let hints = ref_frame_idx.map(|i| self.refs[i & 7].order_hint);
        let dist = |a: u32, b: u32| Self::relative_dist(seq, a, b);
        let mut forward: Option<u32> = None;
        let mut backward: Option<u32> = None;
        for &hint in &hints {
            if dist(hint, order_hint) < 0 {
                if forward.is_none_or(|f| dist(hint, f) > 0) {
                    forward = Some(hint);
                }
            } else if dist(hint, order_hint) > 0 && backward.is_none_or(|b| dist(hint, b) < 0) {
                backward = Some(hint);
            }
        }
        match (forward, backward) {
            (None, _) => false,
            (Some(_), Some(_)) => true,
            (Some(f), None) => hints.iter().any(|&hint| dist(hint, f) < 0),
        }
    }

    /// tile_info() (§5.9.15): the number of tiles and the width of tile size fields.
    fn tile_info(&self, r: &mut Bits, seq: &SequenceHeader, s: &RefSlot) -> Result<Tiling> {
        let mi_cols = 2 * s.frame_width.div_ceil(8);
        let mi_rows = 2 * s.frame_height.div_ceil(8);
        let (sb_cols, sb_rows, sb_shift) = if seq.use_128x128_superblock {
            (mi_cols.div_ceil(32), mi_rows.div_ceil(32), 5)
        } else {
            (mi_cols.div_ceil(16), mi_rows.div_ceil(16), 4)
        };
        let sb_size = sb_shift + 2;
        let max_tile_width_sb = 4096u32 >> sb_size;
        let mut max_tile_area_sb = (4096u32 * 2304) >> (2 * sb_size);
        let tile_log2 = |blk: u32, target: u32| {
            let mut k = 0;
            while (u64::from(blk) << k) < u64::from(target) {
                k += 1;
            }
            k
        };
        let min_log2_tile_cols = tile_log2(max_tile_width_sb, sb_cols);
        let max_log2_tile_cols = tile_log2(1, sb_cols.min(MAX_TILE_COLS));
        let max_log2_tile_rows = tile_log2(1, sb_rows.min(MAX_TILE_ROWS));
        let min_log2_tiles = min_log2_tile_cols.max(tile_log2(max_tile_area_sb, sb_rows * sb_cols));
        let mut t = Tiling::default();
        if r.flag()? {
            // uniform_tile_spacing_flag
            t.cols_log2 = min_log2_tile_cols;
            while t.cols_log2 < max_log2_tile_cols && r.flag()? {
                t.cols_log2 += 1;
            }
            let tile_width_sb = (sb_cols + (1 << t.cols_log2) - 1) >> t.cols_log2;
            t.cols = sb_cols.div_ceil(tile_width_sb.max(1));
            let min_log2_tile_rows = min_log2_tiles.saturating_sub(t.cols_log2);
            t.rows_log2 = min_log2_tile_rows;
            while t.rows_log2 < max_log2_tile_rows && r.flag()? {
                t.rows_log2 += 1;
            }
            let tile_height_sb = (sb_rows + (1 << t.rows_log2) - 1) >> t.rows_log2;
            t.rows = sb_rows.div_ceil(tile_height_sb.max(1));
        } else {
            let mut widest_tile_sb = 0;
            let mut start_sb = 0;
            while start_sb < sb_cols {
                if t.cols >= MAX_TILE_COLS {
                    return Err(Av1Error("more than 64 tile columns"));
                }
                let max_width = (sb_cols - start_sb).min(max_tile_width_sb);
                let size_sb = r.ns(max_width)? + 1;
                widest_tile_sb = widest_tile_sb.max(size_sb);
                start_sb += size_sb;
                t.cols += 1;
            }
            t.cols_log2 = tile_log2(1, t.cols);
            if min_log2_tiles > 0 {
                max_tile_area_sb = (sb_rows * sb_cols) >> (min_log2_tiles + 1);
            } else {
                max_tile_area_sb = sb_rows * sb_cols;
            }
            let max_tile_height_sb = (max_tile_area_sb / widest_tile_sb.max(1)).max(1);
            start_sb = 0;
            while start_sb < sb_rows {
                if t.rows >= MAX_TILE_ROWS {
                    return Err(Av1Error("more than 64 tile rows"));
                }
                let max_height = (sb_rows - start_sb).min(max_tile_height_sb);
                let size_sb = r.ns(max_height)? + 1;
                start_sb += size_sb;
                t.rows += 1;
            }
            t.rows_log2 = tile_log2(1, t.rows);
        }
        if t.cols == 0 || t.rows == 0 || t.cols > MAX_TILE_COLS || t.rows > MAX_TILE_ROWS {
            return Err(Av1Error("invalid tile layout"));
        }
        if t.cols_log2 > 0 || t.rows_log2 > 0 {
            let _context_update_tile_id = r.f(t.rows_log2 + t.cols_log2)?;
            t.size_bytes = r.f(2)? + 1;
        }
        Ok(t)
    }

    /// tile_group_obu() (§5.11.1) over `payload[start..]`: the tiles' data ranges, offset by `base` (the payload's
    /// position in the sample). Applies the reference update once the frame's last tile is seen.
    fn tile_group(&mut self, payload: &[u8], start: usize, base: usize) -> Result<Vec<Range<usize>>> {
        let mut cur = self.current.ok_or(Av1Error("tile group without a frame header"))?;
        let t = cur.tiling;
        let num_tiles = t.cols * t.rows;
        let data = payload.get(start..).ok_or(Av1Error("frame header runs past its OBU"))?;
        let mut r = Bits::new(data);
        let present = num_tiles > 1 && r.flag()?;
        let (tg_start, tg_end) = if present {
            let bits = t.cols_log2 + t.rows_log2;
            (r.f(bits)?, r.f(bits)?)
        } else {
            (0, num_tiles - 1)
        };
        if tg_start != cur.next_tile || tg_end < tg_start || tg_end >= num_tiles {
            return Err(Av1Error("tile group out of order"));
        }
        r.byte_alignment();
        let mut pos = r.byte_pos();
        let mut tiles = Vec::with_capacity((tg_end - tg_start + 1) as usize);
        for tile_num in tg_start..=tg_end {
            let size = if tile_num == tg_end {
                data.len()
                    .checked_sub(pos)
                    .ok_or(Av1Error("tile group header past its OBU"))?
            } else {
                let mut sr = Bits::new(data.get(pos..).unwrap_or_default());
                let size = sr.le(t.size_bytes)? as usize + 1;
                pos += t.size_bytes as usize;
                size
            };
            let end = pos.checked_add(size).filter(|&e| e <= data.len());
            let end = end.ok_or(Av1Error("tile runs past its OBU"))?;
            if size == 0 {
                return Err(Av1Error("empty tile"));
            }
            let offset = base + start;
            tiles.push(offset + pos..offset + end);
            pos = end;
        }
        if tg_end == num_tiles - 1 {
            for (i, slot) in self.refs.iter_mut().enumerate() {
                if (cur.refresh_frame_flags >> i) & 1 != 0 {
                    *slot = cur.slot;
                }
            }
            self.current = None;
        } else {
            cur.next_tile = tg_end + 1;
            self.current = Some(cur);
        }
        Ok(tiles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obu_walk_and_bounds() {
        // TD, frame OBU with 3 payload bytes, then a padding OBU without size field.
        let data = [0x12, 0x00, 0x32, 0x03, 1, 2, 3, 0x78, 9, 9];
        let list = obus(&data).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].header, 2..4);
        assert_eq!(list[1].payload, 4..7);
        assert_eq!(list[2].payload, 8..10);
        for bad in [
            &[0x12, 0x05, 1][..],
            &[0x16][..],
            &[0x92, 0x00][..],
            &[0x12, 0xff, 0xff][..],
        ] {
            assert!(obus(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bit_reader_primitives() {
        let mut r = Bits::new(&[0b1010_0000, 0xff]);
        assert_eq!(r.f(3).unwrap(), 0b101);
        r.byte_alignment();
        assert_eq!(r.le(1).unwrap(), 0xff);
        assert!(r.bit().is_err());
        // uvlc: 001 01 → leading 2, value 1 → 3 + 1 = 4
        assert_eq!(Bits::new(&[0b0010_1000]).uvlc().unwrap(), 4);
        assert!(Bits::new(&[0, 0, 0, 0, 0]).uvlc().is_err());
        assert_eq!(Bits::new(&[0, 0, 0, 0, 0x80]).uvlc().unwrap(), u32::MAX);
        // su(7) of 0b1111111 = -1
        assert_eq!(Bits::new(&[0xfe]).su(7).unwrap(), -1);
        // ns(5): w=3, m=3; v=f(2)=0b11 ≥ m → (3<<1) - 3 + extra(1) = 4
        assert_eq!(Bits::new(&[0b1110_0000]).ns(5).unwrap(), 4);
    }

    #[test]
    fn wide_reads_match_bit_by_bit_reads() {
        let data: Vec<u8> = (0..64u32).map(|i| (i.wrapping_mul(0x9e) ^ (i >> 2)) as u8).collect();
        for start in 0..40 {
            for n in 0..=32 {
                let mut wide = Bits::new(&data);
                wide.pos = start;
                let mut narrow = Bits::new(&data);
                narrow.pos = start;
                let expected = (0..n).fold(0u64, |v, _| (v << 1) | u64::from(narrow.bit().unwrap()));
                assert_eq!(u64::from(wide.f(n).unwrap()), expected, "start {start}, n {n}");
                assert_eq!(wide.pos, narrow.pos);
            }
        }
        let mut r = Bits::new(&[0xff]);
        r.pos = 4;
        assert!(r.f(5).is_err(), "past the end");
        assert!(Bits::new(&data).f(33).is_err());
    }

    #[test]
    fn frames_need_a_sequence_header() {
        let mut p = Av1Parser::default();
        assert!(p.tiles(&[0x32, 0x01, 0x10]).is_err());
    }
}
