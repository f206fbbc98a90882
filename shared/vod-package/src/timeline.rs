//! The presentation a manifest describes: per kept track, the run of segments that overlaps the filtered time
//! range (snapped to whole segments), with bitrates measured from the segment sizes.
use vod_domain::{IndexedSegment, SegmentIndex};

/// What kind of track, with the properties manifests advertise.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackKind {
    Video {
        width: u32,
        height: u32,
        frame_rate: (u32, u32),
        /// Its colour description, if it signals one (absent: BT.709 SDR).
        colour: Option<vod_media::ColourDescription>,
    },
    Audio {
        channels: u8,
        sample_rate: u32,
        /// The source track's language tag and name, where it had them.
        language: Option<String>,
        label: Option<String>,
    },
}

/// One track of a presentation.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackTimeline<'a> {
    pub name: &'a str,
    pub codecs: &'a str,
    pub timescale: u32,
    pub kind: TrackKind,
    /// The kept segments, in order (never empty).
    pub segments: &'a [IndexedSegment],
}

/// The segments of `index` overlapping `[start, end)` seconds; empty if none.
pub fn overlapping(index: &SegmentIndex, start: f64, end: f64) -> &[IndexedSegment] {
    let ts = index.timescale.max(1) as f64;
    let first = index
        .segments
        .iter()
        .position(|s| (s.start + s.duration) as f64 / ts > start + 1e-9);
    let Some(first) = first else {
        return &[];
    };
    let last = index.segments[first..]
        .iter()
        .position(|s| s.start as f64 / ts >= end - 1e-9)
        .map_or(index.segments.len(), |p| first + p);
    &index.segments[first..last]
}

impl TrackTimeline<'_> {
    fn secs(&self, t: u64) -> f64 {
        t as f64 / self.timescale.max(1) as f64
    }
    pub fn start_secs(&self) -> f64 {
        self.segments.first().map_or(0.0, |s| self.secs(s.start))
    }
    pub fn duration_secs(&self) -> f64 {
        self.secs(self.segments.iter().map(|s| s.duration).sum())
    }
    pub fn segment_secs(&self, s: &IndexedSegment) -> f64 {
        self.secs(s.duration)
    }
    /// Mean bits per second over the kept segments.
    pub fn average_bitrate(&self) -> u64 {
        let d = self.duration_secs();
        if d <= 0.0 {
            return 0;
        }
        (self.segments.iter().map(|s| s.size).sum::<u64>() as f64 * 8.0 / d).ceil() as u64
    }
    /// Largest bits per second of one I-frame entry (a segment's bytes through its key frame over the segment's
    /// duration); `None` when a segment's key frame is not indexed (outputs made before I-frame playlists).
    pub fn iframe_peak_bitrate(&self) -> Option<u64> {
        let mut peak = 0;
        for s in self.segments {
            let k = s.key_frame?;
            if s.duration > 0 {
                peak = peak.max(((k.at + k.len) as f64 * 8.0 / self.secs(s.duration)).ceil() as u64);
            }
        }
        Some(peak)
    }
    /// Largest bits per second of one segment (HLS BANDWIDTH, DASH @bandwidth).
    pub fn peak_bitrate(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.duration > 0)
            .map(|s| (s.size as f64 * 8.0 / self.secs(s.duration)).ceil() as u64)
            .max()
            .unwrap_or(0)
    }
}

/// Everything a manifest writer needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Presentation<'a> {
    pub video: Vec<TrackTimeline<'a>>,
    /// The audio tracks, one per audio codec.
    pub audio: Vec<TrackTimeline<'a>>,
    /// Prefix of track URIs relative to the manifest: `""` beside `{name}.ism/manifest(…)`, `"{name}.ism/"` for
    /// the `main.*` aliases.
    pub uri_prefix: String,
    /// Query carried to media playlists (`?filter=a,b`), or empty.
    pub query: String,
    /// The captions tracks: the one generated from the speech first (if the asset was indexed), then the sidecar
    /// tracks.
    pub text: Vec<TextTrack>,
    /// The thumbnails (DASH image AdaptationSet), when the asset has them and the presentation starts at 0.
    pub thumbnails: Option<&'a vod_domain::Thumbnails>,
}

/// A captions (subtitles) track: WebVTT, segmented like the media for HLS, one file for DASH.
#[derive(Debug, Clone, PartialEq)]
pub struct TextTrack {
    /// BCP 47 language tag.
    pub language: String,
    /// Human-readable name shown by players.
    pub name: String,
    /// Its path element in stream URLs (`captions`, `captions-{id}`: see `url::captions_track`).
    pub path: String,
}

