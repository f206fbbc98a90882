//! Jobs: presets (named recipes: an encoding ladder, segment length and audio settings, and/or speech indexing),
//! jobs and their tasks, their states, and the planner that cuts a source into chunks of whole segments (encoding)
//! and windows of audio (indexing).
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vod_media::MediaInfo;

use crate::model::AssetId;

/// Identifier of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub Uuid);

impl JobId {
    pub fn new_random() -> Self {
        JobId(Uuid::new_v4())
    }
    pub fn parse(s: &str) -> Option<Self> {
        Uuid::parse_str(s).ok().map(JobId)
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// x264's presets, fastest first (`VideoEncoding::H264`). The encoder's own enum (`vod_encode::X264Preset`) lists
/// the same names; a vod-worker test keeps the two in step (the domain does not link the encoder).
pub const X264_PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
];

/// The video encoder of a rung and the encoder's own settings. Serialized flat beside the rung's other fields:
/// `"codec": "av1", "speed": 8` or `"codec": "h264", "preset": "veryfast"`; a rung without `codec` (stored
/// before H.264 existed) is AV1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "codec", rename_all = "lowercase")]
pub enum VideoEncoding {
    /// AV1 by rav1e; `speed` is rav1e's preset, 0 (slowest) … 10 (fastest).
    Av1 { speed: u8 },
    /// H.264 High by x264; `preset` is one of [`X264_PRESETS`] (`veryfast` when a rung names none).
    H264 { preset: String },
}

impl VideoEncoding {
    /// The codec family's short name, as rung names and manifests use it.
    pub fn family(&self) -> &'static str {
        match self {
            VideoEncoding::Av1 { .. } => "av1",
            VideoEncoding::H264 { .. } => "h264",
        }
    }

    /// Checks the encoder's own settings.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            VideoEncoding::Av1 { speed } if *speed > 10 => Err("AV1 speed must be 0..=10".into()),
            VideoEncoding::H264 { preset } if !X264_PRESETS.contains(&preset.as_str()) => {
                Err(format!("H.264 preset must be one of {}", X264_PRESETS.join(", ")))
            }
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for VideoEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VideoEncoding::Av1 { speed } => write!(f, "AV1 at speed {speed}"),
            VideoEncoding::H264 { preset } => write!(f, "H.264 with preset {preset}"),
        }
    }
}

impl<'de> Deserialize<'de> for VideoEncoding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Repr {
            codec: Option<String>,
            speed: Option<u8>,
            preset: Option<String>,
        }
        let r = Repr::deserialize(d)?;
        match r.codec.as_deref() {
            None | Some("av1") => Ok(VideoEncoding::Av1 {
                speed: r.speed.ok_or_else(|| serde::de::Error::missing_field("speed"))?,
            }),
            Some("h264") => Ok(VideoEncoding::H264 {
                preset: r.preset.unwrap_or_else(|| "veryfast".into()),
            }),
            Some(other) => Err(serde::de::Error::unknown_variant(other, &["av1", "h264"])),
        }
    }
}

/// One rung of an adaptive-bitrate ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RungSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub bitrate_kbps: u32,
    /// Its encoder and the encoder's own settings.
    #[serde(flatten)]
    pub encoding: VideoEncoding,
}

/// An audio encoder of a preset; each gives the asset an audio track of its own, at the preset's bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioEncoding {
    /// Opus by libopus (48 kHz, 20 ms packets).
    Opus,
    /// AAC-LC by libavcodec (48 kHz): what Safari before 17, iPhones, TVs and set-top boxes decode.
    Aac,
}

impl AudioEncoding {
    /// The name of its first track (URL path segment, object prefix and HLS audio group); Opus keeps the name it
    /// had alone.
    pub fn track(self) -> &'static str {
        match self {
            AudioEncoding::Opus => "audio",
            AudioEncoding::Aac => "audio-aac",
        }
    }

    /// The name of its track of source audio track `ordinal` (0 = the first one chosen): `audio`, `audio-2`, ...
    pub fn track_of(self, ordinal: u32) -> String {
        match ordinal {
            0 => self.track().to_string(),
            n => format!("{}-{}", self.track(), n + 1),
        }
    }

    /// The encoding and ordinal of a track name.
    pub fn of_track(name: &str) -> Option<(Self, u32)> {
        [AudioEncoding::Opus, AudioEncoding::Aac].into_iter().find_map(|a| {
            let rest = name.strip_prefix(a.track())?;
            if rest.is_empty() {
                return Some((a, 0));
            }
            let n: u32 = rest.strip_prefix('-')?.parse().ok()?;
            // Only the canonical spelling: "audio-2" .. , never "audio-1" or "audio-02".
            (n >= 2 && rest == format!("-{n}")).then_some((a, n - 1))
        })
    }
}

/// Which audio tracks of the source become audio renditions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioSelection {
    /// The first track of each language (untagged tracks count as one language).
    #[default]
    PerLanguage,
    /// Every track.
    All,
    /// The first track only.
    First,
}

/// The most audio renditions per codec a job makes.
pub const MAX_AUDIO_TRACKS: usize = 8;

/// One audio rendition to make: which source audio streams (their order among the probe's audio streams; two
/// mono streams paired to stereo) and its language and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioSource {
    pub streams: Vec<u32>,
    /// Output channels: the preset's, never more than the source has (a mono track stays mono, a mono pair is
    /// stereo); 0 in tasks stored before (the preset's then).
    #[serde(default)]
    pub channels: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// Audio output settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioSpec {
    pub bitrate_kbps: u32,
    /// Output channels (1 or 2; 5.1 sources are downmixed).
    pub channels: u8,
    /// The audio tracks, by encoder (the source is decoded once for all); Opus alone when not given (presets
    /// stored before AAC existed).
    #[serde(default = "default_audio_codecs")]
    pub codecs: Vec<AudioEncoding>,
    /// Which source tracks to encode (default: one per language).
    #[serde(default)]
    pub select: AudioSelection,
    /// Only tracks in these languages (matched on the primary language, e.g. "fr" takes "fr-CA", "fre" and "fra"),
    /// in this order; every language when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    /// Pair consecutive mono tracks (1+2, 3+4, ... of the same language) into stereo tracks (left, right): how
    /// broadcast MXF and MPEG-TS carry stereo as discrete PCM channels.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pair_mono: bool,
}

impl AudioSpec {
    /// The audio renditions this spec makes of a source's audio streams, in order (the first is the default one).
    pub fn sources(&self, streams: &[vod_media::AudioStream]) -> Result<Vec<AudioSource>, String> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let mut units: Vec<AudioSource> = Vec::new();
        let mut i = 0;
        while i < streams.len() {
            let a = &streams[i];
            let pair = streams
                .get(i + 1)
                .filter(|b| self.pair_mono && a.channels == 1 && b.channels == 1 && a.language == b.language);
            let source_channels = if pair.is_some() {
                2
            } else {
                a.channels.clamp(1, 2) as u8
            };
            units.push(AudioSource {
                streams: if pair.is_some() {
                    vec![i as u32, i as u32 + 1]
                } else {
                    vec![i as u32]
                },
                channels: self.channels.min(source_channels),
                language: a.language.clone(),
                label: a.title.clone(),
            });
            i += if pair.is_some() { 2 } else { 1 };
        }
        if !self.languages.is_empty() {
            let mut kept = Vec::new();
            for want in &self.languages {
                kept.extend(
                    units
                        .iter()
                        .filter(|u| u.language.as_deref().is_some_and(|l| vod_media::same_language(l, want)))
                        .cloned(),
                );
            }
            if kept.is_empty() {
                let found: Vec<&str> = streams.iter().map(|s| s.language.as_deref().unwrap_or("und")).collect();
                return Err(format!(
                    "the source has no audio track in {} (its tracks: {})",
                    self.languages.join(", "),
                    found.join(", ")
                ));
            }
            units = kept;
        }
        match self.select {
            AudioSelection::All => {}
            AudioSelection::First => units.truncate(1),
            AudioSelection::PerLanguage => {
                let mut seen: Vec<Option<String>> = Vec::new();
                units.retain(|u| {
                    let key = u.language.as_ref().map(|l| l.to_ascii_lowercase());
                    let new = !seen.contains(&key);
                    seen.push(key);
                    new
                });
            }
        }
        if units.len() > MAX_AUDIO_TRACKS {
            return Err(format!(
                "the preset chooses {} audio tracks; at most {MAX_AUDIO_TRACKS} (choose languages or select \"first\")",
                units.len()
            ));
        }
        Ok(units)
    }
}

