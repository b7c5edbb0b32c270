"""The generation layer's processor registry: one processor per scheme, and schemes that never import torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import tracemark.text._schemes as schemes_package
from tracemark.text import SCHEME_NAMES
from tracemark.text._processors import _PROCESSORS

SCHEMES_DIR = Path(schemes_package.__file__).parent


def test_every_scheme_has_a_processor() -> None:
    assert set(_PROCESSORS) == set(SCHEME_NAMES)
    pytest.importorskip("torch")
    import importlib

    from transformers import LogitsProcessor

    for module_name, class_name in _PROCESSORS.values():
        assert issubclass(getattr(importlib.import_module(module_name), class_name), LogitsProcessor)


@pytest.mark.parametrize("path", sorted(SCHEMES_DIR.glob("*.py")), ids=lambda p: p.name)
def test_scheme_modules_do_not_import_the_generation_layer(path: Path) -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    # transformers' config classes may be built lazily for interop (SynthIDScheme.to_transformers_config)
    forbidden = {
        name
        for name in imported
        if name.split(".")[0] == "torch"
        or name.startswith(("tracemark.text._hf", "tracemark.text._processors", "tracemark.text._generate"))
    }
    assert not forbidden, f"{path.name} imports {sorted(forbidden)}"


def test_scoring_with_every_scheme_loads_no_torch() -> None:
    code = (
        "import sys, numpy as np\n"
        "from tracemark.text import SCHEME_NAMES, scheme_class\n"
        "for name in SCHEME_NAMES:\n"
        "    cls = scheme_class(name)\n"
        "    key = cls.new_key(secret_source=lambda label: bytes(32), vocab_size=100, tokenizer_sha256='a' * 64)\n"
        "    cls(key).score(np.arange(20, dtype=np.int64) % 100)\n"
        "print('torch' in sys.modules or 'transformers' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
