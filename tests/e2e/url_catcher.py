"""$BROWSER for the end-to-end tests: hands the URL to the test, whose Chromium opens it."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
from fake_browser import page_target  # the tests' directory, just added

path = os.environ["E2E_URL_FILE"]
with open(path + ".part", "w") as file:
    # The private page the login hands the browser forwards there at once.
    file.write(page_target(sys.argv[1]))
os.replace(path + ".part", path)
