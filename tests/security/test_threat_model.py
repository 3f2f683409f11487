"""SECURITY.md names a test for every defence, and every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`")


def test_every_defence_names_tests_that_exist() -> None:
    rows = [
        line
        for line in (ROOT / "SECURITY.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith(("| attack", "|---"))
    ]
    assert len(rows) >= 20
    for row in rows:
        test_cell = row.rstrip(" |").rsplit(" | ", 1)[-1]
        current = None
        named = 0
        for path, name in REFERENCE.findall(test_cell):
            current = path or current
            assert current is not None, row
            source = (ROOT / current).read_text()
            if name:
                assert re.search(rf"^(async )?def {name}\(", source, re.M), (current, name)
            named += 1
        assert named, f"no test named for: {row[:80]}"