fn default_audio_codecs() -> Vec<AudioEncoding> {
    vec![AudioEncoding::Opus]
}

/// How a preset picks its rungs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Ladder {
    /// The standard AV1 ladder (1080p/720p/480p/360p) limited to the source's height: no upscaling; with `h264`
    /// (an x264 preset) also the standard H.264 ladder at its own, higher bitrates.
    Adaptive {
        speed: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        h264: Option<String>,
    },
    /// Fixed rung heights and bitrates; widths follow the source's display aspect ratio; rungs taller than the
    /// source are dropped (the smallest is kept at most at source height).
    Fixed { rungs: Vec<FixedRung> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedRung {
    pub height: u32,
    pub bitrate_kbps: u32,
    #[serde(flatten)]
    pub encoding: VideoEncoding,
}

/// Speech indexing settings: captions, transcript and search data from the audio (AMS: the Indexer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// Spoken language (BCP 47); the bundled model recognizes US English.
    #[serde(default = "default_language")]
    pub language: String,
    /// Longest audio window one index task recognizes, in seconds.
    #[serde(default = "default_index_chunk")]
    pub max_chunk_secs: f64,
}

/// Thumbnails of an encoding: sprite sheets of small frames at a fixed interval (a WebVTT index with `#xywh=`
/// points into them, and DASH's image AdaptationSet), and a poster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThumbnailSpec {
    /// Seconds between thumbnails.
    #[serde(default = "default_thumb_interval")]
    pub interval_secs: f64,
    /// Tile width in pixels (the height follows the display aspect ratio).
    #[serde(default = "default_thumb_width")]
    pub width: u32,
    /// Tiles per sheet: columns × rows.
    #[serde(default = "default_thumb_grid")]
    pub columns: u32,
    #[serde(default = "default_thumb_grid")]
    pub rows: u32,
    /// Time of the poster in seconds (a tenth into the title when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster_secs: Option<f64>,
}

fn default_thumb_interval() -> f64 {
    10.0
}
fn default_thumb_width() -> u32 {
    160
}
fn default_thumb_grid() -> u32 {
    5
}

impl ThumbnailSpec {
    fn validate(&self) -> Result<(), String> {
        let ok = self.interval_secs.is_finite()
            && (0.5..=600.0).contains(&self.interval_secs)
            && (32..=640).contains(&self.width)
            && self.width.is_multiple_of(2)
            && (1..=20).contains(&self.columns)
            && (1..=20).contains(&self.rows)
            && self.poster_secs.is_none_or(|p| p.is_finite() && p >= 0.0);
        if ok {
            Ok(())
        } else {
            Err(
                "thumbnails need interval_secs 0.5..=600, an even width 32..=640, columns and rows 1..=20 and a \
                 poster time ≥ 0"
                    .into(),
            )
        }
    }
}

/// The thumbnails of a job, as planned from the source: one every `interval_secs` from 0 while inside the title,
/// `columns × rows` per sheet, tiles of `width × height` (display aspect, even), and the poster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThumbnailPlan {
    pub interval_secs: f64,
    pub width: u32,
    pub height: u32,
    pub columns: u32,
    pub rows: u32,
    pub count: u32,
    pub poster_secs: f64,
    pub poster_width: u32,
    pub poster_height: u32,
}

impl ThumbnailPlan {
    /// Sheets in all.
    pub fn sheets(&self) -> u32 {
        self.count.div_ceil((self.columns * self.rows).max(1))
    }
    /// The times of sheet `k`'s tiles.
    pub fn times(&self, k: u32) -> Vec<f64> {
        let per = self.columns * self.rows;
        (k * per..((k + 1) * per).min(self.count))
            .map(|i| f64::from(i) * self.interval_secs)
            .collect()
    }
}

fn default_language() -> String {
    "en-US".into()
}
fn default_index_chunk() -> f64 {
    120.0
}
fn default_true() -> bool {
    true
}
fn default_ladder() -> Ladder {
    Ladder::Adaptive { speed: 8, h264: None }
}
fn default_segment() -> f64 {
    4.0
}
fn default_audio() -> AudioSpec {
    AudioSpec {
        bitrate_kbps: 128,
        channels: 2,
        codecs: default_audio_codecs(),
        select: AudioSelection::default(),
        languages: Vec::new(),
        pair_mono: false,
    }
}
fn default_chunk() -> f64 {
    8.0
}

/// Languages the bundled speech model recognizes.
pub const INDEX_LANGUAGES: &[&str] = &["en-US", "en"];

/// A named recipe (AMS: a Transform): encoding to an adaptive set, speech indexing, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Whether the job encodes (false: an indexing-only preset; the encoding fields are then unused).
    #[serde(default = "default_true")]
    pub encode: bool,
    #[serde(default = "default_ladder")]
    pub ladder: Ladder,
    /// Segment duration in seconds (every segment starts with a key frame).
    #[serde(default = "default_segment")]
    pub segment_duration: f64,
    #[serde(default = "default_audio")]
    pub audio: AudioSpec,
    /// Longest chunk one encoder task takes, in seconds (rounded down to whole segments, at least one).
    #[serde(default = "default_chunk")]
    pub max_chunk_secs: f64,
    /// Speech indexing (captions and search), if wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexSpec>,
    /// Thumbnails (sprite sheets and a poster), if wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnails: Option<ThumbnailSpec>,
}

/// The standard ladder: (height, kbps).
const STANDARD_LADDER: &[(u32, u32)] = &[(1080, 4500), (720, 2500), (480, 1200), (360, 600)];
/// The standard H.264 ladder: (height, kbps), about 1.5× the AV1 rates for like quality (Apple's HLS authoring
/// specification suggests 6000/3000/1100-2000/730 kb/s for these heights).
const STANDARD_H264_LADDER: &[(u32, u32)] = &[(1080, 6000), (720, 3500), (480, 1800), (360, 900)];

