//! The streaming URL grammar. Paths are relative to the packager's base (`/stream`):
//! - `{locator}/{name}.ism/manifest(format=m3u8-cmaf|m3u8-aapl|mpd-time-cmaf|mpd-time-csf[,filter=a;b])[.m3u8|.mpd]`
//! - `{locator}/main.m3u8`, `{locator}/main.mpd` (aliases of the CMAF manifests)
//! - `{locator}/{name}.ism/{track}/media.m3u8` (HLS media playlist), `…/{track}/iframes.m3u8` (HLS I-frame
//!   playlist), `…/{track}/init.mp4`, `…/{track}/seg-{n}.m4s`, `…/{track}/key-{n}.m4s` (segment `n`'s key frame
//!   alone), the same under `…/{track}/{aes128|cenc|cbcs}/` when encrypted, and
//!   `{locator}/{name}.ism/{rendition}.mp4` (progressive download)
//! - captions: `{locator}/{name}.ism/captions/media.m3u8` (HLS subtitles playlist), `…/captions/seg-{n}.vtt`
//!   (segmented WebVTT, aligned with the media segments) and `…/captions/captions.vtt` (whole file, for DASH) for
//!   the track generated from the speech; the same under `captions-{id}/` for the sidecar caption track `id`
//! - thumbnails: `{locator}/{name}.ism/thumbnails/thumbnails.vtt` (WebVTT index of the sprite sheets),
//!   `…/thumbnails/sheet-{n}.jpg`, `…/thumbnails/poster.jpg`
//!
//! Everything under `{name}.ism/` but the manifests also has a form with the content version after it
//! (`{name}.ism/v.{16 hex}/{track}/seg-{n}.m4s`): the manifests write only that form (see [`ContentVersion`]).
//!
//! Filters also come from the query (`?filter=a,b`). Every element is checked against a strict alphabet, so no
//! request can name anything outside its asset.
use percent_encoding::percent_decode_str;
use thiserror::Error;
use vod_domain::delivery::{valid_filter_name, ContentVersion, LocatorId};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no such resource: {0}")]
    NotFound(String),
}

/// Manifest flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Hls,
    Dash,
}

/// Encryption of a segment URL (the same segment is served differently per scheme, so each has its own path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Enc {
    Aes128,
    Cenc,
    Cbcs,
}

