"""sohoa's benchmarks (see bench/README.md): ``python -m bench.run`` for OCR accuracy, ``python -m
bench.perf`` for throughput, memory, size, intake, workers and search."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_pagegen():
    """tests/pagegen.py, the project's page generator, loaded once (the tests folder is no package)."""
    if "sohoa_pagegen" in sys.modules:
        return sys.modules["sohoa_pagegen"]
    spec = importlib.util.spec_from_file_location("sohoa_pagegen", ROOT / "tests" / "pagegen.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sohoa_pagegen"] = module
    spec.loader.exec_module(module)
    return module
