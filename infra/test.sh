#!/usr/bin/env bash
# Runs every check and test of the project: template lint, format, clippy, the whole test suite (unit tests,
# end-to-end tests on the local AWS emulator, the real function binary under cargo lambda's Runtime API emulator),
# then proves that the functions package for Lambda (`sam build`, x86_64) and that the encoder runs on its layers.
# Needs what `infra/setup.sh test` installs; the README's test command (./test.sh) runs both.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=never CARGO_PROFILE_DEV_DEBUG=0 SAM_CLI_TELEMETRY=0
# One compilation serves the tests and the Lambda package: cargo lambda always names the target and sets rustflags
# (which RUSTFLAGS overrides), so the tests are built the same way, and `sam build` below runs in SAM's debug mode
# (the dev profile: dependencies at opt-level 2), reusing every compiled dependency instead of a second,
# release build. A deploy build (`sam build` without SAM_BUILD_MODE) uses the release profile.
export CARGO_BUILD_TARGET=x86_64-unknown-linux-gnu RUSTFLAGS=""
export PATH="$root/.build/tools-venv/bin:$PATH"
(cd infra/player && npm run --silent build)

started_moto=0
infra/moto.sh status >/dev/null 2>&1 || started_moto=1
cleanup() { if [ "$started_moto" = 1 ]; then infra/moto.sh stop || true; fi; }
trap cleanup EXIT

echo "== cfn-lint template.yaml"
cfn-lint template.yaml
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (at ${SECONDS} s; the first build compiles every dependency)"
cargo clippy --workspace --all-targets -- -D warnings
echo "== AWS emulator"
infra/moto.sh start
echo "== tests (at ${SECONDS} s)"
cargo nextest run --workspace --no-fail-fast --failure-output final

echo "== sam build (x86_64) at ${SECONDS} s"
# Every function and both layers package, and the encoder runs on its layers alone.
SAM_BUILD_MODE=debug sam build --template-file template.yaml --build-dir .build/sam --parameter-overrides Architecture=x86_64
ls -l .build/sam/ApiFunction/bootstrap .build/sam/IngestFunction/bootstrap .build/sam/EncodeFunction/bootstrap \
  .build/sam/PackagerFunction/bootstrap .build/sam/KeysFunction/bootstrap .build/sam/SweeperFunction/bootstrap
du -sh .build/sam/MediaLibrariesLayer .build/sam/SpeechLayer .build/sam/EncodeFunction
echo "== the encoder runs on its layers alone"
infra/layers/check.sh .build/sam
echo "== all checks and tests passed in ${SECONDS} s"
