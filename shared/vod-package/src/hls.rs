//! HLS (RFC 8216, version 7 for fMP4): the multivariant playlist (an audio group per audio codec, one variant per
//! video rendition and audio group, an I-frame variant per video rendition, captions in a subtitles group), media
//! playlists with EXT-X-MAP, exact EXTINF durations and
//! ENDLIST; the subtitles playlist lists segmented WebVTT aligned with the media segments.
use std::fmt::Write;

use crate::timeline::{Presentation, TrackKind, TrackTimeline};
use crate::url::Enc;

fn frame_rate(fr: (u32, u32)) -> String {
    format!("{:.3}", fr.0 as f64 / fr.1.max(1) as f64)
}

/// The multivariant ("master") playlist.
pub fn multivariant(p: &Presentation) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let pre = &p.uri_prefix;
    let q = &p.query;
    // Every captions track in one SUBTITLES group; NAMEs must differ within a group, so a repeated one is numbered.
    let mut names: Vec<String> = Vec::new();
    for t in &p.text {
        let base = quoted(&t.name);
        let name = (1..)
            .map(|n| if n == 1 { base.clone() } else { format!("{base} ({n})") })
            .find(|n| !names.contains(n))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"{name}\",LANGUAGE=\"{}\",DEFAULT=NO,AUTOSELECT=YES,\
             FORCED=NO,URI=\"{pre}{}/media.m3u8{q}\"",
            quoted(&t.language),
            t.path
        );
        names.push(name);
    }
    let subs = if p.text.is_empty() { "" } else { ",SUBTITLES=\"subs\"" };
    // One AUDIO group per audio codec, named by its first track, holding a rendition per source audio track
    // (language); every video rendition is offered with each group, so a player that decodes one audio codec only
    // still has the whole ladder of each video codec.
    let groups = audio_groups(&mut out, p, subs);
    let groups: Vec<Option<AudioGroup>> = if groups.is_empty() {
        vec![None]
    } else {
        groups.into_iter().map(Some).collect()
    };
    // VIDEO-RANGE on every variant once one is HDR (PQ or HLG); SDR-only presentations leave it implied.
    let range = |v: &TrackTimeline| match v.kind {
        TrackKind::Video { colour: Some(c), .. } => c.video_range(),
        _ => "SDR",
    };
    let hdr = p.video.iter().any(|v| range(v) != "SDR");
    for audio in groups {
        for v in &p.video {
            let (w, h, fr) = match v.kind {
                TrackKind::Video {
                    width,
                    height,
                    frame_rate,
                    ..
                } => (width, height, frame_rate),
                TrackKind::Audio { .. } => continue,
            };
            let (mut peak, mut avg, mut codecs) = (v.peak_bitrate(), v.average_bitrate(), v.codecs.to_string());
            if let Some(a) = &audio {
                peak += a.peak;
                avg += a.average;
                codecs = format!("{codecs},{}", a.codecs);
            }
            let _ = write!(
                out,
                "#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={avg},CODECS=\"{codecs}\",RESOLUTION={w}x{h},\
                 FRAME-RATE={}",
                frame_rate(fr)
            );
            if hdr {
                let _ = write!(out, ",VIDEO-RANGE={}", range(v));
            }
            if let Some(a) = &audio {
                let _ = write!(out, ",AUDIO=\"{}\"", a.id);
            }
            out.push_str(subs);
            let _ = writeln!(out, "\n{pre}{}/media.m3u8{q}", v.name);
        }
    }
    // Trick play: an I-frame playlist per video rendition whose key frames are indexed.
    for v in &p.video {
        let (TrackKind::Video { width, height, .. }, Some(bandwidth)) = (&v.kind, v.iframe_peak_bitrate()) else {
            continue;
        };
        let video_range = if hdr {
            format!(",VIDEO-RANGE={}", range(v))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={},CODECS=\"{}\",RESOLUTION={width}x{height}{video_range},\
             URI=\"{pre}{}/iframes.m3u8{q}\"",
            bandwidth.max(1),
            v.codecs,
            v.name
        );
    }
    out
}

/// An HLS audio group: its id, its codec and the bitrates a variant adds for it (its largest member's).
struct AudioGroup<'a> {
    id: &'a str,
    codecs: &'a str,
    peak: u64,
    average: u64,
}

