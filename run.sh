#!/usr/bin/env bash
# The README's run command: sets this machine up (infra/setup.sh run: Debian packages, the emulator's venv, the
# player page), then runs the platform locally with a sample: `vodctl dev --sample` (arguments are passed on).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
infra/setup.sh run
echo "== building the workspace's binaries (the first build compiles FFmpeg bindings, rav1e and the AWS SDK: several minutes)"
# The whole workspace, as the tests build it: one feature set for the shared dependencies, so that this build and
# the test suite's reuse each other's compiled crates.
cargo build --workspace --bins
bin="${CARGO_TARGET_DIR:-target}"
if [ -n "${CARGO_BUILD_TARGET:-}" ]; then bin="$bin/$CARGO_BUILD_TARGET"; fi
exec "$bin/debug/vodctl" dev --sample "$@"
