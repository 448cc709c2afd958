"""The schema fetch step: pinned by sha256, mismatches name the file, user directories accepted."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("v2h_fetch_t", ROOT / "schemas" / "fetch.py")
fetch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fetch)


def test_fetched_schemas_match_the_manifest(schema_dir):
    fetch.verify_dir(schema_dir)
    manifest = fetch.load_manifest()
    assert len(manifest["files"]) == 16
    assert manifest["source"]["sha256"] == "2e1fd191888ca5f5f3a34ccd0588611dba1cb6f33bbe7ad0588bab0cfe48d45a"


def test_a_modified_file_is_named(schema_dir, tmp_path):
    copy = tmp_path / "xsd"
    shutil.copytree(schema_dir, copy)
    target = copy / "iso15118_20" / "V2G_CI_DC.xsd"
    target.write_bytes(target.read_bytes() + b"\n")
    with pytest.raises(fetch.SchemaFetchError, match="iso15118_20/V2G_CI_DC.xsd: sha256 mismatch"):
        fetch.verify_dir(copy)
    (copy / "xmldsig-core-schema.xsd").unlink()
    with pytest.raises(fetch.SchemaFetchError, match="xmldsig-core-schema.xsd"):
        fetch.verify_dir(copy)


def test_a_user_supplied_directory_is_verified_and_installed(schema_dir, tmp_path):
    # a download laid out by part: files with the same basename (MsgDef.xsd in DIN and -2)
    # are told apart by their hash
    flat = tmp_path / "flat"
    for rel in fetch.load_manifest()["files"]:
        d = flat / ("part-" + rel.split("/")[0]) if "/" in rel else flat
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(schema_dir / rel, d / rel.split("/")[-1])
    out = tmp_path / "installed"
    fetch.install_from_dir(flat, out)
    fetch.verify_dir(out)
    assert fetch.main(["--check", "--dest", str(out)]) == 0


def test_cli_reports_a_mismatch_with_the_file_name(schema_dir, tmp_path, capsys):
    copy = tmp_path / "xsd"
    shutil.copytree(schema_dir, copy)
    (copy / "V2G_CI_AppProtocol.xsd").write_text("<broken/>")
    assert fetch.main(["--check", "--dest", str(copy)]) == 1
    assert "V2G_CI_AppProtocol.xsd" in capsys.readouterr().err
