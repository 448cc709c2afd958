#!/usr/bin/env bash
# v2h on a charger's aarch64 Debian, under emulation: install, tests, codec speed and a loopback
# session in a Debian bookworm arm64 root (debootstrap + qemu-user-static), next to the same run
# on this host; then sessions across the emulation boundary: the arm64 charger with this host's
# x86_64 car, and the reverse. Not part of CI (tens of minutes under emulation). docs/aarch64.md
# explains it.
#
#   sudo tools/aarch64_check.sh                 # the work tree as it is (tracked + untracked files)
#   sudo tools/aarch64_check.sh --ref HEAD      # a commit instead
#   sudo tools/aarch64_check.sh --only cross    # the cross sessions alone, on an existing DIR
#   options: --dir DIR (default /var/tmp/v2h-aarch64; never inside the repository), --fresh (a new
#   root), --skip-host (and so no cross sessions), --number N (codec calls per timing, default
#   300), --loops N (default 20), --only cross (no debootstrap, install, tests or timing: the
#   sources of DIR's two installs are replaced by the work tree's or --ref's, the built extension
#   kept, and pip runs again only if setup.py, pyproject.toml or ext/_cexi.pyx changed; a few
#   minutes; writes DIR/cross/, and report.md with the last full run's figures)
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
WORK=/var/tmp/v2h-aarch64 REF="" FRESH=0 SKIP_HOST=0 NUMBER=300 LOOPS=20 ONLY=""
MIRROR=${V2H_DEBIAN_MIRROR:-http://deb.debian.org/debian}
while [ $# -gt 0 ]; do
  case $1 in
    --dir) WORK=$2; shift 2 ;;
    --ref) REF=$2; shift 2 ;;
    --fresh) FRESH=1; shift ;;
    --skip-host) SKIP_HOST=1; shift ;;
    --number) NUMBER=$2; shift 2 ;;
    --loops) LOOPS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2; [ "$ONLY" = cross ] || { echo "aarch64_check: --only takes cross" >&2; exit 2; } ;;
    -h|--help) sed -n '2,22p' "$SELF"; exit 0 ;;
    *) echo "aarch64_check: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "aarch64_check: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