impl Preset {
    /// Presets that always exist.
    pub fn builtin() -> Vec<Preset> {
        let mut presets = vec![
            Preset {
                name: "adaptive-av1".into(),
                description: "AV1 adaptive ladder 1080p/720p/480p/360p (no upscaling), 4 s segments, Opus 128 kb/s"
                    .into(),
                encode: true,
                ladder: Ladder::Adaptive { speed: 8, h264: None },
                segment_duration: 4.0,
                audio: default_audio(),
                max_chunk_secs: 8.0,
                index: None,
                thumbnails: None,
            },
            Preset {
                name: "tiny".into(),
                description:
                    "Small and fast, for tests and demos: 180p + 120p AV1 at speed 10, 1 s segments, Opus 64 kb/s"
                        .into(),
                encode: true,
                ladder: Ladder::Fixed {
                    rungs: vec![
                        FixedRung {
                            height: 180,
                            bitrate_kbps: 300,
                            encoding: VideoEncoding::Av1 { speed: 10 },
                        },
                        FixedRung {
                            height: 120,
                            bitrate_kbps: 150,
                            encoding: VideoEncoding::Av1 { speed: 10 },
                        },
                    ],
                },
                segment_duration: 1.0,
                audio: AudioSpec {
                    bitrate_kbps: 64,
                    channels: 2,
                    codecs: default_audio_codecs(),
                    select: AudioSelection::default(),
                    languages: Vec::new(),
                    pair_mono: false,
                },
                max_chunk_secs: 2.0,
                index: None,
                thumbnails: None,
            },
        ];
        // Indexing only (captions and search for an asset, encoded or not), and the tiny ladder with indexing.
        let index = IndexSpec {
            language: default_language(),
            max_chunk_secs: default_index_chunk(),
        };
        let mut speech = presets[0].clone();
        speech.name = "index-speech".into();
        speech.description =
            "Speech indexing only: WebVTT/TTML captions, transcript, keywords and search (US English)".into();
        speech.encode = false;
        speech.index = Some(index.clone());
        let mut tiny_indexed = presets[1].clone();
        tiny_indexed.name = "tiny-indexed".into();
        tiny_indexed.description = "The tiny ladder plus speech indexing (captions in the streams)".into();
        tiny_indexed.index = Some(index);
        // Every screen: the AV1 ladder and an H.264 ladder (devices without an AV1 decoder play the H.264 one).
        let mut adaptive = presets[0].clone();
        adaptive.name = "adaptive".into();
        adaptive.description = "AV1 ladder 1080p/720p/480p/360p and an H.264 High ladder at 6000/3500/1800/900 kb/s \
                                (no upscaling), 4 s segments, Opus and AAC-LC 128 kb/s"
            .into();
        adaptive.audio.codecs = vec![AudioEncoding::Opus, AudioEncoding::Aac];
        adaptive.thumbnails = Some(ThumbnailSpec {
            interval_secs: default_thumb_interval(),
            width: default_thumb_width(),
            columns: default_thumb_grid(),
            rows: default_thumb_grid(),
            poster_secs: None,
        });
        adaptive.ladder = Ladder::Adaptive {
            speed: 8,
            h264: Some("veryfast".into()),
        };
        let mut tiny_avc = presets[1].clone();
        tiny_avc.name = "tiny-avc".into();
        tiny_avc.description =
            "The tiny ladder in AV1 and in H.264 (180p + 120p each), Opus and AAC-LC, for tests and demos".into();
        tiny_avc.audio.codecs = vec![AudioEncoding::Opus, AudioEncoding::Aac];
        tiny_avc.thumbnails = Some(ThumbnailSpec {
            interval_secs: 1.0,
            width: 96,
            columns: 2,
            rows: 2,
            poster_secs: Some(2.0),
        });
        if let Ladder::Fixed { rungs } = &mut tiny_avc.ladder {
            let h264: Vec<FixedRung> = rungs
                .iter()
                .map(|r| FixedRung {
                    height: r.height,
                    bitrate_kbps: r.bitrate_kbps * 3 / 2,
                    encoding: VideoEncoding::H264 {
                        preset: "veryfast".into(),
                    },
                })
                .collect();
            rungs.extend(h264);
        }
        presets.push(speech);
        presets.push(tiny_indexed);
        presets.insert(0, adaptive);
        presets.push(tiny_avc);
        presets
    }

    /// Checks a user-defined preset.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err("name must be 1 to 64 characters of [A-Za-z0-9_-]".into());
        }
        if !self.encode && self.index.is_none() {
            return Err("a preset must encode, index, or both".into());
        }
        if let Some(ix) = &self.index {
            if !INDEX_LANGUAGES.iter().any(|l| l.eq_ignore_ascii_case(&ix.language)) {
                return Err(format!(
                    "index language {} is not available (available: {})",
                    ix.language,
                    INDEX_LANGUAGES.join(", ")
                ));
            }
            if !(ix.max_chunk_secs.is_finite() && (10.0..=600.0).contains(&ix.max_chunk_secs)) {
                return Err("index max_chunk_secs must be within 10..=600".into());
            }
        }
        if !(self.segment_duration.is_finite() && (0.5..=20.0).contains(&self.segment_duration)) {
            return Err("segment_duration must be between 0.5 and 20 seconds".into());
        }
        if !(self.max_chunk_secs.is_finite() && self.max_chunk_secs > 0.0 && self.max_chunk_secs <= 600.0) {
            return Err("max_chunk_secs must be in (0, 600]".into());
        }
        if !(8..=512).contains(&self.audio.bitrate_kbps) || !(1..=2).contains(&self.audio.channels) {
            return Err("audio needs 8..=512 kb/s and 1 or 2 channels".into());
        }
        if let Some(t) = &self.thumbnails {
            t.validate()?;
        }
        let codecs = &self.audio.codecs;
        if codecs.is_empty() || codecs.iter().enumerate().any(|(i, c)| codecs[..i].contains(c)) {
            return Err("audio codecs must list opus and/or aac, each once".into());
        }
        let langs = &self.audio.languages;
        if langs.len() > MAX_AUDIO_TRACKS || langs.iter().any(|l| vod_media::language_tag(l).is_none()) {
            return Err(format!(
                "audio languages must be at most {MAX_AUDIO_TRACKS} language tags like \"en\", \"fra\" or \"pt-BR\""
            ));
        }
        match &self.ladder {
            Ladder::Adaptive { speed, h264 } => {
                VideoEncoding::Av1 { speed: *speed }.validate()?;
                match h264 {
                    Some(preset) => VideoEncoding::H264 { preset: preset.clone() }.validate(),
                    None => Ok(()),
                }
            }
            Ladder::Fixed { rungs } if rungs.is_empty() || rungs.len() > 8 => {
                Err("a fixed ladder needs 1 to 8 rungs".into())
            }
            Ladder::Fixed { rungs } => {
                for r in rungs {
                    if !(64..=4320).contains(&r.height) || !(50..=100_000).contains(&r.bitrate_kbps) {
                        return Err("rungs need height 64..=4320 and 50..=100000 kb/s".into());
                    }
                    r.encoding.validate()?;
                }
                let mut names: Vec<(u32, &str)> = rungs.iter().map(|r| (r.height, r.encoding.family())).collect();
                names.sort();
                if names.windows(2).any(|w| w[0] == w[1]) {
                    return Err("two rungs of one codec have the same height".into());
                }
                Ok(())
            }
        }
    }

    /// Concrete rungs for a source: display size (rotation and aspect honoured), no upscaling, even dimensions.
    pub fn rungs_for(&self, media: &MediaInfo) -> Result<Vec<RungSpec>, String> {
        let Some(v) = media.video.first() else {
            // Audio only: no video rungs.
            return if media.audio.is_empty() {
                Err("the source has neither video nor audio".into())
            } else {
                Ok(Vec::new())
            };
        };
        let (w, h) = display_size(v);
        let aspect = w / h;
        let even = |x: f64| ((x / 2.0).round() as u32 * 2).max(2);
        let wanted: Vec<(u32, u32, VideoEncoding)> = match &self.ladder {
            Ladder::Adaptive { speed, h264 } => {
                let av1 = STANDARD_LADDER
                    .iter()
                    .map(|(hh, kb)| (*hh, *kb, VideoEncoding::Av1 { speed: *speed }));
                let avc = h264.iter().flat_map(|preset| {
                    STANDARD_H264_LADDER
                        .iter()
                        .map(|(hh, kb)| (*hh, *kb, VideoEncoding::H264 { preset: preset.clone() }))
                });
                av1.chain(avc).collect()
            }
            Ladder::Fixed { rungs } => rungs
                .iter()
                .map(|r| (r.height, r.bitrate_kbps, r.encoding.clone()))
                .collect(),
        };
        // AV1 rungs keep their historic names ("360p"); other codecs' carry their family ("360p-h264").
        let name = |p: u32, e: &VideoEncoding| match e {
            VideoEncoding::Av1 { .. } => format!("{p}p"),
            other => format!("{p}p-{}", other.family()),
        };
        // Rung "heights" name the short side, so portrait sources get portrait rungs of the same class.
        let portrait = h > w;
        let short = w.min(h);
        let size = |p: f64| {
            if portrait {
                (even(p), even(p / aspect))
            } else {
                (even(p * aspect), even(p))
            }
        };
        let mut out: Vec<RungSpec> = wanted
            .iter()
            .filter(|(p, _, _)| *p as f64 <= short.round())
            .map(|(p, kb, e)| {
                let (width, height) = size(*p as f64);
                RungSpec {
                    name: name(*p, e),
                    width,
                    height,
                    bitrate_kbps: *kb,
                    encoding: e.clone(),
                }
            })
            .collect();
        // Source smaller than every rung of a codec: one rung of that codec at source size with its smallest
        // rung's settings.
        for family in wanted.iter().map(|(_, _, e)| e.family()) {
            if out.iter().any(|r| r.encoding.family() == family) {
                continue;
            }
            let (_, kb, e) = wanted
                .iter()
                .rev()
                .find(|(_, _, e)| e.family() == family)
                .ok_or("the preset has no rungs")?;
            out.push(RungSpec {
                name: name(even(short), e),
                width: even(w),
                height: even(h),
                bitrate_kbps: *kb,
                encoding: e.clone(),
            });
        }
        if out.is_empty() {
            return Err("the preset has no rungs".into());
        }
        Ok(out)
    }
}

