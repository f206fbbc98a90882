#!/usr/bin/env bash
# The README's run command: sets this machine up (infra/setup.sh run: Debian packages, the emulator's venv, the
# player page), then runs the platform locally with a sample: `vodctl dev --sample` (arguments are passed on).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
infra/setup.sh run
echo "== building vodctl (the first build compiles FFmpeg bindings, rav1e and the AWS SDK: several minutes)"
cargo build -p vodctl
exec cargo run -q -p vodctl -- dev --sample "$@"