/// The HLS audio group (and DASH audio AdaptationSet family) of an audio track: its codec's first track name
/// (`audio-2` belongs to `audio`, `audio-aac-3` to `audio-aac`).
pub fn audio_group(track: &str) -> &str {
    vod_domain::job::AudioEncoding::of_track(track).map_or(track, |(e, _)| e.track())
}

/// The name players show for an audio track: its label, else its language's name ("Français"), else "Audio";
/// made unique within a group by a number.
pub fn audio_names<'a>(tracks: &[TrackTimeline<'a>]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(tracks.len());
    for (i, t) in tracks.iter().enumerate() {
        let (language, label) = match &t.kind {
            TrackKind::Audio { language, label, .. } => (language.as_deref(), label.as_deref()),
            TrackKind::Video { .. } => (None, None),
        };
        let base = label
            .map(str::to_string)
            .or_else(|| language.and_then(vod_media::language_name))
            .unwrap_or_else(|| "Audio".into());
        let group = audio_group(t.name);
        let same_group = |j: usize| audio_group(tracks[j].name) == group;
        let mut name = base.clone();
        let mut n = 2;
        while (0..i).any(|j| same_group(j) && names[j] == name) {
            name = format!("{base} {n}");
            n += 1;
        }
        names.push(name);
    }
    names
}

impl Presentation<'_> {
    /// Length of the presentation: the longest kept track.
    pub fn duration_secs(&self) -> f64 {
        self.video
            .iter()
            .chain(self.audio.iter())
            .map(TrackTimeline::duration_secs)
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn index(timescale: u32, durations: &[u64]) -> SegmentIndex {
        let mut start = 0;
        SegmentIndex {
            track: "v".into(),
            codecs: "av01.0.04M.08".into(),
            timescale,
            init: "init.mp4".into(),
            segments: durations
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let s = IndexedSegment {
                        number: i as u32,
                        key: format!("seg-{i:05}.m4s"),
                        start,
                        duration: *d,
                        size: 1000 * (i as u64 + 1),
                        key_frame: None,
                    };
                    start += d;
                    s
                })
                .collect(),
        }
    }

    /// A 640x360 25 fps video track over `idx` (whole).
    pub(crate) fn video_track<'a>(name: &'a str, codecs: &'a str, idx: &'a SegmentIndex) -> TrackTimeline<'a> {
        TrackTimeline {
            name,
            codecs,
            timescale: idx.timescale,
            kind: TrackKind::Video {
                width: 640,
                height: 360,
                frame_rate: (25, 1),
                colour: None,
            },
            segments: overlapping(idx, 0.0, f64::MAX),
        }
    }

    /// A stereo 48 kHz audio track over `idx` (whole).
    pub(crate) fn audio_track<'a>(name: &'a str, codecs: &'a str, idx: &'a SegmentIndex) -> TrackTimeline<'a> {
        TrackTimeline {
            name,
            codecs,
            timescale: idx.timescale,
            kind: TrackKind::Audio {
                channels: 2,
                sample_rate: 48000,
                language: None,
                label: None,
            },
            segments: overlapping(idx, 0.0, f64::MAX),
        }
    }

    #[test]
    fn snaps_time_ranges_to_segments() {
        let idx = index(1000, &[4000, 4000, 2000]);
        let nums = |s: &[IndexedSegment]| s.iter().map(|s| s.number).collect::<Vec<_>>();
        assert_eq!(nums(overlapping(&idx, 0.0, 10.0)), vec![0, 1, 2]);
        assert_eq!(nums(overlapping(&idx, 4.0, 8.0)), vec![1]);
        assert_eq!(nums(overlapping(&idx, 3.9, 8.1)), vec![0, 1, 2]);
        assert_eq!(nums(overlapping(&idx, 0.0, 4.0)), vec![0]);
        assert!(overlapping(&idx, 10.0, 20.0).is_empty());
        let t = TrackTimeline {
            name: "v",
            codecs: "c",
            timescale: 1000,
            kind: TrackKind::Audio {
                channels: 2,
                sample_rate: 48000,
                language: None,
                label: None,
            },
            segments: overlapping(&idx, 0.0, 10.0),
        };
        assert_eq!(t.duration_secs(), 10.0);
        assert_eq!(t.average_bitrate(), 6000 * 8 / 10);
        assert_eq!(t.peak_bitrate(), 3000 * 8 / 2);
    }
}
