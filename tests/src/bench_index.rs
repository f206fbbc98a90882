//! `vod-bench-index`: measures the speech indexing pipeline (not the HTTP stack) in one run on this machine and
//! writes `bench/index-report.md` (+ `.json`):
//! - accuracy: word error rate of every clip of a 20-sentence everyday-English corpus synthesized by espeak-ng (two
//!   voices), pooled over the corpus, at the configured confidence floor and at floor 0;
//! - false positives: words recognized in 10 s of silence and 10 s of a synthetic tune (must be 0);
//! - speed on one core: model load (`Recognizer::new`), audio decode (`decode_speech_pcm`) and recognition
//!   (`transcribe`) in process CPU time and wall time; real-time factor and the decode's share;
//! - projection (with stated assumptions): a 60-minute talk as 30 index tasks of 120 s, 30-way fan-out vs 1 worker;
//! - packaging: bytes of what the SpeechLayer ships (engine libraries + model), zipped if `zip` is present.
//!
//! Each clip goes through the pipeline exactly as the index worker runs it: AAC/M4A at 48 kHz stereo (a producer's
//! upload) → `vod_encode::decode_speech_pcm` (16 kHz mono) → `vod_speech::transcribe` with one reused recognizer.
//!
//! Usage: `cargo run -p vod-e2e --bin vod-bench-index` (needs `espeak-ng`, `ffmpeg`, `libpocketsphinx3` and
//! `pocketsphinx-en-us`).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vod_domain::indexing::{normalize_term, word_error_rate, Word};
use vod_speech::{transcribe, utterance, Recognizer, SpeechConfig, SAMPLE_RATE};

/// The corpus: everyday sentences, spelled as spoken (no digits), none of them in the e2e or vod-speech tests.
const SENTENCES: [&str; 20] = [
    "i will pick up my daughter from school after lunch",
    "the coffee in this little shop is very good",
    "can you tell me where the nearest train station is",
    "we should leave early because the roads are busy in the morning",
    "my sister is coming to visit us next weekend",
    "he forgot his keys on the kitchen table again",
    "the store closes at nine on sunday evenings",
    "they bought a new car last summer",
    "it is raining so please take an umbrella with you",
    "our neighbors have a big dog that barks at night",
    "she reads the newspaper every morning before work",
    "the doctor told him to drink more water and sleep well",
    "let us have dinner at the new restaurant downtown",
    "i lost my phone on the bus yesterday",
    "the movie was long but the ending was wonderful",
    "could you help me carry these boxes upstairs",
    "the teacher asked the students to open their books",
    "we watched the football game with our friends",
    "do not forget to water the plants while i am away",
    "the hotel room had a beautiful view of the ocean",
];
/// The e2e test's sentences, reported as their own row.
const E2E_SENTENCES: [&str; 3] = [
    "we are going to the market today to buy some bread and fresh vegetables",
    "children are playing in the park near the river",
    "please call me when you get home tonight",
];
const SENTENCES_PER_CLIP: usize = 4;
/// (key, label, espeak-ng arguments): the Klatt voice the tests use, and espeak-ng's default formant voice.
const VOICES: [(&str, &str, [&str; 4]); 2] = [
    ("klatt2", "en-us+klatt2, 130 wpm", ["-v", "en-us+klatt2", "-s", "130"]),
    (
        "default",
        "en-us (default voice), 140 wpm",
        ["-v", "en-us", "-s", "140"],
    ),
];
const MUSIC: &str =
    "aevalsrc='0.3*sin(2*PI*(220+110*mod(floor(t*4),5))*t)+0.15*sin(4*PI*(220+110*mod(floor(t*4),5))*t)':d=10";
/// Length of the long file used to measure decoding from the start of a long source.
const LONG_SECS: f64 = 600.0;

// Projection: the planner's defaults and the worker's overlap (vod-domain job.rs, vod-worker index.rs).
const TALK_SECS: f64 = 3600.0;
const WINDOW_SECS: f64 = 120.0;
const OVERLAP_SECS: f64 = 2.0;
const FAN_OUT: usize = 30;
// Assumptions, not measured here.
const LAMBDA_START_SECS: f64 = 0.5;
const S3_MB_PER_S: f64 = 80.0;
const SOURCE_AUDIO_KBPS: f64 = 128.0;

/// Process CPU time (all threads), seconds.
fn cpu_now() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Wall and CPU seconds of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (wall, cpu) = (Instant::now(), cpu_now());
    let out = f();
    (out, wall.elapsed().as_secs_f64(), cpu_now() - cpu)
}

/// Resident set size of this process, bytes.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ffmpeg() -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-v", "error", "-nostdin", "-y"]);
    c
}

/// Encodes like a producer's upload: AAC in MP4 (M4A), 48 kHz stereo.
const AAC: [&str; 8] = ["-c:a", "aac", "-ac", "2", "-ar", "48000", "-b:a", "128k"];

fn duration(path: &Path) -> Result<f64> {
    let out = run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "default=nw=1:nk=1",
            ])
            .arg(path),
        "ffprobe",
    )?;
    out.trim()
        .parse()
        .with_context(|| format!("duration of {}: {out}", path.display()))
}

/// Sentences spoken by espeak-ng, 1 s of silence before the first and after each, as AAC/M4A.
fn speech_clip(dir: &Path, voice: &[&str], sentences: &[&str], out: &Path) -> Result<()> {
    let mut cmd = ffmpeg();
    let mut filter = String::new();
    for (i, s) in sentences.iter().enumerate() {
        let wav = dir.join(format!("sentence-{i}.wav"));
        run(
            Command::new("espeak-ng").args(voice).arg("-w").arg(&wav).arg(s),
            "espeak-ng",
        )?;
        cmd.arg("-i").arg(&wav);
        let delay = if i == 0 { "adelay=1000," } else { "" };
        filter.push_str(&format!("[{i}]{delay}apad=pad_dur=1[a{i}];"));
    }
    for i in 0..sentences.len() {
        filter.push_str(&format!("[a{i}]"));
    }
    filter.push_str(&format!("concat=n={}:v=0:a=1[out]", sentences.len()));
    cmd.args(["-filter_complex", &filter, "-map", "[out]"])
        .args(AAC)
        .arg(out);
    run(&mut cmd, "ffmpeg (speech clip)")?;
    Ok(())
}

