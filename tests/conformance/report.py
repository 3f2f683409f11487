"""For a failed conformance scenario: its failed checks and the client's log."""

from __future__ import annotations

import json
import sys
from pathlib import Path

results, scenario, log = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
for run in sorted(results.glob(f"{scenario}-*")):
    for check in json.loads((run / "checks.json").read_text()):
        if check["status"] in ("FAILURE", "WARNING"):
            print(f"    {check['status']} {check['id']}: {check['description']}")
for line in log.read_text(errors="replace").splitlines()[-40:]:
    print(f"    | {line}")
