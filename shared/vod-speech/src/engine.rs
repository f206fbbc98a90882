//! PocketSphinx through its C API. Hand-written bindings: no maintained crate binds the 5prealpha API Debian
//! ships, and the dozen calls used here are opened with dlopen so that binaries never link the engine unless
//! they run an index task.
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;

use libloading::Library;

use crate::{SpeechConfig, SpeechError};

type Ptr = *mut c_void;
type CmdLnParseR = unsafe extern "C" fn(Ptr, *const c_void, i32, *const *mut c_char, i32) -> Ptr;
type PsArgs = unsafe extern "C" fn() -> *const c_void;
type PsInit = unsafe extern "C" fn(Ptr) -> Ptr;
type PtrToInt = unsafe extern "C" fn(Ptr) -> c_int;
type PsProcessRaw = unsafe extern "C" fn(Ptr, *const i16, usize, c_int, c_int) -> c_int;
type PtrToPtr = unsafe extern "C" fn(Ptr) -> Ptr;
type PsSegWord = unsafe extern "C" fn(Ptr) -> *const c_char;
type PsSegFrames = unsafe extern "C" fn(Ptr, *mut c_int, *mut c_int);
type PsSegProb = unsafe extern "C" fn(Ptr, *mut i32, *mut i32, *mut i32) -> i32;
type LogmathExp = unsafe extern "C" fn(Ptr, c_int) -> f64;

/// Feature frames per second (PocketSphinx's default `-frate`).
const FRAME_RATE: f64 = 100.0;

/// A word as the engine reports it, times relative to the decoded samples.
#[derive(Debug, Clone, PartialEq)]
pub struct RawWord {
    pub text: String,
    pub start: f64,
    pub end: f64,
    /// Posterior probability of the word in the utterance's lattice.
    pub confidence: f32,
    /// Acoustic score per frame (log base 1.0001; closer to 0 = the audio matches the model better).
    pub acoustic_per_frame: f64,
}

struct Api {
    ps_start_utt: PtrToInt,
    ps_process_raw: PsProcessRaw,
    ps_end_utt: PtrToInt,
    ps_seg_iter: PtrToPtr,
    ps_seg_next: PtrToPtr,
    ps_seg_word: PsSegWord,
    ps_seg_frames: PsSegFrames,
    ps_seg_prob: PsSegProb,
    ps_get_logmath: PtrToPtr,
    logmath_exp: LogmathExp,
    ps_free: PtrToInt,
    cmd_ln_free_r: PtrToInt,
}

/// A loaded decoder with its model. Not thread-safe (the C decoder is not): one per thread.
pub struct Recognizer {
    api: Api,
    decoder: Ptr,
    config: Ptr,
    // Declared last: dropped after the decoder is freed (Drop runs first).
    _lib: Library,
}

// SAFETY: the decoder has no thread affinity; it is only used through &mut self, so never concurrently.
unsafe impl Send for Recognizer {}

fn symbol<T: Copy>(lib: &Library, name: &[u8]) -> Result<T, SpeechError> {
    // SAFETY: every symbol is looked up with the signature of its declaration in pocketsphinx.h / sphinxbase.
    unsafe { lib.get::<T>(name) }
        .map(|s| *s)
        .map_err(|e| SpeechError::Unavailable(format!("symbol {}: {e}", String::from_utf8_lossy(name))))
}

