#!/usr/bin/env bash
# Runs every check and test of the project: template lint, format, clippy, and the whole test suite (unit tests,
# end-to-end tests on the local AWS emulator, the real function binary under cargo lambda's Runtime API emulator).
# Needs: ffmpeg, python3 (venvs are created under .build/), cargo-nextest, Node.js + npm and Chromium (the player
# page and the browser tests). `.ci/run` installs all of it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools="$root/.build/tools-venv"
if ! [ -x "$tools/bin/cargo-lambda" ] || ! cmp -s infra/requirements-tools.txt "$tools/.requirements"; then
  echo "== installing tools ($(tr '\n' ' ' < infra/requirements-tools.txt)) into $tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check -r infra/requirements-tools.txt
  cp infra/requirements-tools.txt "$tools/.requirements"
fi
export PATH="$tools/bin:$PATH"

if ! [ -f infra/player/dist/index.html ] || ! cmp -s infra/player/package-lock.json infra/player/node_modules/.lock-stamp; then
  echo "== player page (npm ci, build)"
  (cd infra/player && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.lock-stamp)
fi
(cd infra/player && npm run --silent build)

echo "== cfn-lint template.yaml"
cfn-lint template.yaml
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (at ${SECONDS} s)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== AWS emulator"
infra/moto.sh start
echo "== tests (at ${SECONDS} s)"
cargo nextest run --workspace --no-fail-fast --failure-output final
echo "== all checks and tests passed in ${SECONDS} s"
