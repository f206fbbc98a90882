#!/usr/bin/env bash
# Makes this machine able to run the platform (`setup.sh run`), every check and test (`setup.sh test`) or the
# benchmarks (`setup.sh bench`: test's set-up plus the HTTP load generator wrk): installs
# what is missing — Debian/Ubuntu packages, the emulator's and tools' Python venvs under .build/, the player page's
# npm packages — says what it installs and why, and does nothing when everything is present (quick to re-run).
# Both README commands (./run.sh, ./test.sh) call it first; CI calls ./test.sh on a fresh machine, which proves it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mode="${1:-run}"
case "$mode" in run | test) ;; bench) bench=1; mode=test ;; *) echo "usage: $0 run|test|bench" >&2; exit 2 ;; esac
export DEBIAN_FRONTEND=noninteractive

# Debian packages, each with the reason it is needed.
declare -A why=(
  [ffmpeg]="makes the sample and test media, and judges the streams (ffprobe)"
  [pkg-config]="lets the FFmpeg bindings find the libraries"
  [curl]="checks that the emulator answers"
  [python3-venv]="the AWS emulator (moto) runs in a Python venv"
  [util-linux]="flock serialises emulator starts"
  [make]="builds the Lambda layers"
  [libavcodec-dev]="the encoder links FFmpeg's libraries (decoding, x264, AAC)"
  [libavformat-dev]="the encoder demuxes sources with libavformat"
  [libavutil-dev]="FFmpeg's utility library (the encoder's bindings)"
  [libswscale-dev]="the encoder scales pictures"
  [libswresample-dev]="the encoder resamples audio"
  [libavfilter-dev]="FFmpeg's filters (the encoder's bindings)"
  [libavdevice-dev]="FFmpeg's device library (the encoder's bindings)"
  [clang]="bindgen generates the FFmpeg bindings"
  [libclang-dev]="bindgen generates the FFmpeg bindings"
  [nasm]="rav1e's assembly (the AV1 encoder)"
  [cmake]="builds the static Opus library"
  [libssl-dev]="AES in the packager and key service (OpenSSL)"
  [openssl]="the benchmark's cipher limit (openssl speed)"
  [libpocketsphinx3]="speech recognition for indexing (captions, search)"
  [pocketsphinx-en-us]="the US-English speech model"
  [espeak-ng]="speaks the sample's and the tests' speech"
  [chromium]="hls.js, dash.js and shaka-player play the streams headless in the tests"
  [wrk]="the packager benchmark's HTTP load generator"
)
pkgs=(ffmpeg pkg-config curl python3-venv util-linux make libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
  libswresample-dev libavfilter-dev libavdevice-dev clang libclang-dev nasm cmake libssl-dev openssl
  libpocketsphinx3 pocketsphinx-en-us espeak-ng)
[ "$mode" = test ] && pkgs+=(chromium)
[ -n "${bench:-}" ] && pkgs+=(wrk)
if ! command -v node >/dev/null; then pkgs+=(nodejs); why[nodejs]="builds the player page from npm packages"; fi
if ! command -v npm >/dev/null; then pkgs+=(npm); why[npm]="installs the players (hls.js, dash.js, shaka-player)"; fi
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "== setup: installing Debian packages:"
  for p in "${missing[@]}"; do echo "   $p — ${why[$p]:-}"; done
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup: not root and no sudo; install the packages above first" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust from https://rustup.rs first" >&2; exit 1; }
if [ "$mode" = test ] && ! command -v cargo-nextest >/dev/null; then
  echo "== setup: installing cargo-nextest (the test runner) with cargo install"
  (unset CARGO_BUILD_TARGET; cargo install --locked cargo-nextest)
fi

# The AWS emulator's venv (moto, pinned); moto.sh installs it when missing or stale.
infra/moto.sh install

# The tests' Python tools: cfn-lint (template lint), cargo-lambda and aws-sam-cli (the real function binary under
# cargo lambda's Runtime API emulator, and `sam build`).
if [ "$mode" = test ]; then
  tools="$root/.build/tools-venv"
  if ! [ -x "$tools/bin/cargo-lambda" ] || ! cmp -s infra/requirements-tools.txt "$tools/.requirements"; then
    echo "== setup: installing $(tr '\n' ' ' < infra/requirements-tools.txt)into $tools (lint, Lambda packaging)"
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check -r infra/requirements-tools.txt
    cp infra/requirements-tools.txt "$tools/.requirements"
  fi
fi

# The player page (hls.js, dash.js, shaka-player from npm; the tests drive it in Chromium).
if ! [ -f infra/player/dist/index.html ] || ! cmp -s infra/player/package-lock.json infra/player/node_modules/.lock-stamp; then
  echo "== setup: installing the player page's npm packages (hls.js, dash.js, shaka-player) and building it"
  (cd infra/player && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.lock-stamp)
fi
(cd infra/player && npm run --silent build)
echo "== setup: ready ($mode)"
