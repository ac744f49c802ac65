"""Coverage-guided fuzzing of the parsers that read untrusted bytes (issue 16 item 2).

Each target is a module of this package with

* ``PROPERTY``: the property the harness checks, in one line (docs/robustness.md);
* ``ENTRY_POINTS``: the product functions it calls;
* ``write_seeds(directory) -> int``: writes a small seed corpus, generated in code;
* ``test_one_input(data: bytes)``: one execution; it returns when the product answered as
  documented and raises ``Finding`` (or lets any other exception through) otherwise;
* ``instrumented_imports()``: imports the product modules under atheris' instrumentation,
  which covers the modules named by ``INSTRUMENT`` (prefixes) only.

A target runs in its own process, because atheris takes the process over::

    python -m tests.fuzz TARGET [libFuzzer flags] CORPUS_DIR

``run`` below starts that process with a per-input time limit (``-timeout``), libFuzzer's own
memory limit (``-rss_limit_mb``) and an address-space limit (RLIMIT_AS, inherited by
pdftoppm), so that an exception, a hang or a memory blow-up each leave a ``crash-*``,
``timeout-*`` or ``oom-*`` file under the artifact prefix: a finding.
"""
from __future__ import annotations

import importlib
import os
import re
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

TARGETS = ("inputs", "manifest", "codes")
ROOT = Path(__file__).resolve().parents[2]
ADDRESS_SPACE_LIMIT = 3 * 1024 ** 3  # RLIMIT_AS of a fuzzing process: a blow-up is a MemoryError
RSS_LIMIT_MB = 1536                  # libFuzzer's own resident memory limit (oom-* artifact)


class Finding(AssertionError):
    """The product answered, but not as its contract says (a property failed)."""


def target(name: str):
    if name not in (*TARGETS, "selftest"):
        raise SystemExit(f"unknown fuzz target {name!r}; one of {', '.join(TARGETS)}")
    return importlib.import_module(f"tests.fuzz.{name}")


@dataclass
class Run:
    """What one bounded fuzzing process did."""

    target: str
    returncode: int
    executions: int
    seconds: int
    artifacts: list[Path] = field(default_factory=list)
    output: str = ""

    @property
    def clean(self) -> bool:
        return self.returncode == 0 and not self.artifacts


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run(name: str, workdir: Path, *, max_total_time: int | None = None, runs: int | None = None,
        timeout: int = 10, max_len: int | None = None, seed: int | None = 1,
        extra: tuple[str, ...] = (), wall_limit: float | None = None) -> Run:
    """Fuzz target ``name`` in a subprocess: seeds written into ``workdir/corpus`` (the corpus
    grows there), findings into ``workdir/artifacts``. Bounded by ``max_total_time`` seconds or
    ``runs`` executions."""
    corpus, artifacts = workdir / "corpus", workdir / "artifacts"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        target(name).write_seeds(corpus)
    flags = [f"-timeout={timeout}", f"-rss_limit_mb={RSS_LIMIT_MB}", f"-artifact_prefix={artifacts}/",
             "-print_final_stats=1"]
    if max_total_time is not None:
        flags.append(f"-max_total_time={max_total_time}")
    if runs is not None:
        flags.append(f"-runs={runs}")
    if max_len is not None:
        flags.append(f"-max_len={max_len}")
    if seed is not None:
        flags.append(f"-seed={seed}")
    dictionary = getattr(target(name), "DICTIONARY", None)
    if dictionary:
        path = workdir / f"{name}.dict"
        path.write_text("".join(f'"{_escape(token)}"\n' for token in dictionary), encoding="ascii")
        flags.append(f"-dict={path}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
           "SOHOA_FUZZ_SCRATCH": str(workdir / "scratch")}
    # Linux gives a process made by fork and exec the resident size its parent had then, as its
    # peak (ru_maxrss, what -rss_limit_mb reads): a pytest worker holding 1.6 GB made every target
    # "out of memory" before its first input. A shell in between forks the fuzzer from a small process.
    command = [sys.executable, "-m", "tests.fuzz", name, *flags, *extra, str(corpus)]
    proc = subprocess.Popen(["/bin/sh", "-c", '"$@"; exit $?', "sh", *command], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                            preexec_fn=_limits, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=wall_limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the fuzzer too, not only the shell
        proc.communicate()
        raise
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    output = proc.stdout + proc.stderr
    done = re.search(r"Done (\d+) runs in (\d+) second", output)
    execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", output)
    return Run(name, proc.returncode, int(done[1]) if done else int(execs[1]) if execs else 0,
               int(done[2]) if done else 0, sorted(artifacts.iterdir()), output)


def _escape(token: bytes | str) -> str:
    raw = token.encode() if isinstance(token, str) else token
    return "".join(chr(b) if 32 <= b < 127 and b not in (0x22, 0x5C) else f"\\x{b:02x}" for b in raw)
