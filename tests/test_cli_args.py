"""The command line's arguments: every number checked at parse time (argparse's one-line usage
error, exit 2, never a traceback), help for everything with its default, case-insensitive
choices, --version, the PKI never replaced silently, secrets off the command line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from v2h.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "v2h.cli"]
SECC = ["secc", "--pki", "P"]
CHARGER = ["charger", "--pki", "P", "--csms", "ws://127.0.0.1:9/ocpp", "--id", "CS1"]
EVCC = ["evcc", "--pki", "P", "--secc", "[::1]:50000"]


def parse_error(argv: list[str], capsys) -> str:
    """The usage error argparse prints for ``argv`` (exit status 2)."""
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("v2h "), err
    return err[-1]


@pytest.mark.parametrize("argv,flag,bad", [
    (SECC, "--port", "99999"), (SECC, "--port", "-1"), (SECC, "--port", "80.5"),
    (SECC, "--max-connections", "0"),
    (SECC, "--setpoint", "nan"), (SECC, "--setpoint", "inf"), (SECC, "--setpoint", "-inf"),
    (SECC, "--setpoint", "1e9"), (SECC, "--setpoint", "seven"),
    (SECC, "--price-levels", "3600:300"), (SECC, "--price-levels", "0:1"),
    (CHARGER, "--setpoint", "-5"), (CHARGER, "--setpoint", "NaN"), (CHARGER, "--port", "65536"),
    (CHARGER, "--tx-interval", "0"), (CHARGER, "--tx-interval", "nan"),
    (CHARGER, "--retry-backoff", "-1"), (CHARGER, "--retry-random", "inf"),
    (EVCC, "--soc", "-10"), (EVCC, "--soc", "150"), (EVCC, "--soc", "nan"),
    (EVCC, "--capacity", "0"), (EVCC, "--capacity", "-3"), (EVCC, "--capacity", "inf"),
    (EVCC, "--min-soc", "101"), (EVCC, "--loops", "-5"), (EVCC, "--loops", "0"), (EVCC, "--loops", "2.5"),
    (EVCC, "--loop-period", "0"), (EVCC, "--loop-period", "nan"), (EVCC, "--loop-period", "3600"),
])
def test_numbers_out_of_range_are_usage_errors(argv, flag, bad, capsys):
    line = parse_error([*argv, f"{flag}={bad}"], capsys)  # '-inf' alone would read as a flag
    assert f"argument {flag}" in line and repr(bad) in line, line


@pytest.mark.parametrize("address", ["[::1]:99999", "[::1]:0", "nohost", "[::1]", ":50000", "host:port"])
def test_the_chargers_address_is_checked(address, capsys):
    argv = [a if a != "[::1]:50000" else address for a in EVCC]
    assert "argument --secc: want HOST:PORT" in parse_error(argv, capsys)


def test_numbers_in_range_are_taken(capsys):
    a = build_parser().parse_args([*SECC, "--port", "65535", "--setpoint", "-7000", "--max-connections", "1"])
    assert (a.port, a.setpoint, a.max_connections) == (65535, -7000.0, 1)
    a = build_parser().parse_args([*EVCC, "--soc", "0", "--capacity", "77.5", "--loops", "1", "--min-soc", "100"])
    assert (a.soc, a.capacity, a.loops, a.min_soc, a.secc) == (0.0, 77.5, 1, 100.0, ("::1", 50000))
    a = build_parser().parse_args([*CHARGER, "--setpoint", "0"])
    assert a.setpoint == 0.0


def test_the_old_traceback_cases_exit_2_with_one_line():
    """As a new user would: the flags that ended in tracebacks or ran anyway."""
    for argv in (["secc", "--pki", "x", "--port", "99999"], ["evcc", "--secc", "[::1]:1", "--pki", "x", "--capacity",
                                                               "0"],
                 ["evcc", "--secc", "[::1]:1", "--pki", "x", "--soc", "-10"],
                 ["evcc", "--secc", "[::1]:1", "--pki", "x", "--loops", "-5"],
                 ["secc", "--pki", "x", "--setpoint", "nan"]):
        r = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (argv, r.stderr)
        assert "Traceback" not in r.stderr and r.stdout == ""
        assert r.stderr.strip().splitlines()[-1].startswith(f"v2h {argv[0]}: error: argument"), r.stderr


def test_choices_are_case_insensitive_and_come_back_canonical():
    a = build_parser().parse_args(["evcc", "--pki", "P", "--interface", "eth0", "--service", "dc_bpt", "--auth", "PnC",
                                   "--control-modes", "DYNAMIC", "--end", "pause", "--pki-profile", "ISO20-ED448"])
    assert (a.service, a.auth, a.control_mode, a.end, a.pki_profile) == ("DC_BPT", "pnc", "dynamic", "Pause",
                                                                         "iso20-ed448")
    a = build_parser().parse_args([*SECC, "--kind", "ac", "--auth", "PNC,eim", "--control-modes", "Dynamic"])
    assert (a.kind, a.auth, a.control_modes) == ("AC", ["pnc", "eim"], ["dynamic"])
    # the car's old spelling still works
    assert build_parser().parse_args([*EVCC, "--control-mode", "scheduled"]).control_mode == "scheduled"


def test_car_and_charger_share_flag_names():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    def flags(name):
        return {o for a in sub.choices[name]._actions for o in a.option_strings}
    both = flags("secc") & flags("evcc")
    for flag in ("--auth", "--control-modes", "--pki", "--pki-profile", "--interface", "--log", "--quiet", "-q",
                 "--verbose", "-v", "--trace", "--keylog"):
        assert flag in both, flag
    assert {"--quiet", "--verbose", "--trace", "--keylog", "--log"} <= flags("charger")


def test_every_command_and_argument_has_help():
    from v2h.args import undocumented

    assert undocumented(build_parser(), skip={"hems"}) == []


def test_help_shows_the_defaults():
    r = subprocess.run([*CLI, "evcc", "--help"], capture_output=True, text=True, timeout=60, env={
        **os.environ, "COLUMNS": "200"})
    assert r.returncode == 0
    for needle in ("(default: DC_BPT)", "(default: dynamic)", "(default: eim)", "(default: 10)", "(default: 0.25)",
                   "(default: Terminate)", "(default: 60)", "(default: iso20-secp521r1)"):
        assert needle in r.stdout, (needle, r.stdout)
    r = subprocess.run([*CLI, "secc", "--help"], capture_output=True, text=True, timeout=60, env={
        **os.environ, "COLUMNS": "200"})
    for needle in ("(default: 7000.0)", "(default: DC)", "(default: eim,pnc)", "(default: scheduled,dynamic)",
                   "(default: 8)"):
        assert needle in r.stdout, (needle, r.stdout)
    r = subprocess.run([*CLI, "exi", "encode", "--help"], capture_output=True, text=True, timeout=60)
    assert "printed as hex" in r.stdout


def test_version():
    r = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("v2h ") and r.stdout.split()[1][0].isdigit(), r.stdout


def test_pki_init_refuses_to_replace_keys(tmp_path):
    d = tmp_path / "pki"
    first = subprocess.run([*CLI, "pki", "init", str(d)], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    key = d / "iso20-secp521r1" / "secc_leaf.key.pem"
    before = key.read_bytes()
    again = subprocess.run([*CLI, "pki", "init", str(d)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and again.stdout == ""
    assert "already holds a PKI" in again.stderr and "--force" in again.stderr, again.stderr
    assert key.read_bytes() == before
    forced = subprocess.run([*CLI, "pki", "init", "--force", str(d)], capture_output=True, text=True, timeout=120)
    assert forced.returncode == 0, forced.stderr
    assert key.read_bytes() != before


def test_pki_folder_of_the_readme_is_ignored_by_git():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    r = subprocess.run(["git", "check-ignore", "-q", ".v2h-pki/iso20-secp521r1/secc_leaf.key.pem"], cwd=ROOT)
    assert r.returncode == 0, ".v2h-pki/ is not ignored"


@pytest.mark.parametrize("flags,needle", [
    (["--password", "short"], "BasicAuthPassword must be 16 to 40 characters"),
    (["--password-file", "/nonexistent/pw"], "cannot read --password-file"),
    ([], "needs the basic-auth password"),
])
def test_charger_checks_its_arguments_before_creating_the_database(v2g_pki, tmp_path, flags, needle):
    db = tmp_path / "charger.db"
    env = {k: v for k, v in os.environ.items() if k != "V2H_CSMS_PASSWORD"}
    r = subprocess.run([*CLI, "charger", "--pki", str(v2g_pki), "--csms", "ws://127.0.0.1:9/ocpp", "--id", "CS1",
                        "--db", str(db), *flags], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1 and needle in r.stderr, r.stderr
    assert not db.exists()


def test_charger_with_a_missing_pki_creates_no_database(tmp_path):
    db = tmp_path / "charger.db"
    r = subprocess.run([*CLI, "charger", "--pki", str(tmp_path / "nope"), "--csms", "ws://127.0.0.1:9/ocpp", "--id",
                        "CS1", "--password", "a-16-to-40-char-password", "--db", str(db)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "v2h pki init" in r.stderr
    assert not db.exists()


def test_password_from_a_file_or_the_environment(v2g_pki, tmp_path, monkeypatch):
    from v2h.cli import _station_config

    pw_file = tmp_path / "pw"
    pw_file.write_text("from-the-file-0123456789\n")
    pw_file.chmod(0o600)
    base = ["charger", "--pki", str(v2g_pki), "--csms", "ws://127.0.0.1:9/ocpp", "--id", "CS1"]
    monkeypatch.setenv("V2H_CSMS_PASSWORD", "from-the-environment-0123")
    assert _station_config(build_parser().parse_args(base)).password == "from-the-environment-0123"
    assert _station_config(build_parser().parse_args([*base, "--password-file", str(pw_file)])).password == \
        "from-the-file-0123456789"
    assert _station_config(build_parser().parse_args([*base, "--password", "on-the-command-line-01"])).password == \
        "on-the-command-line-01"
    monkeypatch.delenv("V2H_CSMS_PASSWORD")
    with pytest.raises(ValueError, match="needs the basic-auth password"):
        _station_config(build_parser().parse_args(base))
