#!/usr/bin/env bash
# v2h on a charger's aarch64 Debian, under emulation: install, tests, codec speed and a loopback
# session in a Debian bookworm arm64 root (debootstrap + qemu-user-static), next to the same run
# on this host. Not part of CI (tens of minutes under emulation). docs/aarch64.md explains it.
#
#   sudo tools/aarch64_check.sh                 # the work tree as it is (tracked + untracked files)
#   sudo tools/aarch64_check.sh --ref HEAD      # a commit instead
#   options: --dir DIR (default /var/tmp/v2h-aarch64; never inside the repository), --fresh (a new
#   root), --skip-host, --number N (codec calls per timing, default 300), --loops N (default 20)
#
# Root, a non-aarch64 Linux host with Debian's archive and PyPI in reach. Packages come from the
# Debian archive (qemu-user-static, debootstrap, binfmt-support; the root's python3, gcc) and PyPI
# (pip, inside a venv). Writes DIR/report.md and prints it; exits 1 if any step failed.
set -euo pipefail

SELF=$(readlink -f "$0")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
EXTRAS="test,hems,capture,dev"   # every extra: each must install on aarch64

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- one run: inside the arm64 root or on the host ---------------------------------------------
# stage DIR PYTHON NUMBER LOOPS: DIR/src holds the project; writes DIR/results.env, DIR/bench.json
# and DIR/*.log. Every step runs even when an earlier one failed; failures are counted.
stage() {
  local dir=$1 py=$2 number=$3 loops=$4 fails=0 t rc
  cd "$dir"
  rm -rf venv results.env ./*.log bench.json pki
  res() { echo "$1=$2" >> "$dir/results.env"; }
  res machine "$(uname -m)"
  res python "$("$py" -c 'import sys; print(sys.version.split()[0])')"

  t=$(now)
  "$py" -m venv venv
  rc=0; venv/bin/pip install --no-cache-dir -e "src[$EXTRAS]" > install.log 2>&1 || rc=$?
  res install_s "$(since "$t")"
  res install_rc "$rc"
  [ "$rc" = 0 ] || { fails=$((fails + 1)); tail -20 install.log >&2; }
  # what pip had to build from source (no wheel for this platform); v2h itself always builds
  res built_from_source "$(grep -o 'Building \(editable \)\?\(wheel\)\? \?for [^ ]*' install.log \
                           | awk '{print $NF}' | sort -u | grep -vx v2h | paste -sd, - || true)"
  res atheris "$(venv/bin/python -c 'import importlib.util as u; print("installed" if u.find_spec("atheris") else "absent")')"
  res implementation "$(venv/bin/python -c 'from iso15118 import exi; print(exi.IMPLEMENTATION)')"
  cd src

  # pytest GROUP ENV... -- ARGS: one group of tests, its summary line and time
  group() {
    local name=$1; shift
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    local t0; t0=$(now)
    local code=0
    env "${envs[@]}" ../venv/bin/python -m pytest -q -rs -p no:cacheprovider "$@" > "../pytest-$name.log" 2>&1 || code=$?
    res "pytest_${name}_s" "$(since "$t0")"
    res "pytest_${name}" "$(grep -E '(passed|failed|error|skipped)' "../pytest-$name.log" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')"
    grep -E '^SKIPPED' "../pytest-$name.log" | sed 's/^/skipped: /' > "../skips-$name.log" || true
    [ "$code" = 0 ] || { fails=$((fails + 1)); tail -30 "../pytest-$name.log" >&2; }
  }
  # the codec vectors on both backends (tests/exi/conftest.py runs each test once per backend), the
  # C extension required; then in a process that never loads it
  group codec V2H_REQUIRE_CEXT=1 -- tests/exi/test_vectors.py \
    tests/exi/test_backends.py::test_the_extension_is_built_where_required \
    tests/exi/test_backends.py::test_the_extension_is_built_from_the_current_source \
    tests/exi/test_backends.py::test_fast_path_on_the_vectors
  group codec_pure V2H_PURE_PYTHON=1 -- tests/exi/test_vectors.py
  # V2GTP, SDP, the in-memory sessions (both backends: tests/session/conftest.py) and sessions
  # over TLS on loopback
  group sessions V2H_REQUIRE_CEXT=1 -- tests/test_v2gtp.py tests/test_sdp.py tests/session/test_pair.py \
    tests/aio/test_session.py
  # the install itself: atheris only where it has wheels, and the no-compiler fallback
  group install V2H_REQUIRE_CEXT=1 -- tests/test_fuzz_smoke.py tests/test_install_without_compiler.py

  t=$(now)
  ../venv/bin/python benchmarks/bench_exi.py --json --number "$number" --repeat 5 > ../bench.json 2> ../bench.log \
    || { fails=$((fails + 1)); cat ../bench.log >&2; }
  res bench_s "$(since "$t")"
  cd ..

  # a v2h secc + v2h evcc loopback session: DC_BPT, Plug & Charge, TLS 1.3
  t=$(now)
  venv/bin/v2h pki init ./pki > pki.log 2>&1 || fails=$((fails + 1))
  res pki_init_s "$(since "$t")"
  t=$(now)
  venv/bin/v2h secc --pki ./pki --host 127.0.0.1 --setpoint -7000 --once --quiet > secc.log 2>&1 &
  local secc=$! port=""
  for _ in $(seq 1200); do
    port=$(grep -o 'listening on port [0-9]*' secc.log | awk '{print $4}' || true)
    [ -n "$port" ] && break
    kill -0 "$secc" 2> /dev/null || break
    sleep 0.1
  done
  res secc_startup_s "$(since "$t")"
  if [ -n "$port" ]; then
    t=$(now)
    rc=0
    venv/bin/v2h evcc --secc "127.0.0.1:$port" --pki ./pki --service DC_BPT --control-mode dynamic --auth pnc \
      --soc 80 --loops "$loops" --loop-period 0.1 --quiet > evcc.log 2>&1 || rc=$?
    res session_s "$(since "$t")"
    res session_summary "$(tail -1 evcc.log)"
    wait "$secc" || rc=$?
    res session_rc "$rc"
    [ "$rc" = 0 ] || { fails=$((fails + 1)); cat evcc.log secc.log >&2; }
  else
    kill "$secc" 2> /dev/null || true
    res session_rc "no listening line"
    fails=$((fails + 1)); cat secc.log >&2
  fi
  res loops "$loops"
  res fails "$fails"
  [ "$fails" = 0 ]
}

if [ "${1:-}" = "--stage" ]; then
  shift
  stage "$@"
  exit $?
fi

# --- the host side ---------------------------------------------------------------------------------
WORK=/var/tmp/v2h-aarch64 REF="" FRESH=0 SKIP_HOST=0 NUMBER=300 LOOPS=20
MIRROR=${V2H_DEBIAN_MIRROR:-http://deb.debian.org/debian}
while [ $# -gt 0 ]; do
  case $1 in
    --dir) WORK=$2; shift 2 ;;
    --ref) REF=$2; shift 2 ;;
    --fresh) FRESH=1; shift ;;
    --skip-host) SKIP_HOST=1; shift ;;
    --number) NUMBER=$2; shift 2 ;;
    --loops) LOOPS=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$SELF"; exit 0 ;;
    *) echo "aarch64_check: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "aarch64_check: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
[ "$(uname -m)" != aarch64 ] || { echo "aarch64_check: this host is aarch64: run the tests natively" >&2; exit 2; }
WORK=$(readlink -m "$WORK")
case "$WORK/" in "$REPO"/*) echo "aarch64_check: --dir must be outside the repository" >&2; exit 2 ;; esac
ROOT=$WORK/root
mkdir -p "$WORK"
LOG=$WORK/check.log
: > "$LOG"
say() { echo "aarch64_check: $*" | tee -a "$LOG" >&2; }

need=()
command -v debootstrap > /dev/null || need+=(debootstrap)
command -v qemu-aarch64-static > /dev/null || need+=(qemu-user-static)
command -v update-binfmts > /dev/null || need+=(binfmt-support)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} from the Debian archive"
  apt-get update -qq >> "$LOG" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >> "$LOG" 2>&1
fi
# the kernel runs arm64 binaries through qemu (binfmt_misc; the F flag lets it work in the chroot)
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >> "$LOG" 2>&1 || true
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { say "qemu-aarch64 is not registered with binfmt_misc"; exit 1; }

ROOT_S=reused
if [ "$FRESH" = 1 ] || [ ! -e "$ROOT/.v2h-root-ready" ]; then
  umount -R "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" 2> /dev/null || true
  if grep -q " $ROOT/" /proc/mounts; then  # never delete through a bind mount of the host's /dev
    say "still mounted under $ROOT: $(grep " $ROOT/" /proc/mounts | awk '{print $2}' | paste -sd' ' -)"
    exit 1
  fi
  rm -rf --one-file-system "$ROOT"
  say "debootstrap: Debian bookworm arm64 into $ROOT"
  t=$(now)
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,python3-dev,gcc,libc6-dev,ca-certificates \
    bookworm "$ROOT" "$MIRROR" >> "$LOG" 2>&1
  ROOT_S=$(since "$t")
  touch "$ROOT/.v2h-root-ready"
fi

copy_sources() {  # the project into $1/src: the work tree's files, or REF
  rm -rf "$1/src"
  mkdir -p "$1/src"
  if [ -n "$REF" ]; then
    git -C "$REPO" archive "$REF" | tar -x -C "$1/src"
  else
    git -C "$REPO" ls-files -z --cached --others --exclude-standard \
      | (cd "$REPO" && tar --null -T - --ignore-failed-read -cf - 2> /dev/null) | tar -x -C "$1/src"
  fi
}

RUN=$ROOT/opt/v2h
mkdir -p "$RUN"
copy_sources "$RUN"
cp "$SELF" "$RUN/aarch64_check.sh"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# pip inside trusts what pip trusts here (a TLS-inspecting proxy's CA among them)
cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$ROOT/etc/ssl/certs/v2h-host-ca.pem"
cleanup() { umount -R "$ROOT/dev" "$ROOT/sys" "$ROOT/proc" 2> /dev/null || true; }
trap cleanup EXIT
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
mount --rbind /dev "$ROOT/dev"
mount --make-rslave "$ROOT/dev"

CLEAN_ENV=(HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
           PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PIP_CONFIG_FILE=/dev/null)
status=0
say "arm64 run (emulated): install, tests, codec timing, loopback session; the log is $RUN/*.log"
t=$(now)
chroot "$ROOT" /usr/bin/env -i "${CLEAN_ENV[@]}" PIP_CERT=/etc/ssl/certs/v2h-host-ca.pem \
  bash /opt/v2h/aarch64_check.sh --stage /opt/v2h /usr/bin/python3 "$NUMBER" "$LOOPS" >> "$LOG" 2>&1 || status=1
ARM_S=$(since "$t")
cleanup

HOST=$WORK/host
if [ "$SKIP_HOST" = 0 ]; then
  say "host run: the same steps with this machine's python3"
  mkdir -p "$HOST"
  copy_sources "$HOST"
  t=$(now)
  /usr/bin/env -i "${CLEAN_ENV[@]}" PATH="$PATH" ${PIP_CERT:+PIP_CERT=$PIP_CERT} \
    bash "$SELF" --stage "$HOST" "$(python3 -c 'import sys; print(sys.executable)')" "$NUMBER" "$LOOPS" \
    >> "$LOG" 2>&1 || status=1
  HOST_S=$(since "$t")
else
  HOST_S=""
fi

python3 - "$RUN" "$HOST" "$ROOT_S" "$ARM_S" "$HOST_S" "$SKIP_HOST" > "$WORK/report.md" <<'EOF'
"""Write the report: the arm64 run next to the host's."""
import json
import sys
from pathlib import Path

arm_dir, host_dir, root_s, arm_s, host_s, skip_host = sys.argv[1:]


def load(d: str) -> tuple[dict, list]:
    p = Path(d)
    env = {}
    if (p / "results.env").exists():
        for line in (p / "results.env").read_text().splitlines():
            k, _, v = line.partition("=")
            env[k] = v
    try:
        rows = json.loads((p / "bench.json").read_text())["rows"]
    except (OSError, ValueError, KeyError):
        rows = []
    return env, rows


arm, arm_rows = load(arm_dir)
host, host_rows = load(host_dir) if skip_host == "0" else ({}, [])
get = lambda d, k: d.get(k, "—")  # noqa: E731


def ratio(a: str, b: str) -> str:
    try:
        return f"{float(a) / float(b):.1f}×"
    except (ValueError, ZeroDivisionError):
        return "—"


print(f"# aarch64 check\n\nDebian bookworm arm64 root: {'reused' if root_s == 'reused' else root_s + ' s to debootstrap'}; "
      f"arm64 run {arm_s} s, host run {host_s or '—'} s. Emulated (qemu-user) figures are ratios to the host, "
      "not a SoC's speed.\n")
print(f"| | arm64 (qemu) | host | arm64 / host |\n| --- | --- | --- | ---: |")
for key, what in (("machine", "machine"), ("python", "Python"), ("implementation", "EXI backend installed"),
                  ("atheris", "atheris"), ("built_from_source", "built from source besides v2h")):
    print(f"| {what} | {get(arm, key) or 'none'} | {get(host, key) or 'none'} | |")
for key, what in (("install_s", f"pip install -e '.[test,hems,capture,dev]' (s)"),
                  ("pki_init_s", "v2h pki init (s)"), ("secc_startup_s", "v2h secc start to listening (s)"),
                  ("session_s", f"v2h evcc session, DC_BPT PnC, {get(arm, 'loops')} loops of 0.1 s (s)"),
                  ("pytest_codec_s", "codec tests (s)"), ("pytest_sessions_s", "V2GTP/SDP/session tests (s)")):
    print(f"| {what} | {get(arm, key)} | {get(host, key)} | {ratio(get(arm, key), get(host, key))} |")
print()
for key in ("install_rc", "session_rc", "fails"):
    print(f"- {key}: arm64 {get(arm, key)}, host {get(host, key)}")
for g in ("codec", "codec_pure", "sessions", "install"):
    print(f"- pytest {g}: arm64 `{get(arm, 'pytest_' + g)}`; host `{get(host, 'pytest_' + g)}`")
print(f"- session: arm64 `{get(arm, 'session_summary')}`")
skips = Path(arm_dir) / "skips-install.log"
if skips.exists() and skips.read_text().strip():
    print("- arm64 skips (install group): " + "; ".join(sorted(set(
        line.split(": ", 2)[-1] for line in skips.read_text().splitlines()))))
print("\nCodec, µs per message (median of 5 runs; C extension and pure Python; encode / decode):\n")
print("| message | arm64 C | host C | ratio | arm64 Python | host Python | ratio |")
print("| --- | --- | --- | ---: | --- | --- | ---: |")
by_host = {r["message"]: r for r in host_rows}
for r in arm_rows:
    h = by_host.get(r["message"], {})
    cells = [r["message"]]
    for b in ("cython", "python"):
        a = (r.get(f"{b}_encode_us"), r.get(f"{b}_decode_us"))
        hh = (h.get(f"{b}_encode_us"), h.get(f"{b}_decode_us"))
        cells.append(f"{a[0]} / {a[1]}")
        cells.append(f"{hh[0]} / {hh[1]}" if h else "—")
        cells.append(ratio(sum(x or 0 for x in a), sum(x or 0 for x in hh)) if h else "—")
    print("| " + " | ".join(str(c) for c in cells) + " |")
EOF
cat "$WORK/report.md"
[ "$status" = 0 ] || say "a step failed: see $LOG and the logs in $RUN and $HOST"
exit "$status"