/// Job lifecycle (AMS's job states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    Queued,
    Scheduled,
    Processing,
    Finished,
    Error,
    Canceling,
    Canceled,
}

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Finished | JobState::Error | JobState::Canceled)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "Queued",
            JobState::Scheduled => "Scheduled",
            JobState::Processing => "Processing",
            JobState::Finished => "Finished",
            JobState::Error => "Error",
            JobState::Canceling => "Canceling",
            JobState::Canceled => "Canceled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Queued,
    Processing,
    Finished,
    Error,
    Canceled,
}

/// What a task does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TaskKind {
    /// Encode segments [first_segment, end_segment) of every rung.
    Video { first_segment: u32, end_segment: u32 },
    /// Encode audio rendition `ordinal` (0: the first) of the whole source: its streams, language and name.
    /// Tasks stored before several audio tracks read as the first audio stream.
    Audio {
        #[serde(default)]
        ordinal: u32,
        #[serde(default = "first_audio_stream")]
        source: AudioSource,
    },
    /// Recognize speech in the audio window [start_ms, end_ms) (decoded with a little overlap on both sides).
    Index { start_ms: u64, end_ms: u64 },
    /// Make thumbnail sprite sheet `sheet` (and, the first, the poster).
    Thumbnails { sheet: u32 },
}

fn first_audio_stream() -> AudioSource {
    AudioSource {
        streams: vec![0],
        channels: 0,
        language: None,
        label: None,
    }
}

/// One segment a task wrote: its object and timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub number: u32,
    /// Start and duration in the track's timescale.
    pub start: u64,
    pub duration: u64,
    pub size: u64,
    /// Video: where its key frame (the first sample) lies in the segment object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_frame: Option<KeyFrame>,
}

/// Where a video segment's key frame lies in its object: bytes `at..at + len` (after `styp`, `moof` and the
/// `mdat` header). An HLS I-frame playlist entry is the segment's bytes `0..at + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFrame {
    pub at: u64,
    pub len: u64,
}

/// What a finished task produced, per track (rendition name or "audio").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackOutput {
    pub track: String,
    /// RFC 6381 codec string of the track.
    #[serde(default)]
    pub codecs: String,
    pub timescale: u32,
    pub segments: Vec<SegmentRecord>,
    /// Audio: the language and name of the source track it was made of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub job_id: JobId,
    pub index: u32,
    pub kind: TaskKind,
    pub state: TaskState,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<TrackOutput>,
    pub updated_at: DateTime<Utc>,
}

/// The frame grid and segmentation of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Output frame rate as a fraction.
    pub frame_rate: (u32, u32),
    pub total_frames: u64,
    pub segment_duration: f64,
    pub segment_count: u32,
    pub has_audio: bool,
    /// The tasks, in order. Not stored with the job (its item holds counters only, whatever the task count): each
    /// task is an item of its own, and the fan-out re-plans the same list from the asset's probe and the preset.
    #[serde(default, skip_serializing)]
    pub tasks: Vec<TaskKind>,
    /// Clockwise display rotation of the source (0, 90, 180 or 270), applied to the pixels when encoding.
    #[serde(default)]
    pub rotation: u32,
    /// Thumbnails, when the preset asks for them and the source has video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnails: Option<ThumbnailPlan>,
}

/// An encoding job of one asset with one preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub asset_id: AssetId,
    pub preset: Preset,
    pub rungs: Vec<RungSpec>,
    pub plan: Plan,
    pub state: JobState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub tasks_total: u32,
    /// Tasks finished so far (an atomic counter in the store).
    #[serde(default)]
    pub tasks_done: u32,
    /// Tasks written and queued so far (the fan-out runs in steps; it only grows).
    #[serde(default)]
    pub tasks_queued: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Job {
    /// Progress in percent: finished tasks, the finalizer counting as the last step.
    pub fn progress(&self) -> u32 {
        if self.state == JobState::Finished {
            return 100;
        }
        let steps = self.tasks_total + 1;
        (self.tasks_done.min(self.tasks_total) * 100 / steps.max(1)).min(99)
    }
}

/// The exact frame rate for a probed rate: NTSC rates as n×1000/1001, others as integers or millihertz.
pub fn rational_frame_rate(fps: f64) -> Option<(u32, u32)> {
    if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
        return None;
    }
    for base in [24u32, 30, 48, 60, 120] {
        let ntsc = base as f64 * 1000.0 / 1001.0;
        if (fps - ntsc).abs() < 0.005 {
            return Some((base * 1000, 1001));
        }
    }
    if (fps - fps.round()).abs() < 0.01 {
        return Some((fps.round() as u32, 1));
    }
    Some(((fps * 1000.0).round() as u32, 1000))
}

/// First frame of segment `k`: ceil(k × segment_duration × fps), computed exactly in millisecond units.
pub fn segment_start_frame(k: u32, segment_duration: f64, frame_rate: (u32, u32)) -> u64 {
    let seg_ms = (segment_duration * 1000.0).round() as u128;
    let num = k as u128 * seg_ms * frame_rate.0 as u128;
    let den = 1000u128 * frame_rate.1.max(1) as u128;
    num.div_ceil(den) as u64
}

/// Cuts a probed source into tasks: video chunks of whole segments (at most `preset.max_chunk_secs` long) and one
/// audio task. Refuses sources the encoder cannot handle, before any work starts.
pub fn plan(media: &MediaInfo, preset: &Preset) -> Result<Plan, String> {
    let mut plan = if preset.encode {
        plan_encoding(media, preset)?
    } else {
        Plan {
            frame_rate: (0, 1),
            total_frames: 0,
            segment_duration: preset.segment_duration,
            segment_count: 0,
            has_audio: !media.audio.is_empty(),
            tasks: Vec::new(),
            rotation: 0,
            thumbnails: None,
        }
    };
    if let Some(ix) = &preset.index {
        plan.tasks.extend(plan_index(media, ix)?);
    }
    Ok(plan)
}

/// Index tasks: the audio cut into windows of at most `max_chunk_secs`.
fn plan_index(media: &MediaInfo, ix: &IndexSpec) -> Result<Vec<TaskKind>, String> {
    let a = media
        .audio
        .first()
        .ok_or("the source has no audio track: there is no speech to index")?;
    let duration = if a.duration_secs > 0.0 {
        a.duration_secs
    } else {
        media.duration_secs
    };
    let total_ms = (duration * 1000.0).round() as u64;
    if total_ms == 0 {
        return Err("the audio track is empty: there is no speech to index".into());
    }
    let step = ((ix.max_chunk_secs * 1000.0).round() as u64).max(1000);
    let mut tasks = Vec::new();
    let mut start = 0;
    while start < total_ms {
        let end = (start + step).min(total_ms);
        // A tail shorter than a tenth of a window joins the previous one.
        let end = if total_ms - end < step / 10 { total_ms } else { end };
        tasks.push(TaskKind::Index {
            start_ms: start,
            end_ms: end,
        });
        start = end;
        if tasks.len() > 100_000 {
            return Err("the source is too long to index".into());
        }
    }
    Ok(tasks)
}

