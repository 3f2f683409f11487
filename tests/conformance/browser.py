"""The browser of conformance runs: open what it is handed, and follow the redirects.

The suite's authorization servers redirect straight back to the redirect URI
(no sign-in page), so following redirects completes the login. A login hands the
browser a private local page that forwards to the authorize URL (SECURITY.md):
it is followed as a browser follows it (tests/fake_browser.py reads it).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_browser import page_target

try:
    with urllib.request.urlopen(page_target(sys.argv[1]), timeout=20) as response:
        response.read()
except (urllib.error.URLError, OSError) as exc:
    print(f"[browser] {exc}", file=sys.stderr)