fn lavfi_clip(source: &str, out: &Path) -> Result<()> {
    run(
        ffmpeg()
            .args(["-f", "lavfi", "-i", source, "-t", "10"])
            .args(AAC)
            .arg(out),
        "ffmpeg (lavfi clip)",
    )?;
    Ok(())
}

fn decode(path: &Path, start: f64, end: f64) -> Result<Vec<i16>> {
    let (demuxer, video_codecs, audio_codecs) =
        vod_testkit::input_format_of(path).with_context(|| format!("ffprobe cannot read {}", path.display()))?;
    let format = vod_encode::InputFormat {
        demuxer,
        video_codecs,
        audio_codecs,
    };
    Ok(vod_encode::decode_speech_pcm(&vod_encode::PcmRequest {
        source: vod_encode::SourceFile { path, format: &format },
        sample_rate: SAMPLE_RATE,
        start_secs: start,
        end_secs: end,
    })?)
}

fn reference_words(text: &str) -> usize {
    text.split_whitespace().filter_map(normalize_term).count()
}

fn hypothesis(words: &[Word]) -> String {
    words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ")
}

/// One clip through the pipeline.
struct ClipRun {
    voice: String,
    name: String,
    kind: &'static str,
    reference: String,
    ref_words: usize,
    audio_secs: f64,
    /// Utterances the pause detector found, and their seconds.
    utterances: usize,
    utterance_secs: f64,
    decode_wall: f64,
    decode_cpu: f64,
    /// Pause detection + speech/music features alone (a part of `recog_cpu`).
    gate_cpu: f64,
    recog_wall: f64,
    recog_cpu: f64,
    words: Vec<Word>,
    wer: f64,
    words_floor0: Vec<Word>,
    wer_floor0: f64,
    /// The floor applied to the floor-0 pass's words (the floor's effect on one and the same decode).
    words_refloored: usize,
    wer_refloored: f64,
    /// The first pass's words are exactly the second pass's words at or above the floor.
    floor_consistent: bool,
}

