#!/usr/bin/env bash
# Proves, after `sam build`, that the encoder and ingest as packaged run on their layers alone: the layers are merged under /opt
# as Lambda does (in a private mount namespace, so the machine's /opt is untouched), with an LD_LIBRARY_PATH that puts
# the OS's own library directories first (as Lambda's does), and then
#  1. every object the encoder's and ingest's bootstraps load, their loader included, comes from /opt/lib;
#  2. every library PocketSphinx (opened at run time) needs comes from /opt/lib too;
#  3. each bootstrap starts and reaches its own code (it stops at its configuration, which this check does not give);
#  4. each function (stripped, as release builds are) and its layers fit Lambda's 250 MiB unzipped limit.
# Usage: infra/layers/check.sh [BUILD_DIR]   (default .build/sam; needs root for the mount namespace)
set -euo pipefail
build="$(cd "${1:-.build/sam}" && pwd)"
if [ "${VOD_LAYER_CHECK_INNER:-}" != 1 ]; then
  opt="$(mktemp -d)"
  trap 'rm -rf "$opt"' EXIT
  cp -a "$build/MediaLibrariesLayer/." "$opt/"
  cp -a "$build/SpeechLayer/." "$opt/"
  VOD_LAYER_CHECK_INNER=1 unshare --mount --propagation private \
    sh -c 'mount --bind "$1" /opt && exec "$2" "$3"' sh "$opt" "$(readlink -f "$0")" "$build" || exit

  echo "== size against Lambda's limit (function + layers, unzipped)"
  # fits NAME FUNCTION LAYER_DIR...: the stripped bootstrap of FUNCTION and the files of its layers, against 250 MiB.
  fits() {
    local name="$1" function="$2"; shift 2
    strip -o "$opt/.bootstrap" "$build/$function/bootstrap"
    local binary layers total limit=$((250 * 1024 * 1024))
    binary=$(stat -c %s "$opt/.bootstrap")
    rm -f "$opt/.bootstrap"
    layers=$(find "$@" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    total=$((binary + layers))
    echo "   $name $((binary / 1048576)) MiB + layers $((layers / 1048576)) MiB = $((total / 1048576)) MiB of $((limit / 1048576)) MiB"
    if [ "$total" -gt "$limit" ]; then echo "FAIL: over Lambda's unzipped size limit"; exit 1; fi
  }
  fits encoder EncodeFunction "$opt"
  fits ingest IngestFunction "$build/MediaLibrariesLayer"
  exit 0
fi

arch="$(uname -m)"
os_libs="/lib/$arch-linux-gnu:/usr/lib/$arch-linux-gnu:/lib64:/usr/lib64"
fail=0

for function in EncodeFunction IngestFunction; do
  bootstrap="$build/$function/bootstrap"
  echo "== objects $function loads"
  trace="$(env -i LD_LIBRARY_PATH="$os_libs:/opt/lib" LD_TRACE_LOADED_OBJECTS=1 "$bootstrap")"
  # awk prints the first lines itself: `| head` would close the pipe early, and under pipefail the writer's SIGPIPE
  # fails the script (seen once in a full run).
  echo "$trace" | awk 'NR <= 5 {print "   " $0}'
  echo "   ... $(echo "$trace" | wc -l) objects"
  outside="$(echo "$trace" | awk '$2 == "=>" && $3 !~ /^\/opt\/lib\// {print} $1 ~ /^\// && $1 !~ /^\/opt\/lib\// {print}')"
  if [ -n "$outside" ]; then echo "FAIL: loaded from outside the layers:"; echo "$outside"; fail=1; fi
  if echo "$trace" | grep -q "not found"; then echo "FAIL: missing:"; echo "$trace" | grep "not found"; fail=1; fi
done

echo "== libraries PocketSphinx needs"
loader="$(ls /opt/lib/ld-linux-* | sed -n 1p)"
speech="$(env -i "$loader" --library-path /opt/lib --list /opt/lib/libpocketsphinx.so.3)"
outside="$(echo "$speech" | awk '$2 == "=>" && $3 !~ /^\/opt\/lib\// {print}')"
if [ -n "$outside" ] || echo "$speech" | grep -q "not found"; then echo "FAIL:"; echo "$speech"; fail=1; fi
echo "   $(echo "$speech" | wc -l) objects, all under /opt/lib"

for function in EncodeFunction IngestFunction; do
  echo "== $function starts"
  out="$(env -i LD_LIBRARY_PATH="$os_libs:/opt/lib" AWS_LAMBDA_RUNTIME_API=127.0.0.1:9 "$build/$function/bootstrap" 2>&1 || true)"
  echo "   $out" | sed -n '1,3p'
  if ! echo "$out" | grep -q "Missing(\"TABLE_NAME\")"; then echo "FAIL: $function did not reach its own code"; fail=1; fi
done

exit "$fail"
