//! Thumbnails on the stream paths: the WebVTT index of the sprite sheets (a cue per tile, pointing into its sheet
//! with a media fragment `#xywh=x,y,w,h`, as players' seek-bar previews read it) and DASH's image AdaptationSet
//! (DASH-IF thumbnails: one "segment" per sheet, `columns×rows` tiles in it).
use std::fmt::Write;

use vod_domain::Thumbnails;

use crate::url::THUMBNAILS_TRACK;

fn timestamp(secs: f64) -> String {
    let ms = (secs.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The WebVTT index: tile `i` from `i × interval` until the next (the last until `duration_secs`). Sheet URLs are
/// relative to the index (it lives beside them).
pub fn webvtt(thumbnails: &Thumbnails, duration_secs: f64) -> String {
    let t = &thumbnails.layout;
    let mut out = String::from("WEBVTT\n");
    for i in 0..t.count {
        let start = f64::from(i) * t.interval_secs;
        if start >= duration_secs && i > 0 {
            break;
        }
        let end = if i + 1 == t.count {
            duration_secs.max(start + 0.001)
        } else {
            (start + t.interval_secs).min(duration_secs.max(start + 0.001))
        };
        let (sheet, x, y) = thumbnails.tile(i);
        let _ = write!(
            out,
            "\n{} --> {}\n{}#xywh={x},{y},{},{}\n",
            timestamp(start),
            timestamp(end),
            Thumbnails::sheet_name(sheet),
            t.width,
            t.height
        );
    }
    out
}

/// The DASH image AdaptationSet of the thumbnails (`prefix`: the track URIs' prefix, `id`: a free set id).
pub fn dash_adaptation_set(thumbnails: &Thumbnails, prefix: &str, id: usize) -> String {
    let t = &thumbnails.layout;
    let per_sheet_ms = (f64::from(t.columns * t.rows) * t.interval_secs * 1000.0).round() as u64;
    let (w, h) = (t.width * t.columns, t.height * t.rows);
    // A JPEG sheet is about a tenth of its raw luma: an estimate (DASH requires a bandwidth).
    let bandwidth = (u64::from(w) * u64::from(h) / 10 * 8 * 1000 / per_sheet_ms.max(1)).max(1);
    format!(
        "    <AdaptationSet id=\"{id}\" contentType=\"image\" mimeType=\"image/jpeg\">\n      \
         <SegmentTemplate media=\"{prefix}{THUMBNAILS_TRACK}/sheet-$Number%05d$.jpg\" timescale=\"1000\" \
         duration=\"{per_sheet_ms}\" startNumber=\"0\"/>\n      \
         <Representation id=\"{THUMBNAILS_TRACK}\" bandwidth=\"{bandwidth}\" width=\"{w}\" height=\"{h}\">\n        \
         <EssentialProperty schemeIdUri=\"http://dashif.org/thumbnail_tile\" value=\"{}x{}\"/>\n      \
         </Representation>\n    </AdaptationSet>\n",
        t.columns, t.rows
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thumbs() -> Thumbnails {
        Thumbnails {
            layout: vod_domain::job::ThumbnailPlan {
                interval_secs: 1.0,
                width: 96,
                height: 54,
                columns: 2,
                rows: 2,
                count: 5,
                poster_secs: 1.0,
                poster_width: 320,
                poster_height: 180,
            },
            sheets: "p/thumbnails/".into(),
            poster: "p/thumbnails/poster.jpg".into(),
        }
    }

    #[test]
    fn a_cue_per_tile_covering_the_title() {
        let vtt = webvtt(&thumbs(), 4.6);
        assert!(
            vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nsheet-00000.jpg#xywh=0,0,96,54\n"),
            "{vtt}"
        );
        assert!(
            vtt.contains("00:00:01.000 --> 00:00:02.000\nsheet-00000.jpg#xywh=96,0,96,54\n"),
            "{vtt}"
        );
        assert!(
            vtt.contains("00:00:03.000 --> 00:00:04.000\nsheet-00000.jpg#xywh=96,54,96,54\n"),
            "{vtt}"
        );
        assert!(
            vtt.ends_with("00:00:04.000 --> 00:00:04.600\nsheet-00001.jpg#xywh=0,0,96,54\n"),
            "{vtt}"
        );
        assert_eq!(vtt.matches("#xywh=").count(), 5);
    }

    #[test]
    fn dash_image_set() {
        let set = dash_adaptation_set(&thumbs(), "clip.ism/", 7);
        assert!(
            set.contains("id=\"7\" contentType=\"image\" mimeType=\"image/jpeg\""),
            "{set}"
        );
        assert!(set.contains("media=\"clip.ism/thumbnails/sheet-$Number%05d$.jpg\" timescale=\"1000\" duration=\"4000\" startNumber=\"0\""), "{set}");
        assert!(set.contains("width=\"192\" height=\"108\""), "{set}");
        assert!(set.contains("value=\"2x2\""), "{set}");
    }
}