/// The encoding part of a plan: video chunks of whole segments and one audio task.
fn plan_encoding(media: &MediaInfo, preset: &Preset) -> Result<Plan, String> {
    crate::service::check_supported(media)?;
    let Some(v) = media.video.first() else {
        return plan_audio_only(media, preset);
    };
    let frame_rate = rational_frame_rate(v.frame_rate).ok_or_else(|| format!("invalid frame rate {}", v.frame_rate))?;
    let duration = if v.duration_secs > 0.0 {
        v.duration_secs
    } else {
        media.duration_secs
    };
    let fps = frame_rate.0 as f64 / frame_rate.1 as f64;
    let total_frames = match v.frame_count {
        Some(n) if n > 0 && ((n as f64 / fps) - duration).abs() < 1.0 => n,
        // Without a count from the stream, the duration (Matroska's is the container's: it ends with the last
        // frame's full duration, and covers longer audio too) holds this many whole frames; a tenth of a frame
        // absorbs millisecond timestamps. Rounding would invent a frame the stream does not have.
        _ => (duration * fps + 0.1).floor() as u64,
    };
    if total_frames == 0 {
        return Err("the source has no video frames".into());
    }
    let mut segment_count = 0u32;
    while segment_start_frame(segment_count, preset.segment_duration, frame_rate) < total_frames {
        segment_count += 1;
        if segment_count > 1_000_000 {
            return Err("the source is too long".into());
        }
    }
    let per_chunk = ((preset.max_chunk_secs / preset.segment_duration).floor() as u32).max(1);
    let starts: Vec<u64> = (0..=segment_count)
        .map(|k| segment_start_frame(k, preset.segment_duration, frame_rate))
        .collect();
    let mut tasks: Vec<TaskKind> = chunk_bounds(&starts, per_chunk, &v.key_frames_ms, frame_rate)
        .windows(2)
        .map(|w| TaskKind::Video {
            first_segment: w[0],
            end_segment: w[1],
        })
        .collect();
    let audio = audio_tasks(media, preset)?;
    let has_audio = !audio.is_empty();
    tasks.extend(audio);
    let title_secs = total_frames as f64 * frame_rate.1 as f64 / frame_rate.0 as f64;
    let thumbnails = preset
        .thumbnails
        .as_ref()
        .map(|spec| plan_thumbnails(spec, display_size(v), title_secs))
        .transpose()?;
    if let Some(t) = &thumbnails {
        tasks.extend((0..t.sheets()).map(|sheet| TaskKind::Thumbnails { sheet }));
    }
    Ok(Plan {
        frame_rate,
        total_frames,
        segment_duration: preset.segment_duration,
        segment_count,
        has_audio,
        tasks,
        rotation: match v.rotation.map(|r| r.rem_euclid(360)) {
            Some(r @ (90 | 180 | 270)) => r as u32,
            _ => 0,
        },
        thumbnails,
    })
}

/// The display size of a video stream: pixel aspect and rotation applied.
fn display_size(v: &vod_media::VideoStream) -> (f64, f64) {
    let (mut w, mut h) = (v.width.max(1) as f64, v.height.max(1) as f64);
    // Non-square pixels: sized for the display aspect (output pixels are square).
    if let Some((ph, pv)) = v.pixel_aspect.filter(|(a, b)| *a > 0 && *b > 0) {
        w *= ph as f64 / pv as f64;
    }
    if matches!(v.rotation, Some(90) | Some(270)) {
        std::mem::swap(&mut w, &mut h);
    }
    (w, h)
}

/// Thumbnails of a title of `secs` shown at `display` size: tiles `spec.width` wide (never wider than the
/// source), the poster at the source's size up to 1280 wide.
fn plan_thumbnails(spec: &ThumbnailSpec, display: (f64, f64), secs: f64) -> Result<ThumbnailPlan, String> {
    let even = |x: f64| ((x / 2.0).round() as u32 * 2).max(16);
    let aspect = display.0 / display.1;
    let width = even(f64::from(spec.width).min(display.0));
    let poster_width = even(display.0.min(1280.0));
    let count = (secs / spec.interval_secs).ceil().max(1.0);
    if count > 100_000.0 {
        return Err("too many thumbnails: raise interval_secs".into());
    }
    Ok(ThumbnailPlan {
        interval_secs: spec.interval_secs,
        width,
        height: even(f64::from(width) / aspect),
        columns: spec.columns,
        rows: spec.rows,
        count: count as u32,
        poster_secs: spec.poster_secs.unwrap_or(secs / 10.0).min(secs).max(0.0),
        poster_width,
        poster_height: even(f64::from(poster_width) / aspect),
    })
}

/// What starting a chunk costs besides its pre-roll, counted as milliseconds of source decoded before the chunk's
/// start: one more task (a Lambda start, the source opened, every rung's encoder started). `vod-bench-encode` finds
/// a chunk's fixed CPU within its run-to-run spread, so this mostly stops chunks from multiplying for sub-second
/// savings.
const CHUNK_COST_MS: u64 = 1000;

/// Chunk boundaries (segment numbers, from 0 to the segment count) for segments starting at frames `starts`
/// (one entry per segment plus the end): every chunk at most `per_chunk` segments.
///
/// A chunk decodes from the source key frame at or before its start and drops the frames before it (its
/// pre-roll). Without key-frame times, or with one chunk per segment, chunks are `per_chunk` segments each, the
/// last shorter. With them, the cut minimises (pre-roll + [`CHUNK_COST_MS`]) summed over chunks: chunks start just
/// after source key frames where the length limit allows, and a chunk is added only when it saves more pre-roll
/// than it costs. Ties keep full chunks first, so a source with a key frame at every segment start is cut exactly
/// as without key frames. Dynamic programming over the segment boundaries, O(segments × per_chunk), bounded.
fn chunk_bounds(starts: &[u64], per_chunk: u32, key_frames_ms: &[u64], frame_rate: (u32, u32)) -> Vec<u32> {
    let segments = starts.len().saturating_sub(1);
    let per_chunk = (per_chunk as usize).max(1);
    // Bound on the planner's work (segments × per_chunk steps, ~a second of CPU at most); beyond, cut by count.
    const MAX_STEPS: usize = 50_000_000;
    if key_frames_ms.is_empty() || per_chunk == 1 || segments.saturating_mul(per_chunk) > MAX_STEPS {
        let mut bounds: Vec<u32> = (0..segments).step_by(per_chunk).map(|k| k as u32).collect();
        bounds.push(segments as u32);
        return bounds;
    }
    let (num, den) = (u128::from(frame_rate.0.max(1)), u128::from(frame_rate.1.max(1)));
    // Time of a frame in ms, and half a frame: a key frame that close after a boundary counts as on it.
    let ms = |frame: u64| (u128::from(frame) * 1000 * den / num) as u64;
    let half_frame = (500 * den / num) as u64;
    let pre_roll = |k: usize| -> u64 {
        let t = ms(starts[k]);
        let i = key_frames_ms.partition_point(|&kf| kf <= t.saturating_add(half_frame));
        match i.checked_sub(1).map(|i| key_frames_ms[i]) {
            Some(kf) => t.saturating_sub(kf),
            None => t,
        }
    };
    // cost[k]: least cost of cutting segments k.. into chunks; next[k]: where the chunk starting at k ends.
    let mut cost = vec![0u64; segments + 1];
    let mut next = vec![segments; segments + 1];
    for k in (0..segments).rev() {
        let own = CHUNK_COST_MS.saturating_add(pre_roll(k));
        let mut best = u64::MAX;
        for len in (1..=per_chunk.min(segments - k)).rev() {
            let c = own.saturating_add(cost[k + len]);
            if c < best {
                best = c;
                next[k] = k + len;
            }
        }
        cost[k] = best;
    }
    let mut bounds = vec![0u32];
    let mut k = 0;
    while k < segments {
        k = next[k];
        bounds.push(k as u32);
    }
    bounds
}

/// An audio task per audio rendition the preset chooses.
fn audio_tasks(media: &MediaInfo, preset: &Preset) -> Result<Vec<TaskKind>, String> {
    Ok(preset
        .audio
        .sources(&media.audio)?
        .into_iter()
        .enumerate()
        .map(|(i, source)| TaskKind::Audio {
            ordinal: i as u32,
            source,
        })
        .collect())
}

