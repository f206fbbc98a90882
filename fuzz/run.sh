#!/usr/bin/env bash
# Bounded fuzzing of every cargo-fuzz target (issue 15 item 10): builds them, runs each for SECONDS (default 60)
# with memory and time limits, prints per target the runs executed, coverage (cov) and features (ft), the corpus
# size and whether it found a crash/timeout/OOM, and exits non-zero on any finding (artifacts in fuzz/artifacts/).
#
#   fuzz/run.sh [seconds-per-target] [target...]      (needs `cargo install cargo-fuzz --locked`)
#
# Toolchain: stable Rust (no nightly here). `cargo fuzz build --sanitizer none` instruments with SanitizerCoverage
# through stable codegen flags (-Cpasses=sancov-module, -Cllvm-args), so it needs no nightly flag; AddressSanitizer
# (`-Zsanitizer`) would, so the build is `--sanitizer none` (Rust code is memory-safe; the unsafe C of OpenSSL is
# not instrumented either way). Without a sanitizer libFuzzer's -malloc_limit_mb has no malloc hooks to act through,
# so the probe target enforces the same single-allocation limit with its own global allocator
# (fuzz_targets/probe.rs); -rss_limit_mb and -timeout work as usual. Debug assertions and overflow checks are on.
#
# Each run starts from the kept seed corpus fuzz/corpus/<target>/ (read only) and writes what it finds to
# fuzz/target/corpus/<target>/ (not kept), so the committed corpus stays small. Be nice to a shared machine:
# everything runs under `nice -n 19` with CARGO_BUILD_JOBS=1 unless the caller sets it.
set -uo pipefail

SECONDS_PER_TARGET=${1:-60}
shift || true
ALL_TARGETS=(probe ranges url encrypt av1_avc)
TARGETS=("${@:-${ALL_TARGETS[@]}}")

FUZZ_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$FUZZ_DIR")
cd "$ROOT" || exit 2
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}

# Limits per target: memory (RSS of the whole process; largest single allocation), time per input, input size.
limits() {
    case "$1" in
        # The probe: a hostile upload must be refused in bounded memory and time (the probe's own wall-clock budget
        # is 3 s here, fuzz/harness/probe.rs; the timeout is above it).
        probe) echo "-rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=10 -max_len=16384" ;;
        *) echo "-rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=10 -max_len=8192" ;;
    esac
}

echo "== build (cargo fuzz build --sanitizer none -O --debug-assertions)"
mkdir -p "$FUZZ_DIR/target"
if ! nice -n 19 cargo fuzz build --fuzz-dir "$FUZZ_DIR" --sanitizer none -O --debug-assertions >"$FUZZ_DIR/target/build.log" 2>&1; then
    tail -40 "$FUZZ_DIR/target/build.log"
    echo "build failed"
    exit 2
fi
BIN_DIR="$FUZZ_DIR/target/x86_64-unknown-linux-gnu/release"

findings=0
summary=()
for t in "${TARGETS[@]}"; do
    work="$FUZZ_DIR/target/corpus/$t"
    artifacts="$FUZZ_DIR/artifacts/$t"
    log="$FUZZ_DIR/target/logs/$t.log"
    mkdir -p "$work" "$artifacts" "$(dirname "$log")"
    before=$(find "$artifacts" -type f | sort)
    # shellcheck disable=SC2046
    nice -n 19 "$BIN_DIR/$t" "$work" "$FUZZ_DIR/corpus/$t" $(limits "$t") \
        -max_total_time="$SECONDS_PER_TARGET" -artifact_prefix="$artifacts/" -print_final_stats=1 \
        -close_fd_mask=1 >"$log" 2>&1
    rc=$?
    new=$(comm -13 <(echo "$before") <(find "$artifacts" -type f | sort) | tr '\n' ' ')
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    # Final stats when the run ended normally; the last status line when it stopped on a finding.
    runs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log" | tail -1)
    [ -z "$runs" ] && runs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
    slowest=$(awk '/^stat::slowest_unit_time_sec:/ {print $2}' "$log" | tail -1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$last")
    execs=$(awk '/^stat::average_exec_per_sec:/ {print $2}' "$log" | tail -1)
    rss=$(awk '/^stat::peak_rss_mb:/ {print $2}' "$log" | tail -1)
    [ -z "$rss" ] && rss=$(sed -nE 's/.* rss: ([0-9]+)Mb.*/\1/p' <<<"$last")
    kind=$(grep -oE 'ERROR: libFuzzer: [a-z-]+|==probe== out-of-memory' "$log" | head -1)
    guarded=$(grep -c '==probe== third-party demuxer panic caught' "$log")
    if [ "$rc" -ne 0 ] || [ -n "${new// /}" ]; then
        findings=$((findings + 1))
        verdict="FINDING (${kind:-exit $rc}): ${new:-no artifact}"
    else
        verdict="no crash"
    fi
    line=$(printf '%-8s %4ss  runs=%-9s exec/s=%-6s cov=%-5s ft=%-6s corpus=%-12s peak_rss=%sMB slowest=%ss  %s' \
        "$t" "$SECONDS_PER_TARGET" "${runs:-?}" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" \
        "${slowest:-?}" "$verdict")
    [ "$t" = probe ] && line="$line  (third-party demuxer panics caught by the probe's guard: $guarded)"
    echo "$line"
    summary+=("$line")
    if [ "$rc" -ne 0 ]; then
        grep -E 'ERROR|panicked|==probe==|Test unit written|SUMMARY' "$log" | head -8 | sed 's/^/    /'
    fi
done

echo "== summary ($SECONDS_PER_TARGET s per target; limits: probe $(limits probe); others $(limits other))"
printf '%s\n' "${summary[@]}"
if [ "$findings" -gt 0 ]; then
    echo "$findings target(s) with findings"
    exit 1
fi
echo "no findings"
