//! One `trak` box: header, media header, handler and media information around a given sample table.

use mp4_atom::{
    Dinf, Dref, DrefEntry, Edts, Elst, ElstEntry, FixedPoint, Hdlr, Mdhd, Mdia, Minf, Smhd, Stbl, Stsd, Tkhd, Trak,
    Url, Vmhd,
};

use crate::{boxes::fourcc, codec, MuxError, TrackConfig};

/// Durations of a track: of its media in its own timescale (`mdhd`) and of its presentation (the media after its
/// priming, [`crate::CodecConfig::priming`]) in the movie timescale (`tkhd`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TrackDurations {
    pub media: u64,
    pub movie: u64,
}

/// A sample table without samples (the one of an init segment), holding only the sample entry.
pub(crate) fn empty_stbl(track: &TrackConfig) -> Result<Stbl, MuxError> {
    Ok(Stbl {
        stsd: stsd(track)?,
        stco: Some(Default::default()),
        ..Default::default()
    })
}

/// The `stsd` box of a track: exactly one sample entry.
pub(crate) fn stsd(track: &TrackConfig) -> Result<Stsd, MuxError> {
    Ok(Stsd {
        codecs: vec![codec::sample_entry(track)?],
    })
}

/// The edit list of a track whose presentation skips the first `priming` samples of its media (AAC encoder delay):
/// one edit from media time `priming` for the rest of the track — `segment_duration` 0 in fragmented files, where
/// the duration is unknown, otherwise the presented duration (`durations.movie`).
fn priming_edit(priming: u32, durations: TrackDurations) -> Option<Edts> {
    (priming > 0).then(|| Edts {
        elst: Some(Elst {
            entries: vec![ElstEntry {
                segment_duration: if durations.media == 0 { 0 } else { durations.movie },
                media_time: Some(u64::from(priming)),
                media_rate: FixedPoint::new(1, 0),
            }],
        }),
    })
}

/// Builds the `trak` of a validated track around `stbl`.
pub(crate) fn trak(track: &TrackConfig, durations: TrackDurations, stbl: Stbl) -> Trak {
    let is_video = track.codec.is_video();
    let (width, height) = track.codec.size();
    let tkhd = Tkhd {
        track_id: track.track_id,
        duration: durations.movie,
        enabled: true,
        in_movie: true,
        volume: if is_video {
            FixedPoint::new(0, 0)
        } else {
            FixedPoint::new(1, 0)
        },
        width: FixedPoint::new(width, 0),
        height: FixedPoint::new(height, 0),
        ..Default::default()
    };
    let hdlr = if is_video {
        Hdlr {
            handler: fourcc(b"vide"),
            name: "VideoHandler".into(),
        }
    } else {
        Hdlr {
            handler: fourcc(b"soun"),
            name: "SoundHandler".into(),
        }
    };
    let minf = Minf {
        vmhd: is_video.then(Vmhd::default),
        smhd: (!is_video).then(Smhd::default),
        dinf: Dinf {
            dref: Dref {
                entries: vec![DrefEntry::Url(Url {
                    location: String::new(),
                })],
            },
        },
        stbl,
        ..Default::default()
    };
    Trak {
        tkhd,
        edts: priming_edit(track.codec.priming(), durations),
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: track.timescale,
                duration: durations.media,
                language: track.language.clone(),
                ..Default::default()
            },
            hdlr,
            minf,
        },
        ..Default::default()
    }
}
