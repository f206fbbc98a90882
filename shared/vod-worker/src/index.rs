//! Index tasks and their finalization. A task decodes its audio window (plus a little overlap on each side, so
//! that a word cut by the window edge is heard whole by one task), recognizes speech and writes the words it owns
//! as a chunk transcript. The finalizer merges the chunks into the transcript, writes WebVTT, TTML, caption cues,
//! keywords and the transcript; once the asset records them, the finalizer rewrites the asset's terms in the
//! cross-asset search store (speech and sidecar caption tracks together, `vod_domain::search::refresh_terms`).
use std::sync::{Arc, Mutex};

use tracing::info;
use vod_domain::indexing::{keywords, ttml, webvtt, ChunkTranscript, Transcript};
use vod_domain::job::{IndexSpec, Job, TaskKind};
use vod_domain::{BlobRef, CaptionsInfo};
use vod_speech::{Recognizer, SpeechError};

use crate::task::{job_prefix, TaskError};
use crate::WorkerContext;

/// Audio decoded beyond each side of a window.
const OVERLAP_SECS: f64 = 2.0;
/// Caption cues: two lines of 42 characters, at most 6 s on screen.
const CUE_CHARS: usize = 84;
const CUE_SECS: f64 = 6.0;

/// One recognizer per warm instance (loading the model takes about a second).
#[derive(Clone, Default)]
pub struct SpeechEngine {
    loaded: Arc<Mutex<Option<Recognizer>>>,
}

pub fn chunk_key(job: &Job, task: u32) -> String {
    format!("{}/index/chunk-{task:05}.json", job_prefix(job))
}
fn output_key(job: &Job, name: &str) -> String {
    format!("{}/index/{name}", job_prefix(job))
}

fn speech_error(e: SpeechError) -> TaskError {
    // A missing engine is a deployment fault that retries cannot fix; so is audio the engine rejects.
    TaskError::Permanent(e.to_string())
}

/// Recognizes the speech of one window and stores the words the window owns.
pub(crate) async fn run_task(
    ctx: &WorkerContext,
    job: &Job,
    task: u32,
    kind: &TaskKind,
    source: &std::path::Path,
    input: &vod_encode::InputFormat,
) -> Result<(), TaskError> {
    let TaskKind::Index { start_ms, end_ms } = *kind else {
        return Err(TaskError::Permanent("not an index task".into()));
    };
    let (start, end) = (start_ms as f64 / 1000.0, end_ms as f64 / 1000.0);
    let from = (start - OVERLAP_SECS).max(0.0);
    let (src, cfg, engine, input) = (
        source.to_path_buf(),
        ctx.speech.clone(),
        ctx.speech_engine.clone(),
        input.clone(),
    );
    let words = tokio::task::spawn_blocking(move || {
        let pcm = vod_encode::decode_speech_pcm(&vod_encode::PcmRequest {
            source: vod_encode::SourceFile {
                path: &src,
                format: &input,
            },
            sample_rate: vod_speech::SAMPLE_RATE,
            start_secs: from,
            end_secs: end + OVERLAP_SECS,
        })?;
        let mut slot = engine
            .loaded
            .lock()
            .map_err(|_| TaskError::Transient("speech engine lock poisoned".into()))?;
        if slot.is_none() {
            *slot = Some(Recognizer::new(&cfg).map_err(speech_error)?);
        }
        let rec = slot
            .as_mut()
            .ok_or_else(|| TaskError::Transient("speech engine not loaded".into()))?;
        let words = vod_speech::transcribe(rec, &pcm, from, cfg.min_confidence).map_err(speech_error)?;
        Ok::<_, TaskError>((pcm.len(), words))
    })
    .await
    .map_err(|e| TaskError::Transient(format!("speech recognition crashed: {e}")))??;
    let (samples, words) = words;
    info!(
        window_start = start,
        window_end = end,
        audio_secs = samples as f64 / vod_speech::SAMPLE_RATE as f64,
        words = words.len(),
        "speech recognized"
    );
    let chunk = ChunkTranscript { start, end, words };
    let body = serde_json::to_vec(&chunk).map_err(|e| TaskError::Permanent(e.to_string()))?;
    ctx.blobs
        .put(
            &BlobRef::new(&ctx.media_bucket, chunk_key(job, task)),
            body,
            "application/json",
        )
        .await?;
    Ok(())
}

/// Merges the chunk transcripts (of the index tasks `windows`: task index, window end in ms) and writes the captions and search data; returns what the asset records.
pub(crate) async fn finalize_index(
    ctx: &WorkerContext,
    job: &Job,
    windows: &[(u32, u64)],
    spec: &IndexSpec,
) -> Result<CaptionsInfo, TaskError> {
    let mut chunks = Vec::new();
    let mut duration: f64 = 0.0;
    for &(task, end_ms) in windows {
        duration = duration.max(end_ms as f64 / 1000.0);
        let blob = BlobRef::new(&ctx.media_bucket, chunk_key(job, task));
        let body = ctx
            .blobs
            .get(&blob)
            .await?
            .ok_or_else(|| TaskError::Transient(format!("{} is missing", blob.key)))?;
        let chunk: ChunkTranscript = serde_json::from_slice(&body)
            .map_err(|e| TaskError::Permanent(format!("chunk transcript {}: {e}", blob.key)))?;
        chunks.push(chunk);
    }
    let transcript = Transcript::merge(&spec.language, duration, chunks);
    let cues = transcript.cues(CUE_CHARS, CUE_SECS);
    let top = keywords(&transcript, 20);
    let info = CaptionsInfo {
        job_id: job.id,
        language: spec.language.clone(),
        bucket: ctx.media_bucket.clone(),
        vtt: output_key(job, "captions.vtt"),
        ttml: output_key(job, "captions.ttml"),
        cues: output_key(job, "cues.json"),
        transcript: output_key(job, "transcript.json"),
        words: transcript.words.len() as u32,
        keywords: top.iter().take(10).map(|k| k.text.clone()).collect(),
    };
    let transcript_doc = serde_json::json!({
        "language": transcript.language,
        "duration": transcript.duration,
        "text": transcript.text(),
        "words": transcript.words,
        "keywords": top,
    });
    let writes: Vec<(&str, Vec<u8>, &str)> = vec![
        (&info.vtt, webvtt(&cues).into_bytes(), "text/vtt; charset=utf-8"),
        (
            &info.ttml,
            ttml(&cues, &spec.language).into_bytes(),
            "application/ttml+xml",
        ),
        (&info.cues, to_json(&cues)?, "application/json"),
        (&info.transcript, to_json(&transcript_doc)?, "application/json"),
    ];
    for (key, body, content_type) in writes {
        ctx.blobs
            .put(&BlobRef::new(&ctx.media_bucket, key.to_string()), body, content_type)
            .await?;
    }
    info!(
        words = info.words,
        cues = cues.len(),
        "captions and transcript written (the asset's search terms follow its record)"
    );
    Ok(info)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, TaskError> {
    serde_json::to_vec(v).map_err(|e| TaskError::Permanent(e.to_string()))
}
