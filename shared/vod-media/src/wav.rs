//! WAV probing through symphonia's RIFF/WAVE reader, plus a header-only check that the data chunk is complete.

use symphonia::core::codecs::audio::well_known as ids;
use symphonia::core::codecs::audio::AudioCodecId;
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::default::formats::WavReader;

use crate::probe::{bitrate, AudioStream, Container, MediaInfo, ProbeError};
use crate::source::{ReadAt, SourceReader};

/// Bound on the number of RIFF chunks walked before the data chunk.
const MAX_CHUNKS: usize = 10_000;

impl MediaSource for SourceReader<'_> {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        Some(self.size())
    }
}

/// RIFF/WAVE (read whole: audio only).
pub(crate) struct WavFormat;

impl crate::format::ContainerFormat for WavFormat {
    fn containers(&self) -> &'static [Container] {
        &[Container::Wav]
    }
    fn detect(&self, head: &[u8]) -> bool {
        head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE"
    }
    fn could_be(&self, head: &[u8]) -> bool {
        crate::format::starts_like(head, b"RIFF")
    }
    fn probe(&self, src: &dyn ReadAt) -> Result<MediaInfo, ProbeError> {
        probe(src)
    }
}

pub(crate) fn probe(src: &dyn ReadAt) -> Result<MediaInfo, ProbeError> {
    let size = src.size();
    // Hand-written: symphonia does not expose where the data chunk starts or what length it claims.
    let data = find_data_chunk(src, size)?;
    let available = size.saturating_sub(data.start);
    let data_len = match data.len {
        Some(len) if len > available => {
            return Err(ProbeError::Truncated(format!(
                "wav data chunk claims {len} bytes, {available} left in the file"
            )))
        }
        Some(len) => len,
        // Streamed WAV (length 0xFFFFFFFF): the data runs to the end of the file.
        None => available,
    };

    let mss = MediaSourceStream::new(Box::new(SourceReader::new(src)), MediaSourceStreamOptions::default());
    let reader = WavReader::try_new(mss, FormatOptions::default()).map_err(map_error)?;
    let Some(track) = reader.tracks().first() else {
        return Err(ProbeError::NoStreams);
    };
    let Some(CodecParameters::Audio(params)) = &track.codec_params else {
        return Err(ProbeError::NoStreams);
    };
    let channels = params.channels.as_ref().map_or(0, |c| c.count());
    let channels = u16::try_from(channels).map_err(|_| ProbeError::Corrupt("wav: channel count".into()))?;
    let sample_rate = params.sample_rate.unwrap_or(0);
    if sample_rate == 0 {
        return Err(ProbeError::Corrupt("wav: sample rate 0".into()));
    }
    let bits = params.bits_per_coded_sample.or(params.bits_per_sample);

    let frames = match track.num_frames {
        Some(n) if data.len.is_some() => Some(n),
        _ => {
            let frame_bytes = bits.map(|b| u64::from(b.div_ceil(8)) * u64::from(channels));
            frame_bytes.filter(|&fb| fb > 0).map(|fb| data_len / fb)
        }
    };
    let duration_secs = frames.map_or(0.0, |n| n as f64 / f64::from(sample_rate));
    let stream_bitrate = match bits {
        Some(b) if is_pcm(params.codec) => Some(u64::from(sample_rate) * u64::from(channels) * u64::from(b)),
        _ => bitrate(data_len, duration_secs),
    };
    Ok(MediaInfo {
        container: Container::Wav,
        size,
        duration_secs,
        bitrate: bitrate(size, duration_secs),
        video: Vec::new(),
        audio: vec![AudioStream {
            codec: codec_name(params.codec),
            channels,
            sample_rate,
            duration_secs,
            bitrate: stream_bitrate,
            language: None,
            title: None,
        }],
    })
}

fn map_error(e: SymError) -> ProbeError {
    match e {
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ProbeError::Truncated(format!("wav: {io}"))
        }
        SymError::IoError(io) => ProbeError::Io(io),
        SymError::Unsupported(what) => ProbeError::UnsupportedFormat(format!("wav: {what}")),
        other => ProbeError::Corrupt(format!("wav: {other}")),
    }
}

struct DataChunk {
    /// Offset of the first sample byte.
    start: u64,
    /// Declared length, `None` for a streamed file (0xFFFFFFFF).
    len: Option<u64>,
}

/// Walks the RIFF chunk headers (8 bytes each) up to the `data` chunk.
fn find_data_chunk(src: &dyn ReadAt, size: u64) -> Result<DataChunk, ProbeError> {
    let mut pos = 12u64;
    for _ in 0..MAX_CHUNKS {
        let head = src.read_at(pos, 8)?;
        if head.len() < 8 {
            return Err(ProbeError::Truncated(
                "wav: no data chunk before the end of the file".into(),
            ));
        }
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let start = pos + 8;
        if &head[0..4] == b"data" {
            return Ok(DataChunk {
                start,
                len: (len != u32::MAX).then_some(u64::from(len)),
            });
        }
        // Chunks are padded to an even length.
        let next = start + u64::from(len) + u64::from(len & 1);
        if next > size {
            return Err(ProbeError::Truncated(format!(
                "wav: '{}' chunk runs past the end of the file",
                String::from_utf8_lossy(&head[0..4])
            )));
        }
        pos = next;
    }
    Err(ProbeError::Corrupt("wav: too many chunks".into()))
}

fn is_pcm(c: AudioCodecId) -> bool {
    codec_name(c).starts_with("pcm_")
}

fn codec_name(c: AudioCodecId) -> String {
    let name = match c {
        ids::CODEC_ID_PCM_U8 => "pcm_u8",
        ids::CODEC_ID_PCM_S8 => "pcm_s8",
        ids::CODEC_ID_PCM_S16LE => "pcm_s16le",
        ids::CODEC_ID_PCM_S16BE => "pcm_s16be",
        ids::CODEC_ID_PCM_S24LE => "pcm_s24le",
        ids::CODEC_ID_PCM_S24BE => "pcm_s24be",
        ids::CODEC_ID_PCM_S32LE => "pcm_s32le",
        ids::CODEC_ID_PCM_S32BE => "pcm_s32be",
        ids::CODEC_ID_PCM_U16LE => "pcm_u16le",
        ids::CODEC_ID_PCM_U24LE => "pcm_u24le",
        ids::CODEC_ID_PCM_U32LE => "pcm_u32le",
        ids::CODEC_ID_PCM_F32LE => "pcm_f32le",
        ids::CODEC_ID_PCM_F32BE => "pcm_f32be",
        ids::CODEC_ID_PCM_F64LE => "pcm_f64le",
        ids::CODEC_ID_PCM_F64BE => "pcm_f64be",
        ids::CODEC_ID_PCM_ALAW => "pcm_alaw",
        ids::CODEC_ID_PCM_MULAW => "pcm_mulaw",
        ids::CODEC_ID_MP3 => "mp3",
        other => return format!("{other}").to_lowercase(),
    };
    name.into()
}
