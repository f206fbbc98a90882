//! The README's run command, as a newcomer runs it: in a fresh clone of the repository, `./run.sh` sets the machine
//! up, builds, starts the platform with its sample and prints the stream URLs, which ffprobe must read.
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{moto_port, prefix, root, scratch};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// ffprobe's streams of a URL (codec types).
fn probe_streams(url: &str) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rw_timeout",
            "20000000",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
        ])
        .arg(url)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_readme_run_command_works_in_a_fresh_clone() {
    let root = root().canonicalize().expect("root");
    assert!(root.join(".git").exists(), "the project must be a git checkout");
    let dir = scratch("readme-run");
    let clone = dir.join("clone");
    let _ = std::fs::remove_dir_all(&clone);
    let status = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(&root)
        .arg(&clone)
        .status()
        .expect("git clone");
    assert!(status.success(), "git clone failed");
    // The README's run command, as written there (its port and prefix from the environment so that it runs beside
    // the other tests; compiled dependencies are shared with this build's target directory).
    let readme = std::fs::read_to_string(clone.join("README.md")).expect("README");
    assert!(
        readme.contains("\n./run.sh\n"),
        "the README names ./run.sh as its run command"
    );
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let mut child = Command::new(clone.join("run.sh"))
        .current_dir(&clone)
        .env("CARGO_TARGET_DIR", target)
        .env("MOTO_PORT", moto_port().to_string())
        .env("VOD_API_PORT", free_port().to_string())
        .env("VOD_PREFIX", prefix("readme"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("./run.sh starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("run.sh| {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(1500);
    let mut urls: Vec<(String, String)> = Vec::new();
    let mut ready = false;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(line) => {
                let t = line.trim();
                for k in ["hls", "dash"] {
                    if let Some(u) = t.strip_prefix(k).map(str::trim) {
                        if u.starts_with("http") {
                            urls.push((k.to_string(), u.to_string()));
                        }
                    }
                }
                if t.starts_with("press Ctrl-C") {
                    ready = true;
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(st)) = child.try_wait() {
                    panic!("./run.sh ended ({st}) before printing its URLs");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let result = std::panic::catch_unwind(|| {
        assert!(ready, "./run.sh did not print its URLs in time");
        let hls = urls.iter().find(|(k, _)| k == "hls").expect("an HLS URL").1.clone();
        let dash = urls.iter().find(|(k, _)| k == "dash").expect("a DASH URL").1.clone();
        for url in [&hls, &dash] {
            let streams = probe_streams(url);
            assert!(streams.iter().any(|s| s == "video"), "{url}: {streams:?}");
            assert!(streams.iter().any(|s| s == "audio"), "{url}: {streams:?}");
        }
    });
    // Ctrl-C, as the README says (SIGINT to the command's process group); the stack stops.
    let group = -(child.id() as i32);
    // SAFETY: kill(2) on the process group this test started; no memory is involved.
    unsafe { libc::kill(group, libc::SIGINT) };
    let stopped = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !stopped {
        // SAFETY: as above.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = child.wait();
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(stopped, "./run.sh did not stop on Ctrl-C");
    let _ = std::fs::remove_dir_all(&dir);
}