/// Writes the audio renditions (`#EXT-X-MEDIA`, grouped per codec, the group's first track the default) and, for
/// an audio-only presentation, a variant per group; returns the groups.
fn audio_groups<'a>(out: &mut String, p: &Presentation<'a>, subs: &str) -> Vec<AudioGroup<'a>> {
    let (pre, q) = (&p.uri_prefix, &p.query);
    let names = crate::timeline::audio_names(&p.audio);
    let mut groups: Vec<AudioGroup> = Vec::new();
    for (a, name) in p.audio.iter().zip(&names) {
        let id = crate::timeline::audio_group(a.name);
        let first = !groups.iter().any(|g| g.id == id);
        if first {
            groups.push(AudioGroup {
                id,
                codecs: a.codecs,
                peak: 0,
                average: 0,
            });
        }
        if let Some(g) = groups.iter_mut().find(|g| g.id == id) {
            g.peak = g.peak.max(a.peak_bitrate());
            g.average = g.average.max(a.average_bitrate());
        }
        let (channels, language) = match &a.kind {
            TrackKind::Audio { channels, language, .. } => (*channels, language.as_deref().unwrap_or("und")),
            TrackKind::Video { .. } => (2, "und"),
        };
        let alone = p
            .audio
            .iter()
            .filter(|b| crate::timeline::audio_group(b.name) == id)
            .count()
            == 1;
        if p.video.is_empty() && alone {
            // Audio only, one track of its codec: its playlist is the variant.
            continue;
        }
        let default = if first { "YES" } else { "NO" };
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{id}\",NAME=\"{}\",LANGUAGE=\"{}\",DEFAULT={default},AUTOSELECT=YES,\
             CHANNELS=\"{channels}\",URI=\"{pre}{}/media.m3u8{q}\"",
            quoted(name),
            quoted(language),
            a.name
        );
    }
    if p.video.is_empty() {
        // Audio only: a variant per group (its default track's playlist, the others as its alternatives).
        for g in &groups {
            let Some(a) = p.audio.iter().find(|a| crate::timeline::audio_group(a.name) == g.id) else {
                continue;
            };
            let alone = p
                .audio
                .iter()
                .filter(|b| crate::timeline::audio_group(b.name) == g.id)
                .count()
                == 1;
            let group = if alone {
                String::new()
            } else {
                format!(",AUDIO=\"{}\"", g.id)
            };
            let _ = writeln!(
                out,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"{group}{subs}\n{pre}{}/media.m3u8{q}",
                g.peak, g.average, g.codecs, a.name
            );
        }
        return Vec::new();
    }
    groups
}

/// A media playlist; URIs are relative to it (it lives at `{track}/media.m3u8`). Encrypted output names its
/// segments under `{enc}/` and carries `key_tags` (`#EXT-X-KEY` lines): after the clear EXT-X-MAP for AES-128 (the
/// init segment holds no media), before the protected EXT-X-MAP for CENC.
pub fn media(t: &TrackTimeline, enc: Option<Enc>, key_tags: &[String]) -> String {
    playlist(t, enc, key_tags, false)
}

/// The I-frame playlist of a video track (`{track}/iframes.m3u8`): one entry per key frame, lasting until the
/// next. Clear, an entry is the byte range of its segment from the start through the key frame (`styp`, `moof`,
/// `mdat` header, the key frame's sample); encrypted, it is the key frame as a segment of its own
/// (`{enc}/key-{n}.m4s`), protected like the segments. `None` when a key frame is not indexed.
pub fn iframes(t: &TrackTimeline, enc: Option<Enc>, key_tags: &[String]) -> Option<String> {
    t.iframe_peak_bitrate()?;
    Some(playlist(t, enc, key_tags, true))
}

