#!/usr/bin/env bash
# The README's test command: sets this machine up (infra/setup.sh test), then runs every check and test
# (infra/test.sh) and proves that the functions package for Lambda. `.ci/run` is this command.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
infra/setup.sh test
exec infra/test.sh "$@"