[ "$(uname -m)" != aarch64 ] || { echo "aarch64_check: this host is aarch64: run the tests natively" >&2; exit 2; }
WORK=$(readlink -m "$WORK")
case "$WORK/" in "$REPO"/*) echo "aarch64_check: --dir must be outside the repository" >&2; exit 2 ;; esac
ROOT=$WORK/root RUN=$WORK/root/opt/v2h HOST=$WORK/host CROSS=$WORK/cross
if [ "$ONLY" = cross ]; then
  for f in "$ROOT/.v2h-root-ready" "$RUN/venv/bin/v2h" "$HOST/venv/bin/v2h"; do
    [ -e "$f" ] || { echo "aarch64_check: --only cross: no $f (run the check without --only first)" >&2; exit 2; }
  done
  if [ "$FRESH" = 1 ] || [ "$SKIP_HOST" = 1 ]; then
    echo "aarch64_check: --only cross goes with neither --fresh nor --skip-host" >&2; exit 2
  fi
fi
mkdir -p "$WORK"
LOG=$WORK/check.log
[ "$ONLY" = cross ] && LOG=$CROSS/check.log && mkdir -p "$CROSS"  # the full run's log stays
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
if [ -z "$ONLY" ] && { [ "$FRESH" = 1 ] || [ ! -e "$ROOT/.v2h-root-ready" ]; }; then
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

mkdir -p "$RUN"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# pip inside trusts what pip trusts here (a TLS-inspecting proxy's CA among them)
cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$ROOT/etc/ssl/certs/v2h-host-ca.pem"
cleanup() { umount -R "$ROOT/dev" "$ROOT/sys" "$ROOT/proc" 2> /dev/null || true; }
trap cleanup EXIT
mount_root() {
  mount -t proc proc "$ROOT/proc"
  mount -t sysfs sysfs "$ROOT/sys"
  mount --rbind /dev "$ROOT/dev"
  mount --make-rslave "$ROOT/dev"
}

CLEAN_ENV=(HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
           PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PIP_CONFIG_FILE=/dev/null)
# a command inside the arm64 root (under qemu) or on the host, from a clean environment
IN_ROOT=(chroot "$ROOT" /usr/bin/env -i "${CLEAN_ENV[@]}" PIP_CERT=/etc/ssl/certs/v2h-host-ca.pem)
ON_HOST=(/usr/bin/env -i "${CLEAN_ENV[@]}" PATH="$PATH" ${PIP_CERT:+PIP_CERT=$PIP_CERT})
status=0 ARM_S="" HOST_S=""
if [ -z "$ONLY" ]; then
  copy_sources "$RUN"
  cp "$SELF" "$RUN/aarch64_check.sh"
  mount_root
  say "arm64 run (emulated): install, tests, codec timing, loopback session; the log is $RUN/*.log"
  t=$(now)
  "${IN_ROOT[@]}" bash /opt/v2h/aarch64_check.sh --stage /opt/v2h /usr/bin/python3 "$NUMBER" "$LOOPS" >> "$LOG" 2>&1 || status=1
  ARM_S=$(since "$t")
  cleanup

  if [ "$SKIP_HOST" = 0 ]; then
    say "host run: the same steps with this machine's python3"
    mkdir -p "$HOST"
    copy_sources "$HOST"
    t=$(now)
    "${ON_HOST[@]}" bash "$SELF" --stage "$HOST" "$(python3 -c 'import sys; print(sys.executable)')" "$NUMBER" "$LOOPS" \
      >> "$LOG" 2>&1 || status=1
    HOST_S=$(since "$t")
  fi
  printf 'ROOT_S=%s\nARM_S=%s\nHOST_S=%s\n' "$ROOT_S" "$ARM_S" "$HOST_S" > "$WORK/full-run.env"
elif [ -e "$WORK/full-run.env" ]; then  # --only: the last full run's times, for the report
  ROOT_S=$(sed -n 's/^ROOT_S=//p' "$WORK/full-run.env")
  ARM_S=$(sed -n 's/^ARM_S=//p' "$WORK/full-run.env")
  HOST_S=$(sed -n 's/^HOST_S=//p' "$WORK/full-run.env")
fi

# --- across the emulation boundary: one side's v2h secc, the other side's v2h evcc ----------------
# Both venvs exist after the two stages (or from an earlier run, with --only cross). chroot keeps
# the host's network namespace, so 127.0.0.1 is the same loopback inside and out. One PKI, made on
# the host in the root's /opt/v2h/cross-pki, which the host reads as $RUN/cross-pki.
CROSS_STATUS=skipped
refresh_sources() {  # DIR: the project's files anew into DIR/src; the built extension kept
  local d=$1 f changed=0
  rm -rf "$d/src.old"
  mv "$d/src" "$d/src.old"
  copy_sources "$d"
  (cd "$d/src.old" && find iso15118 -name '_cexi*.so') | while read -r f; do cp -p "$d/src.old/$f" "$d/src/$f"; done
  for f in setup.py pyproject.toml ext/_cexi.pyx; do cmp -s "$d/src.old/$f" "$d/src/$f" || changed=1; done
  rm -rf "$d/src.old"
  [ "$changed" = 0 ]
}
side_v2h() {  # root|host: V2H, that side's installed v2h (a command, not a function: $! is its pid)
  if [ "$1" = root ]; then V2H=("${IN_ROOT[@]}" /opt/v2h/venv/bin/v2h); else V2H=("${ON_HOST[@]}" "$HOST/venv/bin/v2h"); fi
}
side_pki() { if [ "$1" = root ]; then echo /opt/v2h/cross-pki; else echo "$RUN/cross-pki"; fi; }
side_name() { if [ "$1" = root ]; then echo "arm64 (qemu, in the root)"; else echo "x86_64 (host)"; fi; }
# cross NAME SECC_SIDE EVCC_SIDE: v2h secc --once on one side, v2h evcc (ISO 15118-20, TLS 1.3,
# DC_BPT, Plug & Charge) on the other, timed; results in $CROSS/results.env, logs in $CROSS
cross() {
  local name=$1 secc_side=$2 evcc_side=$3 t t0 rc=0 wrc=0 port="" secc
  cres() { echo "${name}_$1=$2" >> "$CROSS/results.env"; }
  cres sides "charger $(side_name "$secc_side"), car $(side_name "$evcc_side")"
  t=$(now) t0=$(now)
  side_v2h "$secc_side"
  "${V2H[@]}" secc --pki "$(side_pki "$secc_side")" --host 127.0.0.1 --setpoint -7000 --once --quiet \
    > "$CROSS/$name-secc.log" 2>&1 &
  secc=$!
  for _ in $(seq 1200); do
    port=$(grep -o 'listening on port [0-9]*' "$CROSS/$name-secc.log" | awk '{print $4}' || true)
    [ -n "$port" ] && break
    kill -0 "$secc" 2> /dev/null || break
    sleep 0.1
  done
  cres secc_startup_s "$(since "$t")"
  if [ -z "$port" ]; then
    kill "$secc" 2> /dev/null || true
    wait "$secc" 2> /dev/null || true
    cres rc "no listening line"
    say "cross $name: the charger did not listen"; cat "$CROSS/$name-secc.log" >> "$LOG"
    return 1
  fi
  t=$(now)
  side_v2h "$evcc_side"
  "${V2H[@]}" evcc --secc "127.0.0.1:$port" --pki "$(side_pki "$evcc_side")" --protocols iso20 \
    --service DC_BPT --control-mode dynamic --auth pnc --soc 80 --loops "$LOOPS" --loop-period 0.1 --quiet \
    > "$CROSS/$name-evcc.log" 2>&1 || rc=$?
  cres session_s "$(since "$t")"
  cres summary "$(tail -1 "$CROSS/$name-evcc.log")"
  for _ in $(seq 300); do kill -0 "$secc" 2> /dev/null || break; sleep 0.1; done  # --once: it ends
  if kill -0 "$secc" 2> /dev/null; then
    kill "$secc" 2> /dev/null || true
    [ "$rc" != 0 ] || rc="charger still running 30 s after the session"
  fi
  wait "$secc" 2> /dev/null || wrc=$?
  [ "$rc" != 0 ] || [ "$wrc" = 0 ] || rc="charger exit $wrc"
  cres wall_s "$(since "$t0")"
  cres rc "$rc"
  say "cross $name (charger $(side_name "$secc_side"), car $(side_name "$evcc_side")): rc $rc, session $(grep "^${name}_session_s=" "$CROSS/results.env" | cut -d= -f2) s"
  [ "$rc" = 0 ] || { cat "$CROSS/$name-evcc.log" "$CROSS/$name-secc.log" >> "$LOG"; return 1; }
}
if [ "$SKIP_HOST" = 0 ]; then
  mkdir -p "$CROSS"
  rm -f "$CROSS/results.env" "$CROSS"/*-secc.log "$CROSS"/*-evcc.log
  mount_root
  CROSS_STATUS=passed
  if [ "$ONLY" = cross ]; then
    for d in "$RUN" "$HOST"; do
      if refresh_sources "$d"; then
        say "cross: $d/src refreshed; setup.py, pyproject.toml and ext/_cexi.pyx unchanged: its venv and extension reused"
        echo "reinstalled_$(if [ "$d" = "$RUN" ]; then echo arm64; else echo host; fi)=no" >> "$CROSS/results.env"
      else
        say "cross: setup.py, pyproject.toml or ext/_cexi.pyx changed: pip install -e in $d"
        echo "reinstalled_$(if [ "$d" = "$RUN" ]; then echo arm64; else echo host; fi)=yes" >> "$CROSS/results.env"
        if [ "$d" = "$RUN" ]; then
          (cd "$RUN" && "${IN_ROOT[@]}" bash -c "cd /opt/v2h && venv/bin/pip install --no-cache-dir -e 'src[$EXTRAS]'") \
            >> "$LOG" 2>&1 || CROSS_STATUS=failed
        else
          (cd "$HOST" && "${ON_HOST[@]}" venv/bin/pip install --no-cache-dir -e "src[$EXTRAS]") >> "$LOG" 2>&1 || CROSS_STATUS=failed
        fi
      fi
    done
    # what pip install would have done: bytecode, so that neither side compiles its modules mid-session
    "${IN_ROOT[@]}" /opt/v2h/venv/bin/python -m compileall -q /opt/v2h/src/iso15118 /opt/v2h/src/v2h >> "$LOG" 2>&1 || true
    "${ON_HOST[@]}" "$HOST/venv/bin/python" -m compileall -q "$HOST/src/iso15118" "$HOST/src/v2h" >> "$LOG" 2>&1 || true
  fi
  src_desc="$(git -C "$REPO" rev-parse --short "${REF:-HEAD}")"
  if [ -n "$REF" ]; then src_desc="$src_desc (--ref $REF)"
  elif ! git -C "$REPO" diff --quiet HEAD; then src_desc="the work tree at $src_desc, with uncommitted changes"
  fi
  echo "source=$src_desc" >> "$CROSS/results.env"
  check='from iso15118 import exi; from iso15118.exi import _backend as b; import hashlib, pathlib, platform, sys
src = pathlib.Path(exi.__file__).resolve().parents[2] / "ext" / "_cexi.pyx"
cur = b._built is not None and b._built.SOURCE_SHA256 == hashlib.sha256(src.read_bytes()).hexdigest()
print(platform.machine(), exi.IMPLEMENTATION, "current" if cur else "STALE or absent")'
  echo "root_codec=$("${IN_ROOT[@]}" /opt/v2h/venv/bin/python -c "$check" 2>&1 | tail -1)" >> "$CROSS/results.env"
  echo "host_codec=$("${ON_HOST[@]}" "$HOST/venv/bin/python" -c "$check" 2>&1 | tail -1)" >> "$CROSS/results.env"
  rm -rf "$RUN/cross-pki"
  side_v2h host
  "${V2H[@]}" pki init "$RUN/cross-pki" > "$CROSS/pki.log" 2>&1 || CROSS_STATUS=failed
  if [ "$CROSS_STATUS" = passed ]; then
    say "cross sessions: the arm64 charger (emulated) with the x86_64 car, then the reverse"
    cross x86car_armsecc root host || CROSS_STATUS=failed
    cross armcar_x86secc host root || CROSS_STATUS=failed
  else
    say "cross: the sources, an install or the PKI failed: no cross sessions (see $LOG)"
  fi
  cleanup
  [ "$CROSS_STATUS" = passed ] || status=1
fi

python3 - "$RUN" "$HOST" "$ROOT_S" "$ARM_S" "$HOST_S" "$SKIP_HOST" "$CROSS" "$CROSS_STATUS" "$ONLY" > "$WORK/report.md" <<'EOF'
"""Write the report: the arm64 run next to the host's."""
import json
import sys
from pathlib import Path

arm_dir, host_dir, root_s, arm_s, host_s, skip_host, cross_dir, cross_status, only = sys.argv[1:]


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
      f"arm64 run {arm_s or '—'} s, host run {host_s or '—'} s. Emulated (qemu-user) figures are ratios to the host, "
      "not a SoC's speed.\n")
cross = {}
if (Path(cross_dir) / "results.env").exists() and cross_status != "skipped":
    for line in (Path(cross_dir) / "results.env").read_text().splitlines():
        k, _, v = line.partition("=")
        cross[k] = v
print(f"## Across the emulation boundary: {cross_status}\n")
if cross:
    print(f"Source {cross.get('source', '—')}; codec: arm64 `{cross.get('root_codec', '—')}`, "
          f"host `{cross.get('host_codec', '—')}`"
          + (f"; reinstalled: arm64 {cross.get('reinstalled_arm64', '—')}, host {cross.get('reinstalled_host', '—')}"
             if only else "") + ".\n")
    print("| session (ISO 15118-20, TLS 1.3, DC_BPT, Plug & Charge) | result | charger start to listening (s) "
          "| car's session (s) | charger start to both ended (s) |\n| --- | --- | ---: | ---: | ---: |")
    for name in ("x86car_armsecc", "armcar_x86secc"):
        if name + "_sides" not in cross:
            continue
        rc = cross.get(name + "_rc", "—")
        print(f"| {cross[name + '_sides']} | {'passed' if rc == '0' else 'FAILED: ' + rc} "
              f"| {cross.get(name + '_secc_startup_s', '—')} | {cross.get(name + '_session_s', '—')} "
              f"| {cross.get(name + '_wall_s', '—')} |")
    print()
    for name in ("x86car_armsecc", "armcar_x86secc"):
        if cross.get(name + "_summary"):
            print(f"- {name}: `{cross[name + '_summary']}`")
    print()
if only:
    import time
    when = lambda d: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime((Path(d) / "results.env").stat().st_mtime))  # noqa: E731
    print(f"## The last full run (arm64 {when(arm_dir)}, host {when(host_dir)}; --only {only} did not repeat it)\n")
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
[ "$status" = 0 ] || say "a step failed: see $LOG and the logs in $RUN, $HOST and $CROSS"
exit "$status"