/// An audio-only source: an audio task per audio rendition; segments on a millisecond grid (there are no frames to align to).
fn plan_audio_only(media: &MediaInfo, preset: &Preset) -> Result<Plan, String> {
    let a = media.audio.first().ok_or("the source has neither video nor audio")?;
    let duration = if a.duration_secs > 0.0 {
        a.duration_secs
    } else {
        media.duration_secs
    };
    let frame_rate = (1000, 1);
    let total_frames = (duration * 1000.0).round() as u64;
    if total_frames == 0 {
        return Err("the source has no audio samples".into());
    }
    let mut segment_count = 0u32;
    while segment_start_frame(segment_count, preset.segment_duration, frame_rate) < total_frames {
        segment_count += 1;
        if segment_count > 1_000_000 {
            return Err("the source is too long".into());
        }
    }
    Ok(Plan {
        frame_rate,
        total_frames,
        segment_duration: preset.segment_duration,
        segment_count,
        has_audio: true,
        tasks: audio_tasks(media, preset)?,
        rotation: 0,
        thumbnails: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vod_media::{AudioStream, Container, VideoStream};

    fn media(w: u32, h: u32, fps: f64, secs: f64, rotation: Option<i32>) -> MediaInfo {
        MediaInfo {
            container: Container::Mp4,
            size: 1000,
            duration_secs: secs,
            bitrate: None,
            video: vec![VideoStream {
                codec: "h264".into(),
                width: w,
                height: h,
                frame_rate: fps,
                frame_count: Some((secs * fps).round() as u64),
                duration_secs: secs,
                bitrate: None,
                rotation,
                pixel_aspect: None,
                key_frames_ms: Vec::new(),
                field_order: None,
            }],
            audio: vec![AudioStream {
                codec: "aac".into(),
                channels: 2,
                sample_rate: 48000,
                duration_secs: secs,
                bitrate: None,
                language: None,
                title: None,
            }],
        }
    }

    fn builtin(name: &str) -> Preset {
        Preset::builtin()
            .into_iter()
            .find(|p| p.name == name)
            .expect("builtin preset")
    }

    #[test]
    fn the_default_adaptive_preset_has_an_av1_and_an_h264_ladder() {
        let p = builtin("adaptive");
        assert_eq!(Preset::builtin()[0].name, "adaptive", "listed first");
        let r = p.rungs_for(&media(1920, 1080, 25.0, 10.0, None)).expect("rungs");
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "1080p",
                "720p",
                "480p",
                "360p",
                "1080p-h264",
                "720p-h264",
                "480p-h264",
                "360p-h264"
            ]
        );
        assert!(r[..4].iter().all(|r| r.encoding == VideoEncoding::Av1 { speed: 8 }));
        assert!(r[4..].iter().all(|r| r.encoding.family() == "h264"));
        for (av1, avc) in r[..4].iter().zip(&r[4..]) {
            assert_eq!((av1.width, av1.height), (avc.width, avc.height));
            assert!(avc.bitrate_kbps > av1.bitrate_kbps, "H.264 at its own, higher bitrates");
        }
        // A source smaller than every rung still gets one rung of each codec.
        let small = p.rungs_for(&media(320, 180, 25.0, 10.0, None)).expect("rungs");
        assert_eq!(
            small.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["180p", "180p-h264"]
        );
        assert!(builtin("tiny-avc").validate().is_ok());
        assert_eq!(
            builtin("tiny-avc")
                .rungs_for(&media(640, 360, 25.0, 10.0, None))
                .expect("rungs")
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["180p", "120p", "180p-h264", "120p-h264"]
        );
    }

    #[test]
    fn rungs_name_their_encoder_and_old_records_read_as_av1() {
        let old: RungSpec =
            serde_json::from_str(r#"{"name":"360p","width":640,"height":360,"bitrate_kbps":600,"speed":8}"#)
                .expect("an old rung");
        assert_eq!(old.encoding, VideoEncoding::Av1 { speed: 8 });
        let avc = RungSpec {
            name: "360p-h264".into(),
            width: 640,
            height: 360,
            bitrate_kbps: 900,
            encoding: VideoEncoding::H264 {
                preset: "veryfast".into(),
            },
        };
        let json = serde_json::to_value(&avc).expect("serialize");
        assert_eq!(json["codec"], "h264");
        assert_eq!(json["preset"], "veryfast");
        assert_eq!(serde_json::from_value::<RungSpec>(json).expect("round trip"), avc);
        let fixed: FixedRung =
            serde_json::from_str(r#"{"height":360,"bitrate_kbps":900,"codec":"h264","preset":"fast"}"#)
                .expect("an H.264 rung");
        assert_eq!(fixed.encoding.family(), "h264");
        assert!(serde_json::from_str::<FixedRung>(r#"{"height":360,"bitrate_kbps":900,"codec":"vp9"}"#).is_err());
        assert!(serde_json::from_str::<FixedRung>(r#"{"height":360,"bitrate_kbps":900}"#).is_err());
        let mut p = builtin("tiny");
        p.name = "x".into();
        p.ladder = Ladder::Fixed {
            rungs: vec![FixedRung {
                height: 360,
                bitrate_kbps: 900,
                encoding: VideoEncoding::H264 { preset: "warp".into() },
            }],
        };
        assert!(p.validate().unwrap_err().contains("preset must be one of"));
        p.ladder = Ladder::Adaptive { speed: 11, h264: None };
        assert!(p.validate().is_err());
        p.ladder = Ladder::Fixed {
            rungs: vec![fixed.clone(), fixed],
        };
        assert!(p.validate().unwrap_err().contains("same height"));
    }

    #[test]
    fn thumbnails_are_planned_as_sheet_tasks() {
        let p = builtin("tiny-avc");
        let planned = plan(&media(320, 240, 25.0, 5.0, None), &p).expect("plan");
        let t = planned.thumbnails.clone().expect("thumbnails");
        assert_eq!((t.width, t.height, t.count, t.sheets()), (96, 72, 5, 2));
        assert_eq!((t.poster_width, t.poster_height, t.poster_secs), (320, 240, 2.0));
        assert_eq!(t.times(1), vec![4.0]);
        let sheets: Vec<&TaskKind> = planned
            .tasks
            .iter()
            .filter(|k| matches!(k, TaskKind::Thumbnails { .. }))
            .collect();
        assert_eq!(
            sheets,
            [&TaskKind::Thumbnails { sheet: 0 }, &TaskKind::Thumbnails { sheet: 1 }]
        );
        // Portrait (rotated) sources get portrait tiles; presets without thumbnails plan none.
        let t = plan_thumbnails(
            p.thumbnails.as_ref().expect("spec"),
            display_size(&media(1920, 1080, 30.0, 60.0, Some(90)).video[0]),
            60.0,
        )
        .expect("portrait");
        assert_eq!(
            (t.width, t.height, t.poster_width, t.poster_height, t.poster_secs),
            (96, 170, 1080, 1920, 2.0)
        );
        let none = plan(&media(320, 240, 25.0, 5.0, None), &builtin("tiny")).expect("plan");
        assert!(none.thumbnails.is_none() && !none.tasks.iter().any(|k| matches!(k, TaskKind::Thumbnails { .. })));
        let mut bad = builtin("tiny-avc");
        bad.name = "x".into();
        if let Some(t) = bad.thumbnails.as_mut() {
            t.width = 33;
        }
        assert!(bad.validate().unwrap_err().contains("thumbnails"));
    }

    fn track(channels: u16, language: Option<&str>, title: Option<&str>) -> AudioStream {
        AudioStream {
            codec: "pcm_s16le".into(),
            channels,
            sample_rate: 48000,
            duration_secs: 1.0,
            bitrate: None,
            language: language.map(Into::into),
            title: title.map(Into::into),
        }
    }

    #[test]
    fn audio_track_names_round_trip() {
        for e in [AudioEncoding::Opus, AudioEncoding::Aac] {
            for n in [0, 1, 7] {
                assert_eq!(AudioEncoding::of_track(&e.track_of(n)), Some((e, n)));
            }
        }
        assert_eq!(AudioEncoding::Aac.track_of(1), "audio-aac-2");
        for bad in [
            "audio-1",
            "audio-02",
            "audio-x",
            "audio-aac-",
            "audiox",
            "720p",
            "audio--2",
        ] {
            assert_eq!(AudioEncoding::of_track(bad), None, "{bad}");
        }
    }

    #[test]
    fn audio_sources_per_language_all_first_languages_and_mono_pairs() {
        let streams = [
            track(2, Some("eng"), Some("English")),
            track(2, Some("fre"), None),
            track(2, Some("eng"), Some("Commentary")),
            track(2, None, None),
        ];
        let mut spec = default_audio();
        let picked = |spec: &AudioSpec| -> Vec<Vec<u32>> {
            spec.sources(&streams).unwrap().into_iter().map(|s| s.streams).collect()
        };
        assert_eq!(picked(&spec), vec![vec![0], vec![1], vec![3]]);
        let first = spec.sources(&streams).unwrap().remove(0);
        assert_eq!(
            (first.language.as_deref(), first.label.as_deref()),
            (Some("eng"), Some("English"))
        );
        spec.select = AudioSelection::All;
        assert_eq!(picked(&spec), vec![vec![0], vec![1], vec![2], vec![3]]);
        spec.select = AudioSelection::First;
        assert_eq!(picked(&spec), vec![vec![0]]);
        spec.select = AudioSelection::PerLanguage;
        spec.languages = vec!["de".into()];
        assert!(spec.sources(&streams).unwrap_err().contains("no audio track in de"));
        // "fr" takes the track tagged "fre" (ISO 639-2/B).
        spec.languages = vec!["fr".into()];
        assert_eq!(picked(&spec), vec![vec![1]]);
        spec.languages = vec!["fr".into(), "eng".into()];
        assert_eq!(picked(&spec), vec![vec![1], vec![0]]);
        spec.select = AudioSelection::All;
        assert_eq!(picked(&spec), vec![vec![1], vec![0], vec![2]]);

        // Eight mono PCM tracks of a broadcast MXF: paired, the pairs of one (untagged) language -> the first.
        let mono: Vec<AudioStream> = (0..8).map(|_| track(1, None, None)).collect();
        let mut spec = default_audio();
        assert_eq!(spec.sources(&mono).unwrap()[0].streams, vec![0]);
        spec.pair_mono = true;
        spec.select = AudioSelection::All;
        let pairs: Vec<(Vec<u32>, u8)> = spec
            .sources(&mono)
            .unwrap()
            .into_iter()
            .map(|s| (s.streams, s.channels))
            .collect();
        assert_eq!(
            pairs,
            vec![(vec![0, 1], 2), (vec![2, 3], 2), (vec![4, 5], 2), (vec![6, 7], 2)]
        );
        // Never upmixed: a mono track alone stays mono; a pair follows the preset's channels.
        spec.pair_mono = false;
        assert_eq!(spec.sources(&mono).unwrap()[0].channels, 1);
        spec.pair_mono = true;
        spec.channels = 1;
        assert_eq!(spec.sources(&mono).unwrap()[0].channels, 1);
        spec.channels = 2;
        // A mono track beside a stereo one stays alone.
        let mixed = [track(1, None, None), track(2, None, None), track(1, None, None)];
        let units: Vec<Vec<u32>> = spec.sources(&mixed).unwrap().into_iter().map(|s| s.streams).collect();
        assert_eq!(units, vec![vec![0], vec![1], vec![2]]);
        // Too many tracks for one job.
        let many: Vec<AudioStream> = (0..9).map(|_| track(2, None, None)).collect();
        assert!(spec.sources(&many).unwrap_err().contains("at most 8"));
        assert!(spec.sources(&[]).unwrap().is_empty());
    }

    #[test]
    fn audio_languages_are_validated_and_old_audio_tasks_read_as_the_first_stream() {
        let mut p = builtin("tiny");
        p.audio.languages = vec!["en".into(), "pt-BR".into(), "fra".into()];
        assert!(p.validate().is_ok());
        for bad in ["", "english", "e", "en-", "und"] {
            p.audio.languages = vec![bad.into()];
            assert!(p.validate().unwrap_err().contains("language tags"), "{bad}");
        }
        let old: TaskKind = serde_json::from_str(r#"{"kind":"audio"}"#).expect("an old audio task");
        assert_eq!(
            old,
            TaskKind::Audio {
                ordinal: 0,
                source: first_audio_stream()
            }
        );
        let new = TaskKind::Audio {
            ordinal: 1,
            source: AudioSource {
                streams: vec![2, 3],
                channels: 2,
                language: Some("fr".into()),
                label: None,
            },
        };
        let json = serde_json::to_string(&new).unwrap();
        assert_eq!(serde_json::from_str::<TaskKind>(&json).unwrap(), new);
    }

    #[test]
    fn audio_tracks_by_codec_and_old_presets_and_outputs_read_as_opus() {
        let old: AudioSpec = serde_json::from_str(r#"{"bitrate_kbps":96,"channels":2}"#).expect("an old audio spec");
        assert_eq!(old.codecs, vec![AudioEncoding::Opus]);
        let both: AudioSpec =
            serde_json::from_str(r#"{"bitrate_kbps":96,"channels":2,"codecs":["opus","aac"]}"#).expect("both");
        assert_eq!(
            both.codecs.iter().map(|c| c.track()).collect::<Vec<_>>(),
            ["audio", "audio-aac"]
        );
        assert_eq!(AudioEncoding::of_track("audio-aac"), Some((AudioEncoding::Aac, 0)));
        assert!(serde_json::from_str::<AudioSpec>(r#"{"bitrate_kbps":96,"channels":2,"codecs":["mp3"]}"#).is_err());
        for (name, codecs) in [("adaptive", 2), ("tiny-avc", 2), ("adaptive-av1", 1), ("tiny", 1)] {
            assert_eq!(builtin(name).audio.codecs.len(), codecs, "{name}");
        }
        let mut p = builtin("tiny");
        p.name = "x".into();
        for bad in [vec![], vec![AudioEncoding::Aac, AudioEncoding::Aac]] {
            p.audio.codecs = bad;
            assert!(p.validate().unwrap_err().contains("audio codecs"));
        }

        // Outputs stored with one Opus rendition (an object or null) read as a list.
        let rendition = r#"{"codecs":"opus","channels":2,"sample_rate":48000,"bitrate":1,"timescale":48000,"init":"i","index":"x"}"#;
        let output = |audio: &str| {
            format!(
                r#"{{"job_id":"{}","bucket":"b","prefix":"p","segment_duration":1.0,"segment_count":1,"duration_secs":1.0,"renditions":[]{audio}}}"#,
                JobId::new_random()
            )
        };
        for (audio, names) in [
            (format!(r#","audio":{rendition}"#), vec!["audio"]),
            (r#","audio":null"#.to_string(), vec![]),
            (String::new(), vec![]),
            (
                format!(
                    r#","audio":[{rendition},{}]"#,
                    rendition.replacen('{', r#"{"name":"audio-aac","#, 1)
                ),
                vec!["audio", "audio-aac"],
            ),
        ] {
            let out: crate::AssetOutput = serde_json::from_str(&output(&audio)).expect("an output");
            assert_eq!(
                out.audio.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
                names,
                "{audio}"
            );
        }
    }

    #[test]
    fn adaptive_ladder_never_upscales_and_keeps_aspect() {
        let p = &builtin("adaptive-av1");
        let r = p.rungs_for(&media(1920, 1080, 25.0, 10.0, None)).unwrap();
        assert_eq!(
            r.iter().map(|r| r.height).collect::<Vec<_>>(),
            vec![1080, 720, 480, 360]
        );
        assert_eq!(r[1].width, 1280);
        let r = p.rungs_for(&media(1280, 720, 25.0, 10.0, None)).unwrap();
        assert_eq!(r.len(), 3);
        let r = p.rungs_for(&media(321, 241, 25.0, 10.0, None)).unwrap();
        assert_eq!((r[0].width, r[0].height), (322, 242));
        let portrait = p.rungs_for(&media(1920, 1080, 30.0, 5.0, Some(90))).unwrap();
        assert_eq!((portrait[0].width, portrait[0].height), (1080, 1920));
        let audio_only = MediaInfo {
            video: vec![],
            ..media(1, 1, 1.0, 1.0, None)
        };
        assert_eq!(
            p.rungs_for(&audio_only).map(|r| r.len()).ok(),
            (!audio_only.audio.is_empty()).then_some(0)
        );
        assert!(p
            .rungs_for(&MediaInfo {
                video: vec![],
                audio: vec![],
                ..media(1, 1, 1.0, 1.0, None)
            })
            .is_err());
    }

    #[test]
    fn planner_cuts_whole_segments_into_chunks() {
        let tiny = &builtin("tiny");
        let plan = plan(&media(320, 240, 25.0, 5.0, None), tiny).unwrap();
        assert_eq!(plan.frame_rate, (25, 1));
        assert_eq!(plan.total_frames, 125);
        assert_eq!(plan.segment_count, 5);
        assert_eq!(
            plan.tasks,
            vec![
                TaskKind::Video {
                    first_segment: 0,
                    end_segment: 2
                },
                TaskKind::Video {
                    first_segment: 2,
                    end_segment: 4
                },
                TaskKind::Video {
                    first_segment: 4,
                    end_segment: 5
                },
                TaskKind::Audio {
                    ordinal: 0,
                    source: AudioSource {
                        channels: 2,
                        ..first_audio_stream()
                    }
                }
            ]
        );
        let ntsc = plan_frames(29.97, 10.0, 4.0);
        assert_eq!(ntsc.frame_rate, (30000, 1001));
        assert_eq!(ntsc.segment_count, 3);
        assert_eq!(segment_start_frame(1, 4.0, (30000, 1001)), 120);
        assert_eq!(segment_start_frame(2, 4.0, (30000, 1001)), 240);
        // Very short sources still get one segment.
        assert_eq!(plan_frames(25.0, 0.2, 4.0).segment_count, 1);
    }

    #[test]
    fn frames_come_from_the_video_stream_not_the_container_duration() {
        // A 24 fps MKV of 144 frames with longer 5.1 audio: no frame count, and the container's duration
        // (6.021 s) stands for the video's. 6.021 × 24 = 144.5 frames, but the video has 144.
        let mut m = media(1280, 720, 24.0, 6.021, None);
        m.container = vod_media::Container::Matroska;
        m.video[0].frame_count = None;
        let p = builtin("adaptive-av1");
        assert_eq!(plan(&m, &p).unwrap().total_frames, 144);
        // Millisecond timestamps put the end of 144 frames at 5.9997 s: still 144.
        m.duration_secs = 5.9997;
        m.video[0].duration_secs = 5.9997;
        assert_eq!(plan(&m, &p).unwrap().total_frames, 144);
        // A count from the stream wins when it agrees with the duration.
        m.video[0].frame_count = Some(144);
        m.duration_secs = 6.021;
        m.video[0].duration_secs = 6.021;
        assert_eq!(plan(&m, &p).unwrap().total_frames, 144);
    }

    fn video_chunks(plan: &Plan) -> Vec<(u32, u32)> {
        plan.tasks
            .iter()
            .filter_map(|t| match t {
                TaskKind::Video {
                    first_segment,
                    end_segment,
                } => Some((*first_segment, *end_segment)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn chunks_start_just_after_source_key_frames() {
        // 32 s at 30 fps, x264's default GOP (a key frame every 250 frames: 0, 8.33, 16.67, 25 s), 2 s segments,
        // chunks of at most 8 s.
        let mut p = builtin("adaptive-av1");
        p.segment_duration = 2.0;
        p.max_chunk_secs = 8.0;
        let mut m = media(1280, 720, 30.0, 32.0, None);
        assert_eq!(
            video_chunks(&plan(&m, &p).unwrap()),
            vec![(0, 4), (4, 8), (8, 12), (12, 16)]
        );
        m.video[0].key_frames_ms = vec![0, 8333, 16667, 25000];
        // Greedy cuts decode 8 + 7.67 + 7.33 s before their chunks; these decode 2 + 1.67 + 1.33 + 1 s, for one
        // more chunk.
        assert_eq!(
            video_chunks(&plan(&m, &p).unwrap()),
            vec![(0, 1), (1, 5), (5, 9), (9, 13), (13, 16)]
        );
        // A key frame at every segment start: the same cut as without key frames.
        m.video[0].key_frames_ms = (0..16).map(|k| k * 2000).collect();
        assert_eq!(
            video_chunks(&plan(&m, &p).unwrap()),
            vec![(0, 4), (4, 8), (8, 12), (12, 16)]
        );
        // A key frame half a frame after a boundary (millisecond rounding) counts as on it.
        m.video[0].key_frames_ms = vec![0, 8010];
        assert_eq!(video_chunks(&plan(&m, &p).unwrap())[..2], [(0, 4), (4, 8)]);
        // Never longer than the limit, whatever the key frames; one segment per chunk leaves no choice.
        m.video[0].key_frames_ms = vec![0, 31_000];
        assert!(video_chunks(&plan(&m, &p).unwrap()).iter().all(|(a, b)| b - a <= 4));
        p.max_chunk_secs = 2.0;
        assert_eq!(video_chunks(&plan(&m, &p).unwrap()).len(), 16);
    }

    fn plan_frames(fps: f64, secs: f64, seg: f64) -> Plan {
        let mut p = builtin("adaptive-av1");
        p.segment_duration = seg;
        plan(&media(640, 360, fps, secs, None), &p).unwrap()
    }

    #[test]
    fn refuses_unsupported_sources_and_bad_presets() {
        let mut m = media(640, 360, 25.0, 2.0, None);
        m.video[0].codec = "cinepak".into();
        assert!(plan(&m, &builtin("adaptive-av1"))
            .unwrap_err()
            .contains("unsupported video codec"));
        let mut bad = builtin("tiny");
        bad.name = "no spaces".into();
        assert!(bad.validate().is_err());
        bad.name = "ok".into();
        bad.segment_duration = 0.0;
        assert!(bad.validate().is_err());
        assert!(Preset::builtin().iter().all(|p| p.validate().is_ok()));
        let mut neither = builtin("index-speech");
        neither.index = None;
        assert!(neither.validate().is_err());
        let mut klingon = builtin("index-speech");
        klingon.index = Some(IndexSpec {
            language: "tlh".into(),
            max_chunk_secs: 60.0,
        });
        assert!(klingon.validate().unwrap_err().contains("not available"));
    }

    #[test]
    fn index_plans_cut_the_audio_into_windows() {
        let speech = Preset::builtin()
            .into_iter()
            .find(|p| p.name == "index-speech")
            .unwrap();
        let p = plan(&media(640, 360, 25.0, 250.0, None), &speech).unwrap();
        assert_eq!(
            p.tasks,
            vec![
                TaskKind::Index {
                    start_ms: 0,
                    end_ms: 120_000
                },
                TaskKind::Index {
                    start_ms: 120_000,
                    end_ms: 250_000
                },
            ],
            "a 10 s tail joins the last window"
        );
        let both = Preset::builtin()
            .into_iter()
            .find(|p| p.name == "tiny-indexed")
            .unwrap();
        let p = plan(&media(320, 240, 25.0, 5.0, None), &both).unwrap();
        assert_eq!(p.tasks.len(), 5, "3 video chunks, audio, one index window");
        let mut silent = media(320, 240, 25.0, 5.0, None);
        silent.audio.clear();
        assert!(plan(&silent, &speech).unwrap_err().contains("no audio track"));
        // An index-only preset in JSON needs no encoding fields.
        let custom: Preset = serde_json::from_str(r#"{"name":"ix","encode":false,"index":{}}"#).unwrap();
        assert!(custom.validate().is_ok());
        assert_eq!(custom.index.unwrap().language, "en-US");
    }
}
