"""The generated files of the reference models stay byte-identical unless a change means it.

Hashes in tests/golden/hashes.json come from tests/golden/generate.py; see there."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import generate  # noqa: E402

pytestmark = [pytest.mark.shared]
STORED = json.loads(generate.HASHES.read_text())


@pytest.mark.parametrize("name,source,board,is_example", generate.cases(), ids=[c[0] for c in generate.cases()])
def test_generated_files_unchanged(name, source, board, is_example):
    if not is_example and not (generate.SHARED / source).exists():
        pytest.skip(f"{generate.SHARED / source} is absent")
    assert generate.generate_case(source, board, is_example) == STORED[name]
