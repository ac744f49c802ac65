"""Fuzz target ``selftest``: checks the runner itself, not sohoa. An input starting with
``RAISE`` raises, ``HANG`` sleeps past the per-input time limit, ``BLOAT`` allocates past the
address-space limit; anything else passes. A clean run of a real target means something only
if these three are reported."""
from __future__ import annotations

import time
from pathlib import Path

PROPERTY = ENTRY_POINTS = "the runner reports an exception, a hang and a memory blow-up"
INSTRUMENT = ("tests.fuzz.selftest",)


def instrumented_imports() -> None:
    pass


def test_one_input(data: bytes) -> None:
    if data.startswith(b"RAISE"):
        raise KeyError("planted")
    if data.startswith(b"HANG"):
        time.sleep(30)
    if data.startswith(b"BLOAT"):
        del bytearray(16 * 1024 ** 3)[0]  # 16 GiB at once: over RLIMIT_AS, a MemoryError


def seeds() -> dict[str, bytes]:
    return {"pass": b"nothing to see"}


def write_seeds(directory: Path) -> int:
    for name, data in seeds().items():
        (directory / name).write_bytes(data)
    return 1