impl ClipRun {
    fn json(&self) -> Value {
        json!({"voice": self.voice, "clip": self.name, "kind": self.kind, "reference": self.reference,
            "reference_words": self.ref_words, "audio_secs": self.audio_secs, "utterances": self.utterances,
            "utterance_secs": self.utterance_secs, "decode_wall_secs": self.decode_wall,
            "decode_cpu_secs": self.decode_cpu, "gate_cpu_secs": self.gate_cpu,
            "recognition_wall_secs": self.recog_wall, "recognition_cpu_secs": self.recog_cpu,
            "rtf_cpu": self.recog_cpu / self.audio_secs, "words": self.words.len(),
            "hypothesis": hypothesis(&self.words), "wer": self.wer, "words_floor0": self.words_floor0.len(),
            "hypothesis_floor0": hypothesis(&self.words_floor0), "wer_floor0": self.wer_floor0,
            "floor_runs_consistent": self.floor_consistent, "words_floor_on_floor0_pass": self.words_refloored,
            "wer_floor_on_floor0_pass": self.wer_refloored,
            "confidences": self.words_floor0.iter().map(|w| (w.confidence * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>()})
    }
}

fn run_clip(
    rec: &mut Recognizer,
    floor: f32,
    path: &Path,
    (voice, name, kind): (&str, &str, &'static str),
    reference: &str,
) -> Result<ClipRun> {
    let secs = duration(path)?;
    let (pcm, decode_wall, decode_cpu) = timed(|| decode(path, 0.0, secs + 1.0));
    let pcm = pcm?;
    let audio_secs = pcm.len() as f64 / SAMPLE_RATE as f64;
    let (spans, _, gate_cpu) = timed(|| {
        let spans = utterance::split(&pcm, SAMPLE_RATE);
        for s in &spans {
            std::hint::black_box(utterance::speechiness(&pcm[s.start..s.end], SAMPLE_RATE));
        }
        spans
    });
    let utterance_secs = spans.iter().fold(0.0, |a, s| a + (s.end - s.start) as f64) / SAMPLE_RATE as f64;
    let (words, recog_wall, recog_cpu) = timed(|| transcribe(rec, &pcm, 0.0, floor));
    let words = words?;
    let words_floor0 = transcribe(rec, &pcm, 0.0, 0.0)?;
    // `transcribe` keeps words with confidence >= floor.
    let above: Vec<&str> = words_floor0
        .iter()
        .filter(|w| w.confidence >= floor)
        .map(|w| w.text.as_str())
        .collect();
    let floor_consistent = above == words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>();
    let run = ClipRun {
        words_refloored: above.len(),
        wer_refloored: word_error_rate(reference, &above.join(" ")),
        floor_consistent,
        voice: voice.into(),
        name: name.into(),
        kind,
        reference: reference.into(),
        ref_words: reference_words(reference),
        audio_secs,
        utterances: spans.len(),
        utterance_secs,
        decode_wall,
        decode_cpu,
        gate_cpu,
        recog_wall,
        recog_cpu,
        wer: word_error_rate(reference, &hypothesis(&words)),
        wer_floor0: word_error_rate(reference, &hypothesis(&words_floor0)),
        words,
        words_floor0,
    };
    eprintln!(
        "{voice} {name}: {:.1} s audio, WER {:.3} (floor 0: {:.3}), recognition {:.2} s CPU: {}",
        run.audio_secs,
        run.wer,
        run.wer_floor0,
        run.recog_cpu,
        hypothesis(&run.words)
    );
    Ok(run)
}

/// Sums over a voice's corpus clips.
struct Totals {
    clips: usize,
    ref_words: usize,
    audio_secs: f64,
    utterance_secs: f64,
    decode_cpu: f64,
    decode_wall: f64,
    gate_cpu: f64,
    recog_cpu: f64,
    recog_wall: f64,
    wer: f64,
    wer_floor0: f64,
    wer_refloored: f64,
    words_refloored: usize,
    wer_min: f64,
    wer_max: f64,
    words: usize,
    words_floor0: usize,
}

fn totals(runs: &[&ClipRun]) -> Totals {
    let n: usize = runs.iter().map(|r| r.ref_words).sum();
    let pooled = |f: fn(&ClipRun) -> f64| runs.iter().map(|r| f(r) * r.ref_words as f64).sum::<f64>() / n.max(1) as f64;
    let sum = |f: fn(&ClipRun) -> f64| runs.iter().fold(0.0, |a, r| a + f(r));
    Totals {
        clips: runs.len(),
        ref_words: n,
        audio_secs: sum(|r| r.audio_secs),
        utterance_secs: sum(|r| r.utterance_secs),
        decode_cpu: sum(|r| r.decode_cpu),
        decode_wall: sum(|r| r.decode_wall),
        gate_cpu: sum(|r| r.gate_cpu),
        recog_cpu: sum(|r| r.recog_cpu),
        recog_wall: sum(|r| r.recog_wall),
        wer: pooled(|r| r.wer),
        wer_floor0: pooled(|r| r.wer_floor0),
        wer_refloored: pooled(|r| r.wer_refloored),
        words_refloored: runs.iter().map(|r| r.words_refloored).sum(),
        wer_min: runs.iter().map(|r| r.wer).fold(f64::INFINITY, f64::min),
        wer_max: runs.iter().map(|r| r.wer).fold(0.0, f64::max),
        words: runs.iter().map(|r| r.words.len()).sum(),
        words_floor0: runs.iter().map(|r| r.words_floor0.len()).sum(),
    }
}

impl Totals {
    fn rtf(&self) -> f64 {
        self.recog_cpu / self.audio_secs
    }
    fn rtf_speech(&self) -> f64 {
        self.recog_cpu / self.utterance_secs
    }
    fn decode_share(&self) -> f64 {
        self.decode_cpu / (self.decode_cpu + self.recog_cpu)
    }
    fn json(&self) -> Value {
        json!({"clips": self.clips, "reference_words": self.ref_words, "audio_secs": self.audio_secs,
            "utterance_secs": self.utterance_secs, "wer_pooled": self.wer, "wer_pooled_floor0": self.wer_floor0,
            "wer_pooled_floor_on_floor0_pass": self.wer_refloored, "words_floor_on_floor0_pass": self.words_refloored,
            "wer_min": self.wer_min, "wer_max": self.wer_max, "words": self.words, "words_floor0": self.words_floor0,
            "decode_cpu_secs": self.decode_cpu, "decode_wall_secs": self.decode_wall, "gate_cpu_secs": self.gate_cpu,
            "recognition_cpu_secs": self.recog_cpu, "recognition_wall_secs": self.recog_wall,
            "rtf_cpu": self.rtf(), "x_real_time_cpu": 1.0 / self.rtf(), "rtf_wall": self.recog_wall / self.audio_secs,
            "rtf_cpu_per_speech_sec": self.rtf_speech(), "decode_cpu_per_audio_sec": self.decode_cpu / self.audio_secs,
            "decode_share_cpu": self.decode_share()})
    }
}

/// Total bytes of regular files under `dir` (symlinks followed, as `cp -rL` does).
fn tree_bytes(dir: &Path) -> Result<(u64, usize)> {
    let (mut bytes, mut files) = (0, 0);
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        let m = std::fs::metadata(&p)?;
        if m.is_dir() {
            let (b, f) = tree_bytes(&p)?;
            bytes += b;
            files += f;
        } else {
            bytes += m.len();
            files += 1;
        }
    }
    Ok((bytes, files))
}

/// The SpeechLayer's contents: libraries with their sizes, model bytes and files, zipped bytes if `zip` exists.
struct Layer {
    libs: Vec<(String, u64)>,
    model_bytes: u64,
    model_files: usize,
    zipped: Option<u64>,
}

/// What the SpeechLayer's Makefile copies: the engine with the libraries `ldd` lists (minus the C runtime) and the
/// model directory.
fn layer_sizes(model: &Path, stage: &Path) -> Result<Layer> {
    const SKIP: [&str; 8] = [
        "libc.",
        "libm.",
        "libdl.",
        "librt.",
        "libpthread.",
        "ld-linux",
        "libgcc_s.",
        "libstdc++.",
    ];
    let ldconfig = run(Command::new("ldconfig").arg("-p"), "ldconfig -p")?;
    let engine = ldconfig
        .lines()
        .find(|l| l.split_whitespace().next() == Some("libpocketsphinx.so.3"))
        .and_then(|l| l.split_whitespace().last())
        .context("libpocketsphinx.so.3 is not installed")?
        .to_string();
    let mut libs = vec![(engine.clone(), std::fs::metadata(&engine)?.len())];
    for line in run(Command::new("ldd").arg(&engine), "ldd")?.lines() {
        let mut parts = line.split_whitespace();
        let (Some(name), Some("=>"), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if !path.starts_with('/') || SKIP.iter().any(|s| name.starts_with(s)) {
            continue;
        }
        libs.push((path.to_string(), std::fs::metadata(path)?.len()));
    }
    let (model_bytes, model_files) = tree_bytes(model)?;
    let zipped = if Command::new("zip").arg("-v").output().is_ok_and(|o| o.status.success()) {
        // The layer's tree, as links (zip stores what they point to).
        let _ = std::fs::remove_dir_all(stage);
        std::fs::create_dir_all(stage.join("lib"))?;
        std::fs::create_dir_all(stage.join("share/pocketsphinx/model"))?;
        for (path, _) in &libs {
            let name = Path::new(path).file_name().context("library name")?;
            std::os::unix::fs::symlink(path, stage.join("lib").join(name))?;
        }
        std::os::unix::fs::symlink(model, stage.join("share/pocketsphinx/model/en-us"))?;
        let zip = stage.join("layer.zip");
        run(
            Command::new("zip")
                .current_dir(stage)
                .args(["-q", "-r"])
                .arg(&zip)
                .args(["lib", "share"]),
            "zip",
        )?;
        Some(std::fs::metadata(&zip)?.len())
    } else {
        None
    };
    Ok(Layer {
        libs,
        model_bytes,
        model_files,
        zipped,
    })
}

fn main() -> Result<()> {
    let root = vod_local::stack::find_root()?;
    let dir = root.join(".build/bench-index");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;

    // Machine and engine.
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")?
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_string(), |(_, v)| v.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let versions = run(
        Command::new("dpkg-query").args(["-W", "libpocketsphinx3", "pocketsphinx-en-us", "espeak-ng"]),
        "dpkg-query",
    )?;
    let versions: Vec<String> = versions
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let ffmpeg_version = run(Command::new("ffmpeg").arg("-version"), "ffmpeg -version")?
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("?")
        .to_string();
    let profile = if cfg!(debug_assertions) { "dev" } else { "release" };

    // Clips.
    let mut clips: Vec<(String, String, &'static str, String, PathBuf)> = Vec::new();
    for (key, label, args) in VOICES {
        let groups: Vec<(String, &'static str, &[&str])> = SENTENCES
            .chunks(SENTENCES_PER_CLIP)
            .enumerate()
            .map(|(i, s)| (format!("clip {}", i + 1), "corpus", s))
            .chain(std::iter::once(("e2e clip".to_string(), "e2e", &E2E_SENTENCES[..])))
            .collect();
        for (i, (name, kind, sentences)) in groups.into_iter().enumerate() {
            let work = dir.join(format!("{key}-{i}"));
            std::fs::create_dir_all(&work)?;
            let out = dir.join(format!("{key}-{i}.m4a"));
            speech_clip(&work, &args, sentences, &out)?;
            clips.push((label.to_string(), name, kind, sentences.join(" "), out));
        }
    }
    let silence = dir.join("silence.m4a");
    lavfi_clip("anullsrc=r=48000:cl=stereo", &silence)?;
    let music = dir.join("music.m4a");
    lavfi_clip(MUSIC, &music)?;
    clips.push(("–".into(), "silence 10 s".into(), "silence", String::new(), silence));
    clips.push(("–".into(), "music 10 s".into(), "music", String::new(), music));

    // The engine: three loads (the worker loads once per cold instance), the last one is kept.
    let cfg = SpeechConfig::from_lookup(|k| std::env::var(k).ok());
    let rss_before = rss_bytes();
    let mut loads = Vec::new();
    let mut rss_loaded = 0;
    let mut recognizer = None;
    for _ in 0..3 {
        drop(recognizer.take());
        let (rec, wall, cpu) = timed(|| Recognizer::new(&cfg));
        recognizer = Some(rec.context("loading the speech engine")?);
        rss_loaded = rss_loaded.max(rss_bytes());
        loads.push((wall, cpu));
    }
    let mut rec = recognizer.context("no recognizer")?;
    let load_first = loads[0];
    let load_warm = {
        let mut w: Vec<(f64, f64)> = loads[1..].to_vec();
        w.sort_by(|a, b| a.0.total_cmp(&b.0));
        w[0]
    };
    eprintln!("model load: {loads:?}");

    let mut rec_slot: Option<Recognizer> = None;
    let mut runs = Vec::new();
    for (voice, name, kind, reference, path) in &clips {
        runs.push(run_clip(
            &mut rec,
            cfg.min_confidence,
            path,
            (voice.as_str(), name.as_str(), *kind),
            reference,
        )?);
    }

    // Repeatability: klatt2 clip 1 at floor 0 three times: a fresh recognizer, the same recognizer again, another
    // fresh recognizer.
    drop(rec);
    let (repeat_ref, repeat_path) = (&clips[0].3, &clips[0].4);
    let pcm = decode(repeat_path, 0.0, duration(repeat_path)? + 1.0)?;
    let mut repeats = Vec::new();
    for fresh in [true, false, true] {
        if fresh || repeats.is_empty() {
            drop(rec_slot.take());
            rec_slot = Some(Recognizer::new(&cfg).context("loading the speech engine")?);
        }
        let r = rec_slot.as_mut().context("no recognizer")?;
        repeats.push((fresh, transcribe(r, &pcm, 0.0, 0.0)?));
    }
    drop(rec_slot);
    let repeat_rows: Vec<(bool, String, usize, f64)> = repeats
        .iter()
        .map(|(fresh, w)| {
            (
                *fresh,
                hypothesis(w),
                w.len(),
                word_error_rate(repeat_ref, &hypothesis(w)),
            )
        })
        .collect();

    // Decoding from the start of a long source: `decode_speech_pcm` reads the audio from the beginning and drops
    // samples before the window, so a window's decode cost grows with its end time.
    let long = dir.join("long.m4a");
    let loops = (LONG_SECS / duration(&clips[0].4)?).ceil() as u32;
    run(
        ffmpeg()
            .args(["-stream_loop", &loops.to_string(), "-i"])
            .arg(&clips[0].4)
            .args(["-t", &LONG_SECS.to_string(), "-c", "copy"])
            .arg(&long),
        "ffmpeg (long file)",
    )?;
    let long_secs = duration(&long)?;
    let window = WINDOW_SECS + 2.0 * OVERLAP_SECS;
    let (first_pcm, _, long_first_cpu) = timed(|| decode(&long, 0.0, window));
    let (last_pcm, _, long_last_cpu) = timed(|| decode(&long, long_secs - window, long_secs + 1.0));
    let (all_pcm, _, long_all_cpu) = timed(|| decode(&long, 0.0, long_secs + 1.0));
    let (first_len, last_len, all_len) = (first_pcm?.len(), last_pcm?.len(), all_pcm?.len());
    let decode_rate = long_all_cpu / (all_len as f64 / SAMPLE_RATE as f64);
    eprintln!(
        "long file {long_secs:.0} s: first window {long_first_cpu:.3} s, last {long_last_cpu:.3} s, \
         all {long_all_cpu:.3} s CPU"
    );

    // Packaging.
    let Layer {
        libs,
        model_bytes,
        model_files,
        zipped,
    } = layer_sizes(&cfg.model_dir, &dir.join("layer"))?;
    let lib_bytes: u64 = libs.iter().map(|l| l.1).sum();

    // Aggregates.
    let voice_totals: Vec<(&str, Totals)> = VOICES
        .iter()
        .map(|(_, label, _)| {
            let r: Vec<&ClipRun> = runs
                .iter()
                .filter(|r| r.voice == *label && r.kind == "corpus")
                .collect();
            (*label, totals(&r))
        })
        .collect();
    let e2e: Vec<&ClipRun> = runs.iter().filter(|r| r.kind == "e2e").collect();
    let fp: Vec<&ClipRun> = runs
        .iter()
        .filter(|r| r.kind == "silence" || r.kind == "music")
        .collect();
    let (primary, secondary) = (&voice_totals[0].1, &voice_totals[1].1);
    // Floor trade: share of the floor-0 words the floor drops, over the corpus.
    let floor_drop = |t: &Totals| 1.0 - t.words_refloored as f64 / t.words_floor0.max(1) as f64;

    // Projection: 30 tasks of 120 s; each decodes its window ± 2 s, from the start of the source, and fetches the
    // whole audio track (the range planner's `Need::Audio`). Recognition: the slower voice's CPU per second of
    // utterance, as if the whole window were speech (a talk has few pauses).
    let rtf_speech = primary.rtf_speech().max(secondary.rtf_speech());
    let tasks = (TALK_SECS / WINDOW_SECS).ceil() as usize;
    let fetch_secs = TALK_SECS * SOURCE_AUDIO_KBPS * 1000.0 / 8.0 / (S3_MB_PER_S * 1e6);
    let task_work: Vec<(f64, f64, f64)> = (0..tasks)
        .map(|k| {
            let (start, end) = (k as f64 * WINDOW_SECS, ((k + 1) as f64 * WINDOW_SECS).min(TALK_SECS));
            let (from, to) = ((start - OVERLAP_SECS).max(0.0), (end + OVERLAP_SECS).min(TALK_SECS));
            (fetch_secs, decode_rate * to, rtf_speech * (to - from))
        })
        .collect();
    let work = |t: &(f64, f64, f64)| t.0 + t.1 + t.2;
    let cold = LAMBDA_START_SECS + load_first.0;
    let fanout_wall = task_work.iter().map(|t| cold + work(t)).fold(0.0, f64::max);
    let fanout_busy: f64 = task_work.iter().map(|t| cold + work(t)).sum();
    let single_wall = cold + task_work.iter().map(work).sum::<f64>();
    let (first_task, last_task) = (task_work[0], task_work[tasks - 1]);

    let mb = |b: u64| b as f64 / 1e6;
    let report = json!({
        "machine": {"cpu": cpu_model, "cores": cores, "date": date, "profile": profile},
        "versions": {"packages": versions, "ffmpeg": ffmpeg_version},
        "config": {"library": cfg.library, "model_dir": cfg.model_dir, "min_confidence": cfg.min_confidence,
            "extra_args": cfg.extra_args},
        "model_load": {"runs": loads.iter().map(|(w, c)| json!({"wall_secs": w, "cpu_secs": c})).collect::<Vec<_>>(),
            "rss_before_bytes": rss_before, "rss_loaded_bytes": rss_loaded},
        "voices": voice_totals.iter().map(|(l, t)| json!({"voice": l, "corpus": t.json()})).collect::<Vec<_>>(),
        "clips": runs.iter().map(ClipRun::json).collect::<Vec<_>>(),
        "repeatability": {"clip": format!("{} {}", clips[0].0, clips[0].1), "floor": 0.0,
            "passes": repeat_rows.iter().map(|(f, h, n, w)| json!({"fresh_recognizer": f, "words": n, "wer": w,
                "hypothesis": h})).collect::<Vec<_>>()},
        "long_decode": {"source_secs": long_secs, "window_secs": window,
            "first_window_cpu_secs": long_first_cpu, "first_window_samples": first_len,
            "last_window_cpu_secs": long_last_cpu, "last_window_samples": last_len,
            "whole_cpu_secs": long_all_cpu, "whole_samples": all_len, "cpu_per_audio_sec": decode_rate},
        "projection": {"talk_secs": TALK_SECS, "window_secs": WINDOW_SECS, "overlap_secs": OVERLAP_SECS, "tasks": tasks,
            "fan_out": FAN_OUT, "assumed": {"lambda_start_secs": LAMBDA_START_SECS, "s3_mb_per_s": S3_MB_PER_S,
                "source_audio_kbps": SOURCE_AUDIO_KBPS},
            "measured": {"model_load_secs": load_first.0, "decode_cpu_per_audio_sec": decode_rate,
                "recognition_cpu_per_speech_sec": rtf_speech},
            "first_task": {"fetch_secs": first_task.0, "decode_secs": first_task.1, "recognition_secs": first_task.2},
            "last_task": {"fetch_secs": last_task.0, "decode_secs": last_task.1, "recognition_secs": last_task.2},
            "fan_out_wall_secs": fanout_wall, "fan_out_busy_secs": fanout_busy, "one_worker_wall_secs": single_wall,
            "speed_up": single_wall / fanout_wall},
        "packaging": {"libraries": libs.iter().map(|(p, b)| json!({"path": p, "bytes": b})).collect::<Vec<_>>(),
            "library_bytes": lib_bytes, "model_bytes": model_bytes, "model_files": model_files,
            "total_bytes": lib_bytes + model_bytes, "zipped_bytes": zipped},
    });

    // Markdown.
    let mut md = format!(
        "# Speech indexing benchmark\n\n\
         One run of `vod-bench-index` ({profile} profile) on {cpu_model}, {cores} cores, {date}. Packages \
         (`dpkg-query -W`): {}; ffmpeg {ffmpeg_version}. Confidence floor {:.2} (`SPEECH_MIN_CONFIDENCE`).\n\n\
         The pipeline as the index worker runs it: AAC in M4A, 48 kHz stereo (a producer's upload) → \
         `decode_speech_pcm` (16 kHz mono) → `transcribe` (pause-cut utterances, speech/music gate, PocketSphinx, \
         confidence floor), one recognizer reused across clips. Corpus: {} everyday sentences in clips of \
         {SENTENCES_PER_CLIP}, 1 s of silence before the first sentence and after each. Times are process CPU \
         time (one thread does the work) unless marked wall.\n\n\
         ## Summary\n\n| measure | value |\n|---|---:|\n",
        versions.join(", "),
        cfg.min_confidence,
        SENTENCES.len(),
    );
    for (label, t) in &voice_totals {
        md.push_str(&format!(
            "| **pooled WER, {label}** ({} clips, {} words) | **{:.3}** (clips {:.3}–{:.3}) |\n",
            t.clips, t.ref_words, t.wer, t.wer_min, t.wer_max
        ));
    }
    md.push_str(&format!(
        "| words recognized in 10 s silence / 10 s music | {} / {} |\n\
         | recognition real-time factor, klatt2 voice (CPU s per audio s) | {:.3} ({:.1}× faster than real time) |\n\
         | recognition real-time factor, default voice | {:.3} ({:.1}× faster than real time) |\n\
         | model load (`Recognizer::new`), first / warm, wall | {:.2} s / {:.2} s |\n\
         | resident memory after loading the model | {:.0} MB |\n\
         | SpeechLayer: libraries + model, unzipped | {:.1} MB + {:.1} MB = {:.1} MB |\n\
         | SpeechLayer zipped | {} |\n\
         | projected 60-min talk, {FAN_OUT}-way / 1 worker (assumptions below) | {:.0} s / {:.0} s |\n\n",
        fp.iter().find(|r| r.kind == "silence").map_or(0, |r| r.words.len()),
        fp.iter().find(|r| r.kind == "music").map_or(0, |r| r.words.len()),
        primary.rtf(),
        1.0 / primary.rtf(),
        secondary.rtf(),
        1.0 / secondary.rtf(),
        load_first.0,
        load_warm.0,
        mb(rss_loaded),
        mb(lib_bytes),
        mb(model_bytes),
        mb(lib_bytes + model_bytes),
        zipped.map_or("`zip` not installed".to_string(), |z| format!("{:.1} MB", mb(z))),
        fanout_wall,
        single_wall,
    ));

    md.push_str(&format!(
        "## Accuracy per clip\n\n\
         WER = (substitutions + deletions + insertions) / reference words, after `normalize_term`; pooled = \
         Σ(WER × reference words) / Σ reference words. Each clip is recognized twice with the same recognizer: \
         first as the worker does (floor {floor:.2}: \"words\", \"WER\"), then with `min_confidence` 0 (\"floor \
         0\"); \"floor on 2nd pass\" applies the floor to that second pass's words, so that floor 0 vs floor \
         compares one and the same decode.\n\n\
         | voice | clip | audio s | ref. words | words | **WER** | words, floor 0 | WER, floor 0 | words, floor on 2nd pass | WER, floor on 2nd pass |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        floor = cfg.min_confidence
    ));
    for r in runs.iter().filter(|r| r.kind == "corpus" || r.kind == "e2e") {
        md.push_str(&format!(
            "| {} | {} | {:.1} | {} | {} | {:.3} | {} | {:.3} | {} | {:.3} |\n",
            r.voice,
            r.name,
            r.audio_secs,
            r.ref_words,
            r.words.len(),
            r.wer,
            r.words_floor0.len(),
            r.wer_floor0,
            r.words_refloored,
            r.wer_refloored
        ));
    }
    for (label, t) in &voice_totals {
        md.push_str(&format!(
            "| **{label}** | **corpus, pooled** | {:.1} | {} | {} | **{:.3}** | {} | **{:.3}** | {} | **{:.3}** |\n",
            t.audio_secs, t.ref_words, t.words, t.wer, t.words_floor0, t.wer_floor0, t.words_refloored, t.wer_refloored
        ));
    }
    let trade = |t: &Totals| {
        if t.wer_refloored < t.wer_floor0 {
            format!("lowers pooled WER from {:.3} to {:.3}", t.wer_floor0, t.wer_refloored)
        } else {
            format!("raises pooled WER from {:.3} to {:.3}", t.wer_floor0, t.wer_refloored)
        }
    };
    let fp0: usize = fp.iter().map(|r| r.words_floor0.len()).sum();
    let speech_runs: Vec<&ClipRun> = runs.iter().filter(|r| r.kind == "corpus" || r.kind == "e2e").collect();
    md.push_str(&format!(
        "\nOn the same decode, the floor (confidence {:.2}) drops {:.0}% of the recognized words for the klatt2 \
         voice and {:.0}% for the default voice; it {} for klatt2 and {} for the default voice. A dropped wrong \
         word removes a substitution or insertion, a dropped right word adds a deletion: the floor pays where the \
         engine's posteriors separate right from wrong words and costs where right words get low posteriors. On \
         silence and music the speech/music gate alone {}, so in this run the floor's effect is on speech \
         only.\n\n\
         The two passes over the same audio do not decode alike: in {} of {} speech clips the first pass's words \
         are exactly the second pass's words at or above the floor. The recognizer carries state from one call to \
         the next (see \"Repeatability\" below), so the WER columns \"WER\" and \"WER, floor on 2nd pass\" differ \
         by decoder history as well as by chance.\n\n\
         The e2e clip is the e2e test's three sentences: WER {} here (the e2e test asserts ≤ 0.6 for the klatt2 \
         voice). Per clip, sentences whose word sequence the language model finds likely come through whole \
         (\"i lost my phone on the bus yesterday\"), others break into frequent short words.\n\n",
        cfg.min_confidence,
        100.0 * floor_drop(primary),
        100.0 * floor_drop(secondary),
        trade(primary),
        trade(secondary),
        if fp0 == 0 {
            "already keeps the output empty (0 words at floor 0 too)".to_string()
        } else {
            format!("lets {fp0} words through, which the floor has to catch")
        },
        speech_runs.iter().filter(|r| r.floor_consistent).count(),
        speech_runs.len(),
        e2e.iter()
            .map(|r| format!("{:.3} ({})", r.wer, r.voice))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    for (label, _) in &voice_totals {
        if let Some(r) = runs.iter().find(|r| r.voice == *label && r.kind == "corpus") {
            md.push_str(&format!(
                "{label}, {}: reference \"{}\"; recognized \"{}\".\n\n",
                r.name,
                r.reference,
                hypothesis(&r.words)
            ));
        }
    }

    md.push_str(&format!(
        "## Repeatability\n\n{} {} at floor 0, three passes over the same PCM.\n\n\
         | pass | recognizer | words | WER | same words as pass 1 |\n|---|---|---:|---:|---|\n",
        clips[0].0, clips[0].1
    ));
    for (i, (fresh, h, n, w)) in repeat_rows.iter().enumerate() {
        md.push_str(&format!(
            "| {} | {} | {n} | {w:.3} | {} |\n",
            i + 1,
            if *fresh {
                "freshly loaded"
            } else {
                "same as pass 1, used again"
            },
            if h == &repeat_rows[0].1 { "yes" } else { "no" }
        ));
    }
    md.push_str(
        "\nA freshly loaded recognizer is deterministic; a recognizer that has already decoded audio is not the \
         same recognizer any more: PocketSphinx adapts as it goes (most likely its live cepstral mean \
         normalization, whose estimate carries over from one utterance to the next). In the worker, one \
         recognizer per warm instance serves consecutive index tasks, so a window's words depend on what that \
         instance decoded before — a retry or another instance can index the same window differently.\n\n",
    );

    md.push_str(
        "## False positives\n\n\
         | clip | utterances found | utterance s | words (floor) | words (floor 0) |\n|---|---:|---:|---:|---:|\n",
    );
    for r in &fp {
        md.push_str(&format!(
            "| {} | {} | {:.1} | {} | {} |\n",
            r.name,
            r.utterances,
            r.utterance_secs,
            r.words.len(),
            r.words_floor0.len()
        ));
    }
    md.push_str(
        "\nGoal: 0 words. Utterances are what the pause detector hands on; those that are not speech-like (low \
         energy-ratio and zero-crossing variation) are dropped by the speech/music gate before the decoder, and \
         the confidence floor removes what is left.\n\n",
    );

    md.push_str(&format!(
        "## Speed, one core\n\n\
         Model load (`Recognizer::new`: open the library, read the 27 MB language model, dictionary and acoustic \
         model): {}. The model files were in the page cache (this machine had read them before), so these are \
         CPU-bound figures; a cold Lambda instance also reads the 38 MB from its layer on the first load. The \
         worker loads once per warm instance. Resident memory {:.0} MB before, {:.0} MB with a model loaded.\n\n\
         | voice (corpus) | audio s | utterance s | decode CPU s | recognition CPU s (wall) | RTF (CPU / audio) | × real time | RTF per utterance s | decode share | gate share |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        loads
            .iter()
            .enumerate()
            .map(|(i, (w, c))| format!("load {} {w:.2} s wall / {c:.2} s CPU", i + 1))
            .collect::<Vec<_>>()
            .join(", "),
        mb(rss_before),
        mb(rss_loaded),
    ));
    for (label, t) in &voice_totals {
        md.push_str(&format!(
            "| {label} | {:.1} | {:.1} | {:.3} | {:.2} ({:.2}) | {:.3} | {:.1} | {:.3} | {:.1}% | {:.1}% |\n",
            t.audio_secs,
            t.utterance_secs,
            t.decode_cpu,
            t.recog_cpu,
            t.recog_wall,
            t.rtf(),
            1.0 / t.rtf(),
            t.rtf_speech(),
            100.0 * t.decode_share(),
            100.0 * t.gate_cpu / t.recog_cpu,
        ));
    }
    for r in e2e.iter().chain(fp.iter()) {
        md.push_str(&format!(
            "| {} {} | {:.1} | {:.1} | {:.3} | {:.2} ({:.2}) | {:.3} | {:.1} | {} | {:.1}% | – |\n",
            if r.kind == "e2e" { r.voice.as_str() } else { "" },
            r.name,
            r.audio_secs,
            r.utterance_secs,
            r.decode_cpu,
            r.recog_cpu,
            r.recog_wall,
            r.recog_cpu / r.audio_secs,
            r.audio_secs / r.recog_cpu.max(1e-9),
            if r.utterance_secs > 0.0 {
                format!("{:.3}", r.recog_cpu / r.utterance_secs)
            } else {
                "–".to_string()
            },
            100.0 * r.decode_cpu / (r.decode_cpu + r.recog_cpu),
        ));
    }
    md.push_str(&format!(
        "\nRTF = recognition CPU seconds per second of audio (the clips are about {:.0}% utterances: 1 s pauses \
         between sentences); \"per utterance s\" divides by the seconds the decoder actually hears. \
         Recognition wall ≈ CPU: the work is one thread that had a core to itself; on this shared virtual machine \
         CPU time per audio second still varies from run to run. Decode share = decode / (decode + recognition). \
         Gate share = pause detection and speech/music features, part of the recognition time{}.\n\n\
         Decoding from the start of a long source ({long_secs:.0} s, AAC 48 kHz stereo; `decode_speech_pcm` reads \
         from the beginning and drops samples before the window): the first {window:.0} s window costs \
         {long_first_cpu:.3} s CPU, the last one {long_last_cpu:.3} s, the whole file {long_all_cpu:.3} s = \
         {:.5} s per audio second ({:.0}× real time). So a window's decode cost grows with its end time.\n\n",
        100.0 * primary.utterance_secs / primary.audio_secs,
        if profile == "dev" {
            " (vod-speech is not optimised in the dev profile, the deployed release build is; the engine's C code \
             does the work, so this changes little)"
        } else {
            ""
        },
        decode_rate,
        1.0 / decode_rate,
    ));

    md.push_str(&format!(
        "## Projection: indexing a 60-minute talk\n\n\
         The planner cuts {TALK_SECS:.0} s into {tasks} index tasks of {WINDOW_SECS:.0} s; each decodes its window \
         ± {OVERLAP_SECS:.0} s. Per task, from this run: recognition {rtf_speech:.3} CPU s per second of speech (the \
         slower voice, as if the whole window were speech), decode {decode_rate:.5} s per audio second from the \
         start of the source, model load {:.2} s (first load here). Assumed, not measured: Lambda cold start \
         {LAMBDA_START_SECS} s, S3 at {S3_MB_PER_S:.0} MB/s per function, each task fetching the whole audio track \
         ({SOURCE_AUDIO_KBPS:.0} kb/s AAC → {:.0} MB, {fetch_secs:.2} s; the range planner's `Need::Audio`), a \
         Lambda core as fast as this one (≥ 1769 MB), the finalizer's merge not counted.\n\n\
         | | first task (s) | last task (s) |\n|---|---:|---:|\n\
         | fetch audio track | {:.2} | {:.2} |\n| decode from the start | {:.2} | {:.2} |\n\
         | recognition | {:.1} | {:.1} |\n| cold start + model load | {cold:.2} | {cold:.2} |\n\n\
         | workers | wall time (s) | function seconds |\n|---|---:|---:|\n\
         | {FAN_OUT}-way fan-out (every task cold) | {fanout_wall:.0} | {fanout_busy:.0} |\n\
         | 1 worker (one cold start, model loaded once) | {single_wall:.0} | {single_wall:.0} |\n\n\
         Speed-up {:.1}× for {:.0}% more function time ({FAN_OUT} model loads and audio fetches instead of one). \
         The last task is the slowest: it decodes {:.0} s of audio to reach its window.\n\n",
        load_first.0,
        TALK_SECS * SOURCE_AUDIO_KBPS / 8.0 / 1000.0,
        first_task.0,
        last_task.0,
        first_task.1,
        last_task.1,
        first_task.2,
        last_task.2,
        single_wall / fanout_wall,
        100.0 * (fanout_busy / single_wall - 1.0),
        TALK_SECS,
    ));

    md.push_str(&format!(
        "## Packaging: what the SpeechLayer ships\n\n\
         `infra/layers/speech/Makefile`: `libpocketsphinx.so.3` and the libraries `ldd` lists, except the C runtime \
         (libc, libm, ld-linux, libgcc_s, libstdc++), plus `{}` ({model_files} files). Sizes are file bytes \
         (symlinks followed), MB = 10⁶ bytes.\n\n| file | MB |\n|---|---:|\n",
        cfg.model_dir.display()
    ));
    for (p, b) in &libs {
        md.push_str(&format!("| {p} | {:.2} |\n", mb(*b)));
    }
    md.push_str(&format!(
        "| **libraries** | **{:.1}** |\n| **model** | **{:.1}** |\n| **total** | **{:.1}** |\n| zipped (`zip -r`, \
         default level) | {} |\n\n",
        mb(lib_bytes),
        mb(model_bytes),
        mb(lib_bytes + model_bytes),
        zipped.map_or("–".to_string(), |z| format!("{:.1}", mb(z)))
    ));

    md.push_str(&format!(
        "## What limits accuracy\n\n\
         The engine is PocketSphinx 5prealpha (2015): a GMM-HMM recognizer with CMU's generic US-English acoustic \
         model, trained on recorded human speech, a generic n-gram language model and a 134k-entry pronunciation \
         dictionary. The test speech is synthetic: espeak-ng is a formant synthesizer whose spectra are far from \
         the human voices the acoustic model learned, so most errors are acoustic confusions the language model \
         then resolves to a frequent wrong phrase. The voice alone moves pooled WER from {:.3} (Klatt variant) to \
         {:.3} (default formant voice) on the same sentences. These figures measure the pipeline against a fixed, \
         reproducible input; they do not predict WER on real recordings, where the acoustic match is better but \
         spontaneous speech, noise, accents and domain vocabulary missing from the generic language model cost \
         accuracy. A modern neural recognizer would be expected to do better on both, at a larger model \
         and more CPU per audio second (not measured here).\n",
        primary.wer, secondary.wer
    ));

    std::fs::create_dir_all(root.join("bench"))?;
    std::fs::write(root.join("bench/index-report.md"), &md)?;
    std::fs::write(
        root.join("bench/index-report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("{md}");
    Ok(())
}
