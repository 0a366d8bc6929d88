"""Print the runtime requirements from pyproject.toml (without the test-only ones), for the
image's dependency layer: it changes only when pyproject.toml does."""

import re
import sys
import tomllib

doc = tomllib.load(open(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml", "rb"))
test_only = set(doc["tool"]["commissioning"]["test-only"])
for req in doc["project"]["dependencies"]:
    name = re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0]
    if name not in test_only:
        print(req)