fn playlist(t: &TrackTimeline, enc: Option<Enc>, key_tags: &[String], iframes: bool) -> String {
    let max = t.segments.iter().map(|s| t.segment_secs(s)).fold(0.0, f64::max);
    let target = (max.round() as u64).max(1);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS",
        t.segments.first().map_or(0, |s| s.number)
    );
    if iframes {
        out.push_str("#EXT-X-I-FRAMES-ONLY\n");
    }
    let prefix = enc.map(|e| format!("{}/", e.as_str())).unwrap_or_default();
    match enc {
        None => out.push_str("#EXT-X-MAP:URI=\"init.mp4\"\n"),
        Some(Enc::Aes128) => {
            out.push_str("#EXT-X-MAP:URI=\"init.mp4\"\n");
            key_tags.iter().for_each(|k| {
                let _ = writeln!(out, "{k}");
            });
        }
        Some(e) => {
            key_tags.iter().for_each(|k| {
                let _ = writeln!(out, "{k}");
            });
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}/init.mp4\"", e.as_str());
        }
    }
    for s in t.segments {
        let secs = t.segment_secs(s);
        let _ = match (iframes, enc, s.key_frame) {
            (true, None, Some(k)) => writeln!(
                out,
                "#EXTINF:{secs:.5},\n#EXT-X-BYTERANGE:{}@0\nseg-{:05}.m4s",
                k.at + k.len,
                s.number
            ),
            (true, _, _) => writeln!(out, "#EXTINF:{secs:.5},\n{prefix}key-{:05}.m4s", s.number),
            (false, _, _) => writeln!(out, "#EXTINF:{secs:.5},\n{prefix}seg-{:05}.m4s", s.number),
        };
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// A quoted-string attribute value: no double quotes or line breaks.
fn quoted(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '"' | '\n' | '\r')).collect()
}

