"""$BROWSER for the end-to-end tests: hands the URL to the test, whose Chromium opens it."""

import os
import sys

path = os.environ["E2E_URL_FILE"]
with open(path + ".part", "w") as file:
    file.write(sys.argv[1])
os.replace(path + ".part", path)
