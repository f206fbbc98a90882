//! DASH (ISO/IEC 23009-1): a static MPD, live profile, one Period; per track a SegmentTemplate with a
//! SegmentTimeline built from the segment index (exact durations; runs of equal durations folded with `r`);
//! captions as a text AdaptationSet with one WebVTT file.
use std::fmt::Write;

use quick_xml::escape::escape;

use crate::timeline::{Presentation, TrackKind, TrackTimeline};
use crate::url::Enc;

/// One DRM system signalled in the MPD.
#[derive(Debug, Clone, PartialEq)]
pub struct DashDrm {
    /// The system id as a UUID string (`edef8ba9-79d6-4ace-a3c8-27dcd51d21ed`).
    pub system_id: String,
    pub value: String,
    /// The system's `pssh` box, base64 (`cenc:pssh`).
    pub pssh_b64: Option<String>,
}

/// Common Encryption signalling of an MPD.
#[derive(Debug, Clone, PartialEq)]
pub struct DashProtection {
    pub enc: Enc,
    /// The default KID as a UUID string.
    pub kid: String,
    pub systems: Vec<DashDrm>,
}

fn content_protection(out: &mut String, prot: &DashProtection) {
    let _ = writeln!(
        out,
        "      <ContentProtection schemeIdUri=\"urn:mpeg:dash:mp4protection:2011\" value=\"{}\" \
         cenc:default_KID=\"{}\"/>",
        prot.enc.as_str(),
        escape(prot.kid.as_str())
    );
    for d in &prot.systems {
        let _ = write!(
            out,
            "      <ContentProtection schemeIdUri=\"urn:uuid:{}\" value=\"{}\"",
            escape(d.system_id.as_str()),
            escape(d.value.as_str())
        );
        match &d.pssh_b64 {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "><cenc:pssh>{}</cenc:pssh></ContentProtection>",
                    escape(p.as_str())
                );
            }
            None => out.push_str("/>\n"),
        }
    }
}

/// ISO 8601 duration with millisecond precision.
fn iso_duration(secs: f64) -> String {
    format!("PT{:.3}S", secs.max(0.0))
}

fn timeline(t: &TrackTimeline) -> String {
    let mut out = String::from("<SegmentTimeline>");
    let mut i = 0;
    let segs = t.segments;
    while i < segs.len() {
        let s = &segs[i];
        let mut repeat = 0;
        while i + repeat + 1 < segs.len()
            && segs[i + repeat + 1].duration == s.duration
            && segs[i + repeat + 1].start == segs[i + repeat].start + segs[i + repeat].duration
        {
            repeat += 1;
        }
        let _ = write!(out, "<S t=\"{}\" d=\"{}\"", s.start, s.duration);
        if repeat > 0 {
            let _ = write!(out, " r=\"{repeat}\"");
        }
        out.push_str("/>");
        i += repeat + 1;
    }
    out.push_str("</SegmentTimeline>");
    out
}

fn representation(out: &mut String, t: &TrackTimeline, prefix: &str, enc: Option<Enc>) {
    let id = escape(t.name);
    let dir = match enc {
        Some(e) => format!("{id}/{}", e.as_str()),
        None => id.to_string(),
    };
    let _ = write!(
        out,
        "      <Representation id=\"{id}\" codecs=\"{}\" bandwidth=\"{}\"",
        escape(t.codecs),
        t.peak_bitrate().max(1)
    );
    match t.kind {
        TrackKind::Video {
            width,
            height,
            frame_rate,
            colour,
        } => {
            let _ = writeln!(
                out,
                " width=\"{width}\" height=\"{height}\" frameRate=\"{}/{}\" sar=\"1:1\">",
                frame_rate.0,
                frame_rate.1.max(1)
            );
            // The colour description as coding-independent code points (ISO/IEC 23001-8), as DASH-IF IOP asks of
            // HDR: players pick what the display renders.
            if let Some(c) = colour {
                for (name, value) in [
                    ("ColourPrimaries", c.primaries),
                    ("TransferCharacteristics", c.transfer),
                    ("MatrixCoefficients", c.matrix),
                ] {
                    let _ = writeln!(
                        out,
                        "        <SupplementalProperty schemeIdUri=\"urn:mpeg:mpegB:cicp:{name}\" value=\"{value}\"/>"
                    );
                }
            }
        }
        TrackKind::Audio {
            channels, sample_rate, ..
        } => {
            let _ = write!(
                out,
                " audioSamplingRate=\"{sample_rate}\">\n        <AudioChannelConfiguration \
                 schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{channels}\"/>\n"
            );
        }
    }
    let first = t.segments.first();
    let _ = writeln!(
        out,
        "        <SegmentTemplate timescale=\"{}\" presentationTimeOffset=\"{}\" startNumber=\"{}\" \
         initialization=\"{prefix}{dir}/init.mp4\" media=\"{prefix}{dir}/seg-$Number%05d$.m4s\">{}</SegmentTemplate>",
        t.timescale,
        first.map_or(0, |s| s.start),
        first.map_or(0, |s| s.number),
        timeline(t)
    );
    out.push_str("      </Representation>\n");
}