impl Enc {
    pub fn as_str(self) -> &'static str {
        match self {
            Enc::Aes128 => "aes128",
            Enc::Cenc => "cenc",
            Enc::Cbcs => "cbcs",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "aes128" => Some(Enc::Aes128),
            "cenc" => Some(Enc::Cenc),
            "cbcs" => Some(Enc::Cbcs),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// HLS multivariant playlist or DASH MPD. `alias` = served at `{locator}/main.*` (URIs inside then carry the
    /// `{name}.ism/` element).
    Manifest {
        format: Format,
        alias: bool,
    },
    MediaPlaylist {
        track: String,
    },
    /// The HLS I-frame playlist of a video track: one entry per key frame.
    IframePlaylist {
        track: String,
    },
    Init {
        track: String,
        enc: Option<Enc>,
    },
    Segment {
        track: String,
        number: u32,
        enc: Option<Enc>,
    },
    /// Segment `number`'s key frame as a segment of its own (the entries of encrypted I-frame playlists).
    KeyFrame {
        track: String,
        number: u32,
        enc: Option<Enc>,
    },
    Progressive {
        rendition: String,
    },
    /// The HLS subtitles playlist of a captions track (`sidecar`: the sidecar track's id; none: the speech's).
    TextPlaylist {
        sidecar: Option<String>,
    },
    /// Segmented WebVTT: the cues overlapping media segment `number`.
    TextSegment {
        sidecar: Option<String>,
        number: u32,
    },
    /// All captions of a track as one WebVTT file (DASH), in presentation time.
    TextFile {
        sidecar: Option<String>,
    },
    /// The WebVTT index of the thumbnail sprite sheets (a cue per tile, `sheet-n.jpg#xywh=…`).
    ThumbnailIndex,
    /// Thumbnail sprite sheet `number` (JPEG).
    ThumbnailSheet {
        number: u32,
    },
    /// The poster (JPEG).
    Poster,
}

/// The path element of the thumbnails.
pub const THUMBNAILS_TRACK: &str = "thumbnails";

/// The path element of the captions track generated from the speech.
pub const CAPTIONS_TRACK: &str = "captions";

/// The path element of a captions track: [`CAPTIONS_TRACK`] for the speech's, `captions-{id}` for sidecar `id`.
pub fn captions_track(sidecar: Option<&str>) -> String {
    match sidecar {
        None => CAPTIONS_TRACK.to_string(),
        Some(id) => format!("{CAPTIONS_TRACK}-{id}"),
    }
}

/// The captions track a path element names: `Some(None)` for the speech's, `Some(Some(id))` for a sidecar's.
fn parse_captions_track(elem: &str) -> Option<Option<String>> {
    match elem.strip_prefix(CAPTIONS_TRACK)? {
        "" => Some(None),
        rest => rest
            .strip_prefix('-')
            .filter(|id| vod_domain::sidecar::valid_track_id(id))
            .map(|id| Some(id.to_string())),
    }
}

fn segment_number(f: &str, ext: &str) -> Option<u32> {
    numbered(f, "seg-", ext)
}

/// The number `n` of a file named `{prefix}{n}{ext}`, written as the manifests write it: at least five digits,
/// zero-padded, no more zeros than that (one spelling per segment, so one cache entry).
fn numbered(f: &str, prefix: &str, ext: &str) -> Option<u32> {
    f.strip_prefix(prefix)
        .and_then(|f| f.strip_suffix(ext))
        .filter(|n| !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u32>().ok().filter(|v| format!("{v:05}") == n))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    pub locator: LocatorId,
    /// The `{name}` of `{name}.ism`, if the path had one.
    pub name: Option<String>,
    pub resource: Resource,
    pub filters: Vec<String>,
    /// The content version the path names, if any.
    pub version: Option<ContentVersion>,
}

/// `path` (as parsed: `/{locator}/{name}.ism/…`) with `version` put after its `{name}.ism` element, replacing the
/// version it had; `None` for a path without a `{name}.ism` element.
pub fn with_version(path: &str, version: &ContentVersion) -> Option<String> {
    let mut elems: Vec<&str> = path.split('/').collect();
    let ism = elems.iter().position(|e| e.ends_with(".ism"))?;
    match elems.get(ism + 1) {
        Some(e) if ContentVersion::parse(e).is_some() => elems[ism + 1] = version.as_str(),
        _ => elems.insert(ism + 1, version.as_str()),
    }
    Some(elems.join("/"))
}

fn bad(msg: impl Into<String>) -> UrlError {
    UrlError::BadRequest(msg.into())
}

/// Track and rendition names: letters, digits, `-`, `_` (they are object key elements).
pub fn valid_track_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_manifest_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_filter_list(list: &str, sep: char, out: &mut Vec<String>) -> Result<(), UrlError> {
    for f in list.split(sep).map(str::trim).filter(|f| !f.is_empty()) {
        if !valid_filter_name(f) {
            return Err(bad(format!("{f:?} is not a filter name")));
        }
        if !out.iter().any(|x| x == f) {
            out.push(f.to_string());
        }
    }
    if out.len() > 8 {
        return Err(bad("at most 8 filters per request"));
    }
    Ok(())
}

/// Parses `manifest(format=…,filter=…)` with an optional `.m3u8`/`.mpd` suffix.
fn parse_manifest(elem: &str, filters: &mut Vec<String>) -> Result<Format, UrlError> {
    let elem = elem
        .strip_suffix(".m3u8")
        .or_else(|| elem.strip_suffix(".mpd"))
        .unwrap_or(elem);
    let Some(args) = elem.strip_prefix("manifest") else {
        return Err(UrlError::NotFound(elem.into()));
    };
    if args.is_empty() {
        return Err(bad(
            "say which manifest: manifest(format=m3u8-cmaf) for HLS or manifest(format=mpd-time-cmaf) for DASH",
        ));
    }
    let inner = args
        .strip_prefix('(')
        .and_then(|a| a.strip_suffix(')'))
        .ok_or_else(|| bad("manifest options must be written manifest(format=…,filter=…)"))?;
    let mut format = None;
    for opt in inner.split(',') {
        let (k, v) = opt
            .split_once('=')
            .ok_or_else(|| bad(format!("manifest option {opt:?} must be key=value")))?;
        match k.trim() {
            "format" => {
                format = Some(match v.trim() {
                    "m3u8-cmaf" | "m3u8-aapl" => Format::Hls,
                    "mpd-time-cmaf" | "mpd-time-csf" => Format::Dash,
                    other => {
                        return Err(bad(format!(
                            "format {other:?} is not supported (m3u8-cmaf, m3u8-aapl, mpd-time-cmaf, mpd-time-csf)"
                        )))
                    }
                })
            }
            "filter" => parse_filter_list(v, ';', filters)?,
            other => return Err(bad(format!("unknown manifest option {other:?}"))),
        }
    }
    format.ok_or_else(|| bad("manifest options need format=…"))
}

/// Parses a request path (without the `/stream` base) and its query string.
pub fn parse(path: &str, query: Option<&str>) -> Result<StreamRequest, UrlError> {
    let mut filters = Vec::new();
    if let Some(q) = query {
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == "filter" {
                let v = percent_decode_str(v)
                    .decode_utf8()
                    .map_err(|_| bad("the query is not UTF-8"))?;
                parse_filter_list(&v, ',', &mut filters)?;
            }
        }
    }
    let mut elems = Vec::new();
    for raw in path.split('/').filter(|e| !e.is_empty()) {
        let e = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| bad("the path is not UTF-8"))?;
        if e.contains('/') || e.contains('\\') || e == "." || e == ".." {
            return Err(bad("path elements must not be directories"));
        }
        elems.push(e.into_owned());
    }
    let elems: Vec<&str> = elems.iter().map(String::as_str).collect();
    let Some((loc, rest)) = elems.split_first() else {
        return Err(UrlError::NotFound("/".into()));
    };
    let locator = LocatorId::parse(loc).ok_or_else(|| UrlError::NotFound(format!("locator {loc}")))?;
    let mut version = None;
    let req = |name: Option<&str>, resource, version: &Option<ContentVersion>| StreamRequest {
        locator,
        name: name.map(str::to_string),
        resource,
        filters: filters.clone(),
        version: version.clone(),
    };
    match rest {
        ["main.m3u8"] => Ok(req(
            None,
            Resource::Manifest {
                format: Format::Hls,
                alias: true,
            },
            &None,
        )),
        ["main.mpd"] => Ok(req(
            None,
            Resource::Manifest {
                format: Format::Dash,
                alias: true,
            },
            &None,
        )),
        [ism, tail @ ..] => {
            let name = ism
                .strip_suffix(".ism")
                .filter(|n| valid_manifest_name(n))
                .ok_or_else(|| UrlError::NotFound((*ism).into()))?;
            let tail = match tail {
                [v, rest @ ..] if !rest.is_empty() => match ContentVersion::parse(v) {
                    Some(v) => {
                        version = Some(v);
                        rest
                    }
                    None => tail,
                },
                _ => tail,
            };
            match tail {
                // Manifests are the stable entry points: they have no versioned form.
                [m] if m.starts_with("manifest") && version.is_some() => Err(UrlError::NotFound((*m).into())),
                [m] if m.starts_with("manifest") => {
                    let mut f = filters.clone();
                    let format = parse_manifest(m, &mut f)?;
                    Ok(StreamRequest {
                        locator,
                        name: Some(name.into()),
                        resource: Resource::Manifest { format, alias: false },
                        filters: f,
                        version: None,
                    })
                }
                [file] => {
                    let rendition = file
                        .strip_suffix(".mp4")
                        .filter(|r| valid_track_name(r))
                        .ok_or_else(|| UrlError::NotFound((*file).into()))?;
                    Ok(req(
                        Some(name),
                        Resource::Progressive {
                            rendition: rendition.into(),
                        },
                        &version,
                    ))
                }
                [track, file] if parse_captions_track(track).is_some() => {
                    let sidecar = parse_captions_track(track).flatten();
                    let resource = match *file {
                        "media.m3u8" => Resource::TextPlaylist { sidecar },
                        "captions.vtt" => Resource::TextFile { sidecar },
                        f => Resource::TextSegment {
                            sidecar,
                            number: segment_number(f, ".vtt").ok_or_else(|| UrlError::NotFound(f.into()))?,
                        },
                    };
                    Ok(req(Some(name), resource, &version))
                }
                [track, file] if *track == THUMBNAILS_TRACK => {
                    let resource = match *file {
                        "thumbnails.vtt" => Resource::ThumbnailIndex,
                        "poster.jpg" => Resource::Poster,
                        f => Resource::ThumbnailSheet {
                            number: numbered(f, "sheet-", ".jpg").ok_or_else(|| UrlError::NotFound(f.into()))?,
                        },
                    };
                    Ok(req(Some(name), resource, &version))
                }
                [track, file] | [track, _, file] => {
                    if !valid_track_name(track) {
                        return Err(UrlError::NotFound((*track).into()));
                    }
                    let enc = match tail {
                        [_, e, _] => Some(Enc::parse(e).ok_or_else(|| UrlError::NotFound((*e).into()))?),
                        _ => None,
                    };
                    let track = (*track).to_string();
                    let resource = match (*file, enc) {
                        ("media.m3u8", None) => Resource::MediaPlaylist { track },
                        ("iframes.m3u8", None) => Resource::IframePlaylist { track },
                        ("init.mp4", enc) => Resource::Init { track, enc },
                        (f, enc) if f.starts_with("key-") => {
                            let n = numbered(f, "key-", ".m4s").ok_or_else(|| UrlError::NotFound(f.into()))?;
                            Resource::KeyFrame { track, number: n, enc }
                        }
                        (f, enc) => {
                            let n = segment_number(f, ".m4s").ok_or_else(|| UrlError::NotFound(f.into()))?;
                            Resource::Segment { track, number: n, enc }
                        }
                    };
                    Ok(req(Some(name), resource, &version))
                }
                _ => Err(UrlError::NotFound(path.into())),
            }
        }
        [] => Err(UrlError::NotFound(path.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: &str = "6f1c9a0e-4b6d-4c1e-9d3a-6a0b2f1e7c55";

    #[test]
    fn parses_thumbnail_resources() {
        let p = |rest: &str| parse(&format!("/{L}/clip.ism/thumbnails/{rest}"), None).map(|r| r.resource);
        assert_eq!(p("thumbnails.vtt"), Ok(Resource::ThumbnailIndex));
        assert_eq!(p("poster.jpg"), Ok(Resource::Poster));
        assert_eq!(p("sheet-00002.jpg"), Ok(Resource::ThumbnailSheet { number: 2 }));
        for bad in ["sheet-x.jpg", "sheet-1.png", "media.m3u8", "seg-1.m4s"] {
            assert!(matches!(p(bad), Err(UrlError::NotFound(_))), "{bad}");
        }
    }

    #[test]
    fn parses_iframe_resources() {
        let p = |rest: &str| parse(&format!("/{L}/clip.ism/{rest}"), None).map(|r| r.resource);
        assert_eq!(
            p("360p/iframes.m3u8"),
            Ok(Resource::IframePlaylist { track: "360p".into() })
        );
        assert_eq!(
            p("360p/cbcs/key-00012.m4s"),
            Ok(Resource::KeyFrame {
                track: "360p".into(),
                number: 12,
                enc: Some(Enc::Cbcs)
            })
        );
        assert_eq!(
            p("360p/key-00003.m4s"),
            Ok(Resource::KeyFrame {
                track: "360p".into(),
                number: 3,
                enc: None
            })
        );
        for bad in [
            "360p/cenc/iframes.m3u8",
            "360p/key-.m4s",
            "360p/key-1234567890.m4s",
            "360p/key-1.mp4",
            // One spelling per segment: the manifests' five zero-padded digits, no other padding.
            "360p/key-3.m4s",
            "360p/key-000003.m4s",
        ] {
            assert!(matches!(p(bad), Err(UrlError::NotFound(_))), "{bad}");
        }
    }

    /// Issue 15 item 2: the versioned form of every resource under `{name}.ism/` but the manifests.
    #[test]
    fn parses_content_versions() {
        let v = "v.0123456789abcdef";
        let p = |rest: &str| parse(&format!("/{L}/clip.ism/{rest}"), None);
        let r = p(&format!("{v}/360p/cenc/seg-00004.m4s")).expect("a versioned segment");
        assert_eq!(r.version.as_ref().map(ContentVersion::as_str), Some(v));
        assert_eq!(
            r.resource,
            Resource::Segment {
                track: "360p".into(),
                number: 4,
                enc: Some(Enc::Cenc)
            }
        );
        assert_eq!(p("360p/seg-00004.m4s").map(|r| r.version), Ok(None));
        for (rest, want) in [
            (
                "captions/seg-00001.vtt",
                Resource::TextSegment {
                    sidecar: None,
                    number: 1,
                },
            ),
            ("thumbnails/poster.jpg", Resource::Poster),
            (
                "720p.mp4",
                Resource::Progressive {
                    rendition: "720p".into(),
                },
            ),
            ("360p/media.m3u8", Resource::MediaPlaylist { track: "360p".into() }),
        ] {
            let r = p(&format!("{v}/{rest}")).expect(rest);
            assert_eq!((r.resource, r.version.is_some()), (want, true), "{rest}");
        }
        // Manifests are not versioned; a version alone names nothing; one version per path.
        for bad in [
            format!("{v}/manifest(format=m3u8-cmaf)"),
            v.to_string(),
            format!("{v}/{v}/360p/seg-00004.m4s"),
        ] {
            assert!(matches!(p(&bad), Err(UrlError::NotFound(_))), "{bad}");
        }
        let path = format!("/{L}/clip.ism/360p/seg-00004.m4s");
        let ver = ContentVersion::parse(v).expect("a version");
        let versioned = with_version(&path, &ver).expect("an ism path");
        assert_eq!(versioned, format!("/{L}/clip.ism/{v}/360p/seg-00004.m4s"));
        let newer = ContentVersion::parse("v.fedcba9876543210").expect("a version");
        assert_eq!(
            with_version(&versioned, &newer),
            Some(format!("/{L}/clip.ism/v.fedcba9876543210/360p/seg-00004.m4s"))
        );
        assert_eq!(with_version(&format!("/{L}/main.m3u8"), &ver), None);
    }

    #[test]
    fn parses_caption_resources() {
        let p = |rest: &str| parse(&format!("/{L}/clip.ism/captions/{rest}"), None).map(|r| r.resource);
        assert_eq!(p("media.m3u8"), Ok(Resource::TextPlaylist { sidecar: None }));
        assert_eq!(p("captions.vtt"), Ok(Resource::TextFile { sidecar: None }));
        assert_eq!(
            p("seg-00012.vtt"),
            Ok(Resource::TextSegment {
                sidecar: None,
                number: 12
            })
        );
        assert!(matches!(p("seg-x.vtt"), Err(UrlError::NotFound(_))));
        assert!(matches!(p("seg-1.m4s"), Err(UrlError::NotFound(_))));
        assert!(matches!(p("init.mp4"), Err(UrlError::NotFound(_))));
    }

    #[test]
    fn parses_sidecar_caption_resources() {
        let p = |rest: &str| parse(&format!("/{L}/clip.ism/{rest}"), None).map(|r| r.resource);
        let fr = || Some("fr-1".to_string());
        assert_eq!(
            p("captions-fr-1/media.m3u8"),
            Ok(Resource::TextPlaylist { sidecar: fr() })
        );
        assert_eq!(
            p("captions-fr-1/captions.vtt"),
            Ok(Resource::TextFile { sidecar: fr() })
        );
        assert_eq!(
            p("v.0123456789abcdef/captions-fr-1/seg-00003.vtt"),
            Ok(Resource::TextSegment {
                sidecar: fr(),
                number: 3
            })
        );
        assert_eq!(captions_track(Some("fr-1")), "captions-fr-1");
        assert_eq!(captions_track(None), CAPTIONS_TRACK);
        // Not a sidecar id: upper case, empty, too long; nor a media track's file.
        for bad in [
            "captions-FR/media.m3u8",
            "captions-/media.m3u8",
            "captions-fr-1/init.mp4",
        ] {
            assert!(!matches!(p(bad), Ok(Resource::TextPlaylist { .. })), "{bad}");
        }
        let long = format!("captions-{}/media.m3u8", "a".repeat(25));
        assert!(!matches!(p(&long), Ok(Resource::TextPlaylist { .. })));
    }

    #[test]
    fn parses_ams_manifests_and_aliases() {
        let r = parse(&format!("/{L}/clip.ism/manifest(format=m3u8-cmaf)"), None).unwrap();
        assert_eq!(
            r.resource,
            Resource::Manifest {
                format: Format::Hls,
                alias: false
            }
        );
        assert_eq!(r.name.as_deref(), Some("clip"));
        let r = parse(
            &format!("{L}/clip.ism/manifest(format=mpd-time-csf,filter=a;b).mpd"),
            Some("filter=c,a"),
        )
        .unwrap();
        assert_eq!(
            r.resource,
            Resource::Manifest {
                format: Format::Dash,
                alias: false
            }
        );
        assert_eq!(r.filters, vec!["c", "a", "b"]);
        let r = parse(&format!("{L}/clip.ism/manifest%28format%3Dm3u8-aapl%29"), None).unwrap();
        assert!(matches!(
            r.resource,
            Resource::Manifest {
                format: Format::Hls,
                ..
            }
        ));
        let r = parse(&format!("{L}/main.mpd"), None).unwrap();
        assert_eq!(
            r.resource,
            Resource::Manifest {
                format: Format::Dash,
                alias: true
            }
        );
    }

    #[test]
    fn parses_tracks_segments_and_downloads() {
        for other in ["seg-12.m4s", "seg-012.m4s", "seg-000012.m4s"] {
            assert!(
                parse(&format!("{L}/c.ism/360p/{other}"), None).is_err(),
                "{other} is not the segment's spelling"
            );
        }
        assert!(
            parse(&format!("{L}/c.ism/360p/seg-123456.m4s"), None).is_ok(),
            "six digits past 99999"
        );
        let r = parse(&format!("{L}/c.ism/360p/seg-00012.m4s"), None).unwrap();
        assert_eq!(
            r.resource,
            Resource::Segment {
                track: "360p".into(),
                number: 12,
                enc: None
            }
        );
        let r = parse(&format!("{L}/c.ism/audio/init.mp4"), None).unwrap();
        assert_eq!(
            r.resource,
            Resource::Init {
                track: "audio".into(),
                enc: None
            }
        );
        let r = parse(&format!("{L}/c.ism/360p/cenc/seg-00003.m4s"), None).unwrap();
        assert_eq!(
            r.resource,
            Resource::Segment {
                track: "360p".into(),
                number: 3,
                enc: Some(Enc::Cenc)
            }
        );
        assert!(parse(&format!("{L}/c.ism/360p/rot13/seg-00003.m4s"), None).is_err());
        assert!(parse(&format!("{L}/c.ism/360p/cenc/media.m3u8"), None).is_err());
        let r = parse(&format!("{L}/c.ism/720p/media.m3u8"), Some("filter=x")).unwrap();
        assert_eq!(r.filters, vec!["x"]);
        let r = parse(&format!("{L}/c.ism/720p.mp4"), None).unwrap();
        assert_eq!(
            r.resource,
            Resource::Progressive {
                rendition: "720p".into()
            }
        );
    }

    #[test]
    fn refuses_bad_paths() {
        for (p, q) in [
            ("/".to_string(), None),
            ("not-a-uuid/main.m3u8".into(), None),
            (format!("{L}/c.ism/manifest"), None),
            (format!("{L}/c.ism/manifest(format=smooth)"), None),
            (format!("{L}/c.ism/manifest(format=m3u8-cmaf"), None),
            (format!("{L}/c.ism/manifest(format=m3u8-cmaf,x=1)"), None),
            (format!("{L}/c.ism/manifest(format=m3u8-cmaf,filter=../x)"), None),
            (format!("{L}/c.ism/..%2F..%2Fetc/init.mp4"), None),
            (format!("{L}/c.ism/%2e%2e/init.mp4"), None),
            (format!("{L}/c.ism/360p/seg-99999999999.m4s"), None),
            (format!("{L}/c.ism/360p/seg-+1.m4s"), None),
            (format!("{L}/c.ism/360p/../../x"), None),
            (format!("{L}/c/360p/init.mp4"), None),
            (format!("{L}/main.m3u8"), Some("filter=a/b")),
            (format!("{L}/c.ism/a/b/c/d"), None),
            (format!("{L}/c.ism/%ff/init.mp4"), None),
        ] {
            assert!(parse(&p, q).is_err(), "{p} {q:?}");
        }
    }
}