impl Recognizer {
    /// Opens the library and loads the model (about a second: the language model is large).
    pub fn new(cfg: &SpeechConfig) -> Result<Self, SpeechError> {
        let dir = &cfg.model_dir;
        let hmm = dir.join("en-us");
        let lm = dir.join("en-us.lm.bin");
        let dict = dir.join("cmudict-en-us.dict");
        for p in [&hmm, &lm, &dict] {
            if !p.exists() {
                return Err(SpeechError::Unavailable(format!(
                    "model file {} is missing",
                    p.display()
                )));
            }
        }
        // SAFETY: loading a shared library runs its initialisers; libpocketsphinx has none with side effects.
        let lib = unsafe { Library::new(&cfg.library) }
            .map_err(|e| SpeechError::Unavailable(format!("cannot load {}: {e}", cfg.library)))?;
        let parse: CmdLnParseR = symbol(&lib, b"cmd_ln_parse_r\0")?;
        let ps_args: PsArgs = symbol(&lib, b"ps_args\0")?;
        let ps_init: PsInit = symbol(&lib, b"ps_init\0")?;
        let api = Api {
            ps_start_utt: symbol(&lib, b"ps_start_utt\0")?,
            ps_process_raw: symbol(&lib, b"ps_process_raw\0")?,
            ps_end_utt: symbol(&lib, b"ps_end_utt\0")?,
            ps_seg_iter: symbol(&lib, b"ps_seg_iter\0")?,
            ps_seg_next: symbol(&lib, b"ps_seg_next\0")?,
            ps_seg_word: symbol(&lib, b"ps_seg_word\0")?,
            ps_seg_frames: symbol(&lib, b"ps_seg_frames\0")?,
            ps_seg_prob: symbol(&lib, b"ps_seg_prob\0")?,
            ps_get_logmath: symbol(&lib, b"ps_get_logmath\0")?,
            logmath_exp: symbol(&lib, b"logmath_exp\0")?,
            ps_free: symbol(&lib, b"ps_free\0")?,
            cmd_ln_free_r: symbol(&lib, b"cmd_ln_free_r\0")?,
        };
        let args = [
            ("-hmm", path_arg(&hmm)?),
            ("-lm", path_arg(&lm)?),
            ("-dict", path_arg(&dict)?),
            // Keep every frame so that word times are times in the audio.
            ("-remove_silence", "no".to_string()),
            ("-samprate", "16000".to_string()),
            ("-logfn", "/dev/null".to_string()),
        ];
        // Extra options override the defaults (the parser refuses a name given twice).
        let overridden = |k: &str| cfg.extra_args.iter().step_by(2).any(|e| e == k);
        let owned: Vec<CString> = std::iter::once("vod-speech".to_string())
            .chain(
                args.iter()
                    .filter(|(k, _)| !overridden(k))
                    .flat_map(|(k, v)| [k.to_string(), v.clone()]),
            )
            .chain(cfg.extra_args.iter().cloned())
            .map(|s| CString::new(s).map_err(|_| SpeechError::Unavailable("a model path contains NUL".into())))
            .collect::<Result<_, _>>()?;
        let argv: Vec<*mut c_char> = owned.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        // SAFETY: argv holds `argc` valid NUL-terminated strings that outlive the call (values are copied);
        // ps_args returns the static argument definitions.
        let config = unsafe { parse(std::ptr::null_mut(), ps_args(), argv.len() as i32, argv.as_ptr(), 1) };
        if config.is_null() {
            return Err(SpeechError::Unavailable("the engine rejected its configuration".into()));
        }
        // SAFETY: config is a valid cmd_ln_t; ps_init retains it.
        let decoder = unsafe { ps_init(config) };
        if decoder.is_null() {
            // SAFETY: config came from cmd_ln_parse_r and is released once.
            unsafe { (api.cmd_ln_free_r)(config) };
            return Err(SpeechError::Unavailable(format!(
                "cannot load the model in {}",
                dir.display()
            )));
        }
        Ok(Recognizer {
            api,
            decoder,
            config,
            _lib: lib,
        })
    }

    /// Decodes one utterance of 16 kHz mono samples.
    pub fn decode(&mut self, samples: &[i16]) -> Result<Vec<RawWord>, SpeechError> {
        let a = &self.api;
        let ps = self.decoder;
        // SAFETY: ps is a live decoder owned by self; samples is a valid slice for the duration of the calls.
        unsafe {
            if (a.ps_start_utt)(ps) < 0 {
                return Err(SpeechError::Engine("cannot start an utterance".into()));
            }
            for block in samples.chunks(4096) {
                if (a.ps_process_raw)(ps, block.as_ptr(), block.len(), 0, 0) < 0 {
                    (a.ps_end_utt)(ps);
                    return Err(SpeechError::Engine("the decoder rejected the audio".into()));
                }
            }
            if (a.ps_end_utt)(ps) < 0 {
                return Err(SpeechError::Engine("cannot end the utterance".into()));
            }
            let logmath = (a.ps_get_logmath)(ps);
            let mut words: Vec<RawWord> = Vec::new();
            // Frame numbers count from the decoder's creation, not the utterance: the first segment (`<s>`)
            // starts at this utterance's first frame.
            let mut base: Option<c_int> = None;
            let mut seg = (a.ps_seg_iter)(ps);
            while !seg.is_null() {
                let text = (a.ps_seg_word)(seg);
                let (mut sf, mut ef) = (0, 0);
                (a.ps_seg_frames)(seg, &mut sf, &mut ef);
                let (mut ascr, mut lscr, mut lback) = (0, 0, 0);
                let post = (a.ps_seg_prob)(seg, &mut ascr, &mut lscr, &mut lback);
                let b = *base.get_or_insert(sf);
                let (sf, ef) = (sf - b, ef - b);
                if !text.is_null() {
                    let text = CStr::from_ptr(text).to_string_lossy().into_owned();
                    let confidence = if logmath.is_null() {
                        0.0
                    } else {
                        (a.logmath_exp)(logmath, post).clamp(0.0, 1.0) as f32
                    };
                    words.push(RawWord {
                        text,
                        start: sf.max(0) as f64 / FRAME_RATE,
                        end: (ef.max(sf) + 1).max(0) as f64 / FRAME_RATE,
                        confidence,
                        acoustic_per_frame: ascr as f64 / (ef - sf + 1).max(1) as f64,
                    });
                }
                seg = (a.ps_seg_next)(seg);
            }
            // ps_seg_next frees the iterator when it returns NULL.
            Ok(words)
        }
    }
}

fn path_arg(p: &Path) -> Result<String, SpeechError> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| SpeechError::Unavailable(format!("model path {} is not UTF-8", p.display())))
}

impl Drop for Recognizer {
    fn drop(&mut self) {
        // SAFETY: both were created in new() and are released exactly once, decoder first.
        unsafe {
            (self.api.ps_free)(self.decoder);
            (self.api.cmd_ln_free_r)(self.config);
        }
    }
}
