//! Fuzz harness of the streaming URL grammar (`vod_package::url::parse`): any path and query give a request or a
//! `UrlError`, never a panic. Shared by `fuzz_targets/url.rs` and vod-package's `tests/fuzz_corpus.rs`.

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text, None),
    };
    match vod_package::url::parse(path, query) {
        Ok(req) => {
            let _ = format!("{req:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    // The same text as the path only (a query-less request).
    let _ = vod_package::url::parse(text, None);
}