/// The subtitles playlist: one WebVTT segment per media segment of `reference` (same numbers and durations).
pub fn subtitles(reference: &TrackTimeline) -> String {
    let max = reference
        .segments
        .iter()
        .map(|s| reference.segment_secs(s))
        .fold(0.0, f64::max);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-PLAYLIST-TYPE:VOD",
        (max.round() as u64).max(1),
        reference.segments.first().map_or(0, |s| s.number)
    );
    for s in reference.segments {
        let _ = writeln!(
            out,
            "#EXTINF:{:.5},\nseg-{:05}.vtt",
            reference.segment_secs(s),
            s.number
        );
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::overlapping;
    use vod_domain::{IndexedSegment, SegmentIndex};

    fn idx(ts: u32, d: &[u64], size: u64) -> SegmentIndex {
        let mut start = 0;
        SegmentIndex {
            track: "t".into(),
            codecs: "c".into(),
            timescale: ts,
            init: "i".into(),
            segments: d
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let s = IndexedSegment {
                        number: i as u32,
                        key: String::new(),
                        start,
                        duration: *d,
                        size,
                        key_frame: None,
                    };
                    start += d;
                    s
                })
                .collect(),
        }
    }

    #[test]
    fn writes_master_and_media_playlists() {
        let v = idx(12800, &[51200, 51200, 25600], 50_000);
        let a = idx(48000, &[192000, 192000, 96000], 16_000);
        let video = TrackTimeline {
            name: "360p",
            codecs: "av01.0.04M.08",
            timescale: 12800,
            kind: TrackKind::Video {
                width: 640,
                height: 360,
                frame_rate: (25, 1),
                colour: None,
            },
            segments: overlapping(&v, 0.0, 10.0),
        };
        let audio = TrackTimeline {
            name: "audio",
            codecs: "opus",
            timescale: 48000,
            kind: TrackKind::Audio {
                channels: 2,
                sample_rate: 48000,
                language: None,
                label: None,
            },
            segments: overlapping(&a, 0.0, 10.0),
        };
        let p = Presentation {
            video: vec![video.clone()],
            audio: vec![audio],
            uri_prefix: "clip.ism/".into(),
            query: "?filter=f".into(),
            text: Vec::new(),
            thumbnails: None,
        };
        let m = multivariant(&p);
        assert!(m.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"), "{m}");
        assert!(m.contains("URI=\"clip.ism/audio/media.m3u8?filter=f\""), "{m}");
        // 50 000 B per 2 s (last segment) = 200 kb/s peak; audio 16 000 B per 2 s = 64 kb/s.
        assert!(
            m.contains("BANDWIDTH=264000,AVERAGE-BANDWIDTH=158400,CODECS=\"av01.0.04M.08,opus\",RESOLUTION=640x360,FRAME-RATE=25.000,AUDIO=\"audio\"\nclip.ism/360p/media.m3u8?filter=f\n"),
            "{m}"
        );
        let aes = media(
            &video,
            Some(Enc::Aes128),
            &["#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/k\"".into()],
        );
        assert!(aes.contains("#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/k\"\n#EXTINF:4.00000,\naes128/seg-00000.m4s"), "{aes}");
        let media = media(&video, None, &[]);
        assert!(media.contains("#EXT-X-TARGETDURATION:4\n"), "{media}");
        assert!(media.contains("#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4.00000,\nseg-00000.m4s\n"));
        assert!(media.ends_with("#EXTINF:2.00000,\nseg-00002.m4s\n#EXT-X-ENDLIST\n"));
        let text = |language: &str, name: &str, path: &str| crate::timeline::TextTrack {
            language: language.into(),
            name: name.into(),
            path: path.into(),
        };
        let with_text = Presentation {
            text: vec![
                text("en-US", "English \"CC\"", "captions"),
                text("fr", "Français", "captions-fr-1"),
                text("fr-CA", "Français", "captions-fr-2"),
            ],
            ..p
        };
        let m = multivariant(&with_text);
        assert!(
            m.contains("#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"English CC\",LANGUAGE=\"en-US\",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI=\"clip.ism/captions/media.m3u8?filter=f\"\n\
                #EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"Français\",LANGUAGE=\"fr\",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI=\"clip.ism/captions-fr-1/media.m3u8?filter=f\"\n\
                #EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"Français (2)\",LANGUAGE=\"fr-CA\",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI=\"clip.ism/captions-fr-2/media.m3u8?filter=f\"\n"),
            "{m}"
        );
        assert_eq!(m.matches("SUBTITLES=\"subs\"\n").count(), 1, "{m}");
        assert!(m.contains("AUDIO=\"audio\",SUBTITLES=\"subs\"\n"), "{m}");
        let subs = subtitles(&video);
        assert!(subs.contains("#EXTINF:4.00000,\nseg-00000.vtt\n"), "{subs}");
        assert!(
            subs.ends_with("#EXTINF:2.00000,\nseg-00002.vtt\n#EXT-X-ENDLIST\n"),
            "{subs}"
        );
    }

    #[test]
    fn hdr_renditions_signal_their_range_and_colour() {
        use crate::timeline::tests::video_track;
        let v = idx(12800, &[51200, 51200], 50_000);
        let mut hdr = video_track("360p", "av01.0.04M.10.0.110.09.16.09.0", &v);
        if let TrackKind::Video { colour, .. } = &mut hdr.kind {
            *colour = Some(vod_media::ColourDescription {
                primaries: 9,
                transfer: 16,
                matrix: 9,
                full_range: false,
            });
        }
        let sdr = video_track("360p-h264", "avc1.64001e", &v);
        let p = Presentation {
            video: vec![hdr, sdr.clone()],
            audio: Vec::new(),
            uri_prefix: String::new(),
            query: String::new(),
            text: Vec::new(),
            thumbnails: None,
        };
        let m = multivariant(&p);
        assert!(m.contains("FRAME-RATE=25.000,VIDEO-RANGE=PQ\n360p/media.m3u8"), "{m}");
        assert!(
            m.contains("FRAME-RATE=25.000,VIDEO-RANGE=SDR\n360p-h264/media.m3u8"),
            "{m}"
        );
        let d = crate::dash::mpd(&p, None);
        for (name, value) in [
            ("ColourPrimaries", 9),
            ("TransferCharacteristics", 16),
            ("MatrixCoefficients", 9),
        ] {
            assert!(
                d.contains(&format!(
                    "<SupplementalProperty schemeIdUri=\"urn:mpeg:mpegB:cicp:{name}\" value=\"{value}\"/>"
                )),
                "{d}"
            );
        }
        assert_eq!(
            d.matches("SupplementalProperty").count(),
            3,
            "only the HDR rendition: {d}"
        );
        // SDR only: no VIDEO-RANGE at all.
        let m = multivariant(&Presentation { video: vec![sdr], ..p });
        assert!(!m.contains("VIDEO-RANGE"), "{m}");
    }

    #[test]
    fn an_audio_rendition_per_language_in_each_codec_group() {
        use crate::timeline::tests::{audio_track, video_track};
        let v = idx(12800, &[51200, 51200], 50_000);
        let a = idx(48000, &[192000, 192000], 16_000);
        let loud = idx(48000, &[192000, 192000], 32_000);
        let tagged = |name, codecs, index, language: &str, label: Option<&str>| {
            let mut t = audio_track(name, codecs, index);
            t.kind = TrackKind::Audio {
                channels: 2,
                sample_rate: 48000,
                language: Some(language.into()),
                label: label.map(Into::into),
            };
            t
        };
        let p = Presentation {
            video: vec![video_track("360p", "av01.0.04M.08", &v)],
            audio: vec![
                tagged("audio", "opus", &a, "en", Some("English \"original\"")),
                tagged("audio-aac", "mp4a.40.2", &a, "en", Some("English \"original\"")),
                tagged("audio-2", "opus", &loud, "fr", None),
                tagged("audio-aac-2", "mp4a.40.2", &a, "fr", None),
                tagged("audio-3", "opus", &a, "fr", None),
            ],
            uri_prefix: String::new(),
            query: String::new(),
            text: Vec::new(),
            thumbnails: None,
        };
        let m = multivariant(&p);
        for line in [
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"English original\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/media.m3u8\"",
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Français\",LANGUAGE=\"fr\",DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio-2/media.m3u8\"",
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Français 2\",LANGUAGE=\"fr\",DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio-3/media.m3u8\"",
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio-aac\",NAME=\"English original\",LANGUAGE=\"en\",DEFAULT=YES,",
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio-aac\",NAME=\"Français\",LANGUAGE=\"fr\",DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio-aac-2/media.m3u8\"",
        ] {
            assert!(m.contains(line), "{line} in {m}");
        }
        // A variant per video rendition and group, counting the group's largest track (the louder French Opus track in "audio").
        let variants: Vec<&str> = m.lines().filter(|l| l.starts_with("#EXT-X-STREAM-INF")).collect();
        assert_eq!(variants.len(), 2, "{m}");
        assert!(
            variants[0].starts_with("#EXT-X-STREAM-INF:BANDWIDTH=164000,") && variants[0].ends_with("AUDIO=\"audio\""),
            "{m}"
        );
        assert!(
            variants[1].starts_with("#EXT-X-STREAM-INF:BANDWIDTH=132000,")
                && variants[1].ends_with("AUDIO=\"audio-aac\""),
            "{m}"
        );
        // Audio only: a variant per group, its other languages as alternatives.
        let m = multivariant(&Presentation {
            video: Vec::new(),
            ..p.clone()
        });
        assert!(m.contains("CODECS=\"opus\",AUDIO=\"audio\"\naudio/media.m3u8\n"), "{m}");
        assert!(
            m.contains("CODECS=\"mp4a.40.2\",AUDIO=\"audio-aac\"\naudio-aac/media.m3u8\n"),
            "{m}"
        );
        assert_eq!(m.matches("#EXT-X-MEDIA:TYPE=AUDIO").count(), 5, "{m}");

        let d = crate::dash::mpd(&p, None);
        let sets: Vec<&str> = d
            .split("<AdaptationSet")
            .filter(|s| s.contains("contentType=\"audio\""))
            .collect();
        assert_eq!(sets.len(), 5, "{d}");
        assert!(
            sets[0].contains("lang=\"en\"")
                && sets[0].contains("<Label>English &quot;original&quot;</Label>")
                && sets[0].contains("value=\"main\""),
            "{d}"
        );
        assert!(
            sets[1].contains("lang=\"en\"")
                && sets[1].contains("codecs=\"mp4a.40.2\"")
                && sets[1].contains("value=\"main\""),
            "{d}"
        );
        assert!(
            sets[2].contains("lang=\"fr\"")
                && sets[2].contains("<Label>Français</Label>")
                && sets[2].contains("value=\"alternate\""),
            "{d}"
        );
    }

    #[test]
    fn an_audio_group_per_codec_and_every_video_with_each() {
        use crate::timeline::tests::{audio_track, video_track};
        let v = idx(12800, &[51200, 51200], 50_000);
        let a = idx(48000, &[192000, 192000], 16_000);
        let video = |name, codecs| video_track(name, codecs, &v);
        let audio = |name, codecs| audio_track(name, codecs, &a);
        let p = Presentation {
            video: vec![video("360p", "av01.0.04M.08"), video("360p-h264", "avc1.64001e")],
            audio: vec![audio("audio", "opus"), audio("audio-aac", "mp4a.40.2")],
            uri_prefix: String::new(),
            query: String::new(),
            text: Vec::new(),
            thumbnails: None,
        };
        let m = multivariant(&p);
        for group in ["audio", "audio-aac"] {
            assert!(
                m.contains(&format!(
                    "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{group}\",NAME=\"Audio\",LANGUAGE=\"und\",DEFAULT=YES,"
                )),
                "{m}"
            );
        }
        let variants: Vec<(&str, &str)> = m
            .lines()
            .zip(m.lines().skip(1))
            .filter(|(inf, _)| inf.starts_with("#EXT-X-STREAM-INF"))
            .collect();
        assert_eq!(variants.len(), 4, "{m}");
        for (codecs, group, uri) in [
            ("av01.0.04M.08,opus", "audio", "360p/"),
            ("avc1.64001e,opus", "audio", "360p-h264/"),
            ("av01.0.04M.08,mp4a.40.2", "audio-aac", "360p/"),
            ("avc1.64001e,mp4a.40.2", "audio-aac", "360p-h264/"),
        ] {
            assert!(
                variants
                    .iter()
                    .any(|(inf, u)| inf.contains(&format!("CODECS=\"{codecs}\""))
                        && inf.ends_with(&format!("AUDIO=\"{group}\""))
                        && u.starts_with(uri)),
                "{codecs} with {group}: {m}"
            );
        }
        // Audio only: each audio playlist is a variant of its own.
        let m = multivariant(&Presentation { video: Vec::new(), ..p });
        assert!(m.contains("CODECS=\"opus\"\naudio/media.m3u8\n"), "{m}");
        assert!(m.contains("CODECS=\"mp4a.40.2\"\naudio-aac/media.m3u8\n"), "{m}");
        assert!(!m.contains("EXT-X-MEDIA:TYPE=AUDIO"), "{m}");
    }

    #[test]
    fn iframe_playlists_name_each_key_frame() {
        use crate::timeline::tests::video_track;
        use vod_domain::job::KeyFrame;
        let mut v = idx(12800, &[51200, 51200, 25600], 50_000);
        fn p(v: &vod_domain::SegmentIndex) -> Presentation<'_> {
            Presentation {
                video: vec![video_track("360p", "avc1.64001e", v)],
                audio: Vec::new(),
                uri_prefix: String::new(),
                query: String::new(),
                text: Vec::new(),
                thumbnails: None,
            }
        }
        // Not indexed (an output made before): no I-frame variant, no playlist.
        assert!(!multivariant(&p(&v)).contains("I-FRAME"));
        assert!(iframes(&video_track("360p", "avc1.64001e", &v), None, &[]).is_none());
        for (i, s) in v.segments.iter_mut().enumerate() {
            s.key_frame = Some(KeyFrame {
                at: 800,
                len: 9_000 + i as u64 * 100,
            });
        }
        let m = multivariant(&p(&v));
        // The largest entry over its duration: 10 000 B in the last, 2 s segment = 40 kb/s.
        assert!(
            m.contains("#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=40000,CODECS=\"avc1.64001e\",RESOLUTION=640x360,URI=\"360p/iframes.m3u8\"\n"),
            "{m}"
        );
        let t = video_track("360p", "avc1.64001e", &v);
        let clear = iframes(&t, None, &[]).expect("indexed");
        assert!(
            clear.contains("#EXT-X-I-FRAMES-ONLY\n#EXT-X-MAP:URI=\"init.mp4\"\n"),
            "{clear}"
        );
        assert!(
            clear.contains("#EXTINF:4.00000,\n#EXT-X-BYTERANGE:9800@0\nseg-00000.m4s\n#EXTINF:4.00000,\n#EXT-X-BYTERANGE:9900@0\nseg-00001.m4s\n"),
            "{clear}"
        );
        let cbcs = iframes(&t, Some(Enc::Cbcs), &["#EXT-X-KEY:METHOD=SAMPLE-AES".into()]).expect("indexed");
        assert!(
            cbcs.contains("#EXT-X-KEY:METHOD=SAMPLE-AES\n#EXT-X-MAP:URI=\"cbcs/init.mp4\"\n#EXTINF:4.00000,\ncbcs/key-00000.m4s\n"),
            "{cbcs}"
        );
        assert!(!cbcs.contains("BYTERANGE"), "{cbcs}");
    }
}
