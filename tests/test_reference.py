"""docs/config-reference.md is the schema's own rendering, never stale."""
from pathlib import Path

from abm.reference import render


def test_committed_config_reference_matches_the_schema():
    committed = Path(__file__).resolve().parents[1] / "docs" / "config-reference.md"
    assert committed.read_text(encoding="utf-8") == render(), (
        "docs/config-reference.md is stale: run `python -m abm.reference > docs/config-reference.md`")
