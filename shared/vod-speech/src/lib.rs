//! Speech recognition for the indexing pipeline: 16 kHz mono PCM in, timed words with confidences out.
//!
//! The engine is PocketSphinx 5prealpha with its US-English model, both from Debian's registry
//! (`libpocketsphinx3`, `pocketsphinx-en-us`; in Lambda they ride in the speech layer). The library is opened
//! at run time (see [`engine`]); [`utterance`] cuts the audio at pauses so each decoder run is short and its word
//! times are exact; [`transcribe`] ties both together and filters what the engine is unsure of.
pub mod engine;
pub mod utterance;

use std::path::PathBuf;

use vod_domain::indexing::Word;

pub use engine::Recognizer;

/// Sample rate the acoustic model was trained on.
pub const SAMPLE_RATE: u32 = 16_000;

/// Speech/music thresholds (see [`utterance::speechiness`]): measured here, speech from espeak-ng scores
/// lster 0.53–0.60 and hzcrr 0.14–0.16; synthetic tunes, tones with noise and tremolo 0–0.12 and 0–0.12.
/// Speech over loud music is skipped too: a known limit of these two features.
const MIN_LSTER: f64 = 0.3;
const MIN_HZCRR: f64 = 0.05;

/// Where the engine and its model live.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechConfig {
    /// The shared library (a file name searched on the library path, or a path).
    pub library: String,
    /// Directory holding `en-us/` (acoustic model), `en-us.lm.bin` and `cmudict-en-us.dict`.
    pub model_dir: PathBuf,
    /// Words whose posterior probability is below this are dropped (music and noise decode as low-confidence words).
    pub min_confidence: f32,
    /// Extra decoder options (`-name value` pairs), for tuning without a rebuild.
    pub extra_args: Vec<String>,
}

impl SpeechConfig {
    /// From the environment: `SPEECH_LIBRARY`, `SPEECH_MODEL_DIR`, `SPEECH_MIN_CONFIDENCE`, `SPEECH_DECODER_ARGS`; Debian's locations by
    /// default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        SpeechConfig {
            library: lookup("SPEECH_LIBRARY").unwrap_or_else(|| "libpocketsphinx.so.3".into()),
            model_dir: lookup("SPEECH_MODEL_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/usr/share/pocketsphinx/model/en-us")),
            min_confidence: lookup("SPEECH_MIN_CONFIDENCE")
                .and_then(|v| v.parse().ok())
                .filter(|c: &f32| (0.0..=1.0).contains(c))
                .unwrap_or(0.3),
            extra_args: lookup("SPEECH_DECODER_ARGS")
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
        }
    }
}

/// Why recognition failed.
#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    /// The engine or its model is not installed (a deployment problem, not the media's).
    #[error("speech engine unavailable: {0}")]
    Unavailable(String),
    /// The engine rejected the audio or failed while decoding it.
    #[error("speech recognition failed: {0}")]
    Engine(String),
}

/// Recognizes the words of 16 kHz mono PCM that starts at `offset` seconds of the asset. Utterances are decoded one
/// by one; stretches that are not speech-like (music, tones), fillers and words below the confidence floor are
/// dropped. Silence or music yields no words.
pub fn transcribe(
    rec: &mut Recognizer,
    pcm: &[i16],
    offset: f64,
    min_confidence: f32,
) -> Result<Vec<Word>, SpeechError> {
    let mut words = Vec::new();
    for u in utterance::split(pcm, SAMPLE_RATE) {
        let Some(samples) = pcm.get(u.start..u.end) else {
            continue;
        };
        // Music and tones decode as confident nonsense ("oh oh oh"): only speech-like stretches are decoded.
        let s = utterance::speechiness(samples, SAMPLE_RATE);
        if s.lster < MIN_LSTER || s.hzcrr < MIN_HZCRR {
            tracing::debug!(lster = s.lster, hzcrr = s.hzcrr, "utterance skipped: not speech-like");
            continue;
        }
        let start = offset + u.start as f64 / SAMPLE_RATE as f64;
        for w in rec.decode(samples)? {
            if w.confidence < min_confidence || vod_domain::indexing::normalize_term(&w.text).is_none() {
                continue;
            }
            words.push(Word {
                text: strip_alternate(&w.text).to_string(),
                start: start + w.start,
                end: start + w.end,
                confidence: w.confidence,
            });
        }
    }
    Ok(words)
}

/// "read(2)" → "read": PocketSphinx marks alternate pronunciations with a suffix.
fn strip_alternate(word: &str) -> &str {
    match word.find('(') {
        Some(i) if word.ends_with(')') && i > 0 => &word[..i],
        _ => word,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternates_lose_their_suffix() {
        assert_eq!(strip_alternate("read(2)"), "read");
        assert_eq!(strip_alternate("(x)"), "(x)");
        assert_eq!(strip_alternate("plain"), "plain");
    }

    #[test]
    fn config_defaults_to_debian_paths() {
        let c = SpeechConfig::from_lookup(|_| None);
        assert_eq!(c.library, "libpocketsphinx.so.3");
        assert!(c.model_dir.ends_with("en-us"));
        let c = SpeechConfig::from_lookup(|k| (k == "SPEECH_MIN_CONFIDENCE").then(|| "7".into()));
        assert_eq!(c.min_confidence, 0.3, "out-of-range floors are ignored");
    }
}
