"""The README's policy example runs as written."""

import os
import re

from tests._helpers import ROOT


def test_readme_policy_example_runs():
    text = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "load_policy" in b]
    assert blocks, "the README lost its policy example"
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        namespace: dict = {}
        exec(compile(blocks[0], "README.md", "exec"), namespace)  # our own README
    finally:
        os.chdir(cwd)
    assert namespace["report"].step == 20 and namespace["report"].loss < 2.3
