#!/usr/bin/env bash
# Installs (once, into a venv under .build/) and starts or stops the AWS emulator: moto in server mode on 127.0.0.1.
# usage: infra/moto.sh install|start|stop|status|restart   (port: MOTO_PORT, default 4566)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port="${MOTO_PORT:-4566}"
build="$root/.build"
venv="$build/moto-venv"
req="$root/infra/requirements-moto.txt"
pidfile="$build/moto-$port.pid"
logfile="$build/moto-$port.log"
mkdir -p "$build"

alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
# The dashboard answers cheaply; data.json dumps all state and grows (and can fail) as tests run.
answers() { curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; }

install() {
  local stamp="$venv/.requirements"
  if [ -x "$venv/bin/moto_server" ] && cmp -s "$req" "$stamp"; then patch_moto; return; fi
  echo "moto: installing $(grep -v '^#' "$req" | tr '\n' ' ')into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  patch_moto
  cp "$req" "$stamp"
}

# moto 5.2.5 names the root element of the S3 results it serializes `<Operation>Response`; AWS names ListParts'
# `ListPartsResult` (the S3 model's XML name), which the Rust SDK checks, so ListParts fails against moto. The
# patch gives ListParts its real name; idempotent.
patch_moto() {
  "$venv/bin/python3" - <<'PY'
import pathlib, moto.core.serialize as m
p = pathlib.Path(m.__file__)
s = p.read_text()
old = '        else:\n            result_key = f"{self.operation_model.name}Response"\n        if shape is not None:'
new = ('        else:\n            result_key = {"ListParts": "ListPartsResult"}.get(\n'
       '                self.operation_model.name, f"{self.operation_model.name}Response")\n'
       '        if shape is not None:')
if old in s:
    p.write_text(s.replace(old, new, 1))
PY
}

start() {
  # Serialise concurrent starts (parallel test processes).
  exec 9>"$build/moto-$port.lock"
  flock -w 120 9 || { echo "moto: another start holds $build/moto-$port.lock" >&2; exit 1; }
  if alive && answers; then echo "moto: already running on 127.0.0.1:$port (pid $(cat "$pidfile"))" >&2; return; fi
  if answers; then echo "moto: port $port is taken by another emulator; using it" >&2; return; fi
  install
  # The server must not inherit the lock's descriptor (it would hold the lock for its whole life).
  nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$logfile" 2>&1 9>&- &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    if answers; then echo "moto: running on 127.0.0.1:$port (pid $(cat "$pidfile"))" >&2; return; fi
    alive || { echo "moto: failed to start, see $logfile" >&2; tail -20 "$logfile" >&2; exit 1; }
    sleep 0.2
  done
  echo "moto: did not answer on port $port within 20 s" >&2; exit 1
}

stop() {
  if alive; then
    pid="$(cat "$pidfile")"; kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "moto: stopped (pid $pid)" >&2
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if alive && answers; then echo "running (pid $(cat "$pidfile"), port $port)"; else echo "stopped"; exit 3; fi ;;
  *) echo "usage: $0 install|start|stop|status|restart" >&2; exit 2 ;;
esac
