"""The browser of conformance runs: GET the URL and follow the redirects.

The suite's authorization servers redirect straight back to the redirect URI
(no sign-in page), so following redirects completes the login.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=20) as response:
        response.read()
except (urllib.error.URLError, OSError) as exc:
    print(f"[browser] {exc}", file=sys.stderr)