/// The codec family of an RFC 6381 codec string: its sample entry type (`av01.0.08M.08` → `av01`).
fn codec_family(codecs: &str) -> &str {
    codecs.split('.').next().unwrap_or(codecs)
}

/// The MPD of a presentation, with Common Encryption signalling when `protection` is given.
pub fn mpd(p: &Presentation, protection: Option<&DashProtection>) -> String {
    let enc = protection.map(|x| x.enc);
    let duration = iso_duration(p.duration_secs());
    let max_seg = p
        .video
        .iter()
        .chain(p.audio.iter())
        .flat_map(|t| t.segments.iter().map(|s| t.segment_secs(s)))
        .fold(1.0, f64::max);
    let prefix = escape(p.uri_prefix.as_str()).into_owned();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         xmlns:cenc=\"urn:mpeg:cenc:2013\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" type=\"static\" \
         mediaPresentationDuration=\"{duration}\" minBufferTime=\"{}\">\n  <Period id=\"0\" start=\"PT0S\" \
         duration=\"{duration}\">",
        iso_duration(max_seg.ceil())
    );
    // One video AdaptationSet per codec family (`av01`, `avc1`…): a player switches bitrates within a set and
    // picks the set its decoders support; one audio AdaptationSet per audio codec likewise. The first video set
    // keeps id 0, the first audio set 1, text 2; further video sets 3, 4…, then further audio sets.
    let mut families: Vec<&str> = Vec::new();
    for v in &p.video {
        let family = codec_family(v.codecs);
        if !families.contains(&family) {
            families.push(family);
        }
    }
    for (i, family) in families.iter().enumerate() {
        let set: Vec<&TrackTimeline> = p.video.iter().filter(|v| codec_family(v.codecs) == *family).collect();
        let (mw, mh) = set.iter().fold((0, 0), |(w, h), t| match t.kind {
            TrackKind::Video { width, height, .. } => (w.max(width), h.max(height)),
            TrackKind::Audio { .. } => (w, h),
        });
        let id = if i == 0 { 0 } else { i + 2 };
        let _ = writeln!(
            out,
            "    <AdaptationSet id=\"{id}\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" \
             startWithSAP=\"1\" maxWidth=\"{mw}\" maxHeight=\"{mh}\">"
        );
        if let Some(prot) = protection {
            content_protection(&mut out, prot);
        }
        for v in set {
            representation(&mut out, v, &prefix, enc);
        }
        out.push_str("    </AdaptationSet>\n");
    }
    let next_id = families.len().max(1) + 2;
    // An audio AdaptationSet per audio track (codec × source language), with its language, its name, and the
    // role "main" on the first track of each codec.
    let names = crate::timeline::audio_names(&p.audio);
    for (j, (a, name)) in p.audio.iter().zip(&names).enumerate() {
        let id = if j == 0 { 1 } else { next_id + j - 1 };
        let language = match &a.kind {
            TrackKind::Audio { language, .. } => language.as_deref().unwrap_or("und"),
            TrackKind::Video { .. } => "und",
        };
        let group = crate::timeline::audio_group(a.name);
        let main = p
            .audio
            .iter()
            .position(|b| crate::timeline::audio_group(b.name) == group)
            == Some(j);
        let _ = writeln!(
            out,
            "    <AdaptationSet id=\"{id}\" contentType=\"audio\" mimeType=\"audio/mp4\" lang=\"{}\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">\n      <Label>{}</Label>\n      \
             <Role schemeIdUri=\"urn:mpeg:dash:role:2011\" value=\"{}\"/>",
            escape(language),
            escape(name.as_str()),
            if main { "main" } else { "alternate" }
        );
        if let Some(prot) = protection {
            content_protection(&mut out, prot);
        }
        representation(&mut out, a, &prefix, enc);
        out.push_str("    </AdaptationSet>\n");
    }
    if let Some(t) = p.thumbnails {
        out.push_str(&crate::thumbnails::dash_adaptation_set(
            t,
            &prefix,
            next_id + p.audio.len().max(1) - 1,
        ));
    }
    // Captions: an AdaptationSet per track, each one WebVTT file in presentation time (never encrypted). The first
    // keeps id 2; the others (sidecar tracks) count from 1000, clear of the media sets' ids.
    for (i, t) in p.text.iter().enumerate() {
        let id = if i == 0 { 2 } else { 1000 + i };
        let _ = writeln!(
            out,
            "    <AdaptationSet id=\"{id}\" contentType=\"text\" mimeType=\"text/vtt\" lang=\"{}\">\n      \
             <Role schemeIdUri=\"urn:mpeg:dash:role:2011\" value=\"subtitle\"/>\n      <Label>{}</Label>\n      \
             <Representation id=\"{}\" bandwidth=\"256\">\n        <BaseURL>{prefix}{}/captions.vtt{}</BaseURL>\n      \
             </Representation>\n    </AdaptationSet>",
            escape(t.language.as_str()),
            escape(t.name.as_str()),
            escape(t.path.as_str()),
            escape(t.path.as_str()),
            escape(p.query.as_str())
        );
    }
    out.push_str("  </Period>\n</MPD>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::overlapping;
    use vod_domain::{IndexedSegment, SegmentIndex};

    #[test]
    fn folds_equal_durations_and_offsets_filtered_starts() {
        let mut start = 0;
        let idx = SegmentIndex {
            track: "360p".into(),
            codecs: "av01.0.04M.08".into(),
            timescale: 1000,
            init: String::new(),
            segments: [4000u64, 4000, 4000, 1000]
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let s = IndexedSegment {
                        number: i as u32,
                        key: String::new(),
                        start,
                        duration: *d,
                        size: 1000,
                        key_frame: None,
                    };
                    start += d;
                    s
                })
                .collect(),
        };
        let t = |a: f64, b: f64| TrackTimeline {
            name: "360p",
            codecs: "av01.0.04M.08",
            timescale: 1000,
            kind: TrackKind::Video {
                width: 640,
                height: 360,
                frame_rate: (30000, 1001),
                colour: None,
            },
            segments: overlapping(&idx, a, b),
        };
        let p = Presentation {
            video: vec![t(0.0, 13.0)],
            audio: Vec::new(),
            uri_prefix: String::new(),
            query: String::new(),
            text: Vec::new(),
            thumbnails: None,
        };
        let m = mpd(&p, None);
        assert!(m.contains("mediaPresentationDuration=\"PT13.000S\""), "{m}");
        assert!(!m.contains("contentType=\"text\""));
        let captioned = Presentation {
            text: vec![
                crate::timeline::TextTrack {
                    language: "en-US".into(),
                    name: "English".into(),
                    path: "captions".into(),
                },
                crate::timeline::TextTrack {
                    language: "fr".into(),
                    name: "Français & co".into(),
                    path: "captions-fr-1".into(),
                },
            ],
            query: "?filter=a&b".into(),
            ..p.clone()
        };
        let c = mpd(&captioned, None);
        assert!(
            c.contains("<AdaptationSet id=\"2\" contentType=\"text\" mimeType=\"text/vtt\" lang=\"en-US\">")
                && c.contains("<BaseURL>captions/captions.vtt?filter=a&amp;b</BaseURL>"),
            "{c}"
        );
        assert!(
            c.contains("<AdaptationSet id=\"1001\" contentType=\"text\" mimeType=\"text/vtt\" lang=\"fr\">")
                && c.contains("<Label>Français &amp; co</Label>")
                && c.contains("<Representation id=\"captions-fr-1\" bandwidth=\"256\">")
                && c.contains("<BaseURL>captions-fr-1/captions.vtt?filter=a&amp;b</BaseURL>"),
            "{c}"
        );
        let prot = DashProtection {
            enc: Enc::Cenc,
            kid: "0a0b0c0d-0000-0000-0000-000000000001".into(),
            systems: vec![DashDrm {
                system_id: "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed".into(),
                value: "Widevine".into(),
                pssh_b64: Some("AAAA".into()),
            }],
        };
        let e = mpd(&p, Some(&prot));
        assert!(
            e.contains("value=\"cenc\" cenc:default_KID=\"0a0b0c0d-0000-0000-0000-000000000001\""),
            "{e}"
        );
        assert!(e.contains("<cenc:pssh>AAAA</cenc:pssh>") && e.contains("initialization=\"360p/cenc/init.mp4\""));
        assert!(
            m.contains("<S t=\"0\" d=\"4000\" r=\"2\"/><S t=\"12000\" d=\"1000\"/>"),
            "{m}"
        );
        // One video AdaptationSet per codec family, each with its own representations.
        let avc = |name, w, h| TrackTimeline {
            name,
            codecs: "avc1.64001F",
            kind: TrackKind::Video {
                width: w,
                height: h,
                frame_rate: (30000, 1001),
                colour: None,
            },
            ..t(0.0, 13.0)
        };
        let mixed = Presentation {
            video: vec![t(0.0, 13.0), avc("720p-h264", 1280, 720), avc("360p-h264", 640, 360)],
            ..p.clone()
        };
        let x = mpd(&mixed, None);
        let sets: Vec<&str> = x.split("<AdaptationSet ").skip(1).collect();
        assert_eq!(sets.len(), 2, "{x}");
        assert!(sets[0].starts_with("id=\"0\"") && sets[0].contains("codecs=\"av01.0.04M.08\""));
        assert!(!sets[0].contains("avc1"), "{x}");
        assert!(sets[1].starts_with("id=\"3\"") && sets[1].contains("maxWidth=\"1280\" maxHeight=\"720\""));
        assert_eq!(sets[1].matches("codecs=\"avc1.64001F\"").count(), 2, "{x}");
        assert!(m.contains("frameRate=\"30000/1001\""));
        let p = Presentation {
            video: vec![t(4.0, 8.0)],
            ..p
        };
        let m = mpd(&p, None);
        assert!(m.contains("presentationTimeOffset=\"4000\" startNumber=\"1\""), "{m}");
        assert!(m.contains("mediaPresentationDuration=\"PT4.000S\""), "{m}");
    }

    #[test]
    fn a_set_per_video_codec_family_and_per_audio_codec_with_unique_ids() {
        use crate::timeline::tests::{audio_track, video_track};
        let v = crate::timeline::tests::index(12800, &[51200, 51200]);
        let a = crate::timeline::tests::index(48000, &[192000, 192000]);
        let video = |name, codecs| video_track(name, codecs, &v);
        let audio = |name, codecs| audio_track(name, codecs, &a);
        let p = Presentation {
            video: vec![
                video("360p", "av01.0.04M.08"),
                video("360p-h264", "avc1.64001e"),
                video("180p", "av01.0.00M.08"),
            ],
            audio: vec![audio("audio", "opus"), audio("audio-aac", "mp4a.40.2")],
            uri_prefix: String::new(),
            query: String::new(),
            text: Vec::new(),
            thumbnails: None,
        };
        let mpd = mpd(&p, None);
        let sets: Vec<&str> = mpd.split("<AdaptationSet ").skip(1).collect();
        assert_eq!(sets.len(), 4, "{mpd}");
        let ids: Vec<&str> = sets
            .iter()
            .map(|s| s.trim_start_matches("id=\"").split('"').next().unwrap_or_default())
            .collect();
        assert_eq!(ids, ["0", "3", "1", "4"], "{mpd}");
        let audio_sets: Vec<&&str> = sets.iter().filter(|s| s.contains("contentType=\"audio\"")).collect();
        assert_eq!(audio_sets.len(), 2);
        assert!(audio_sets[0].contains("codecs=\"opus\"") && !audio_sets[0].contains("mp4a"));
        assert!(audio_sets[1].contains("codecs=\"mp4a.40.2\"") && !audio_sets[1].contains("opus"));
        assert!(
            audio_sets[1].contains("media=\"audio-aac/seg-$Number%05d$.m4s\""),
            "{mpd}"
        );
    }
}
