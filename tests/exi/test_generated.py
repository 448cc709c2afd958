"""The committed generated code is exactly what the generator makes from the pinned XSDs."""

from __future__ import annotations

from tools.generate import OUT_DIR, generate


def test_regenerating_gives_the_committed_files(schema_dir):
    files = generate(schema_dir)
    committed = {p.name for p in OUT_DIR.glob("*.py")}
    assert committed == set(files), "generated file set differs: run python -m tools.generate"
    for name, text in files.items():
        assert (OUT_DIR / name).read_text() == text, f"{name} is stale: run python -m tools.generate"
