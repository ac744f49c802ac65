"""Peak memory of ``sohoa ingest`` against the page count (issue 17).

    .venv/bin/python -m bench.memory                          # tiff, pdf, jpeg at 10, 50, 100 pages
    .venv/bin/python -m bench.memory --kinds tiff --pages 10 100 --json /tmp/mem.json
    .venv/bin/python -m bench.memory --engine tesseract       # a cheaper OCR engine (SOHOA_OCR_ENGINE)

Each run renders its input with tests/pagegen.py (a few distinct pages, repeated to the page
count), then runs ``sohoa ingest`` on the embedded default (local storage, SQLite, no broker,
the development signing key, as scripts/demo.sh) in a fresh SOHOA_HOME, and samples every
process of its tree every 50 ms. Each process's peak is the kernel's high-water mark of its
resident set (VmHWM in /proc/PID/status), so a peak between two samples is not missed. It
reports the ingest process, the largest page worker (the pool's Python processes) and the
largest other child (poppler, tesseract).

Kinds: ``tiff`` one multi-page 200-dpi grey TIFF (LZW, ``--tiff-compression raw`` for
uncompressed), ``pdf`` one multi-page scanned PDF (200-dpi grey JPEG pages), ``jpeg`` one
300-dpi colour JPEG file per page.

``measure_peak(pages, kind, workdir)`` is the function other benchmarks import.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import load_pagegen

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("tiff", "pdf", "jpeg")
DISTINCT_PAGES = 4  # rendered once each and repeated: rendering 100 pages would take longer than the ingest
SPARSE_LINES = 4    # lines of running text a page
SAMPLE_EVERY = 0.05
MB = 1024 * 1024


def _distinct_pages(dpi: int, color: str):
    """Scanned A4 pages with a few lines of text each: the scan noise (hence the files' and the
    PDF's size) of a full page, for a fraction of the OCR time of one (memory is what is measured)."""
    pagegen = load_pagegen()
    return [pagegen.render_page(pagegen.PageSpec(layout=("admin", "text")[i % 2], dpi=dpi, color=color,
                                                 degradation=1, skew_deg=(-1.5, 0.8, 2.0, -0.6)[i % 4],
                                                 max_body_lines=SPARSE_LINES, seed=1700 + i)).image
            for i in range(DISTINCT_PAGES)]


def render_input(pages: int, kind: str, folder: Path, tiff_compression: str = "tiff_lzw") -> list[Path]:
    """The input files of a ``pages``-page document of ``kind``, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "jpeg":
        images = _distinct_pages(300, "rgb")
        paths = []
        for n in range(pages):
            path = folder / f"trang-{n + 1:03d}.jpg"
            # the comment makes each file's bytes its own (the same file twice is refused)
            images[n % len(images)].save(path, "JPEG", quality=85, dpi=(300, 300), comment=f"trang {n + 1}")
            paths.append(path)
        return paths
    images = _distinct_pages(200, "gray")
    sequence = [images[n % len(images)] for n in range(pages)]
    if kind == "tiff":
        path = folder / f"ho-so-{pages}.tif"
        sequence[0].save(path, "TIFF", save_all=True, append_images=sequence[1:], dpi=(200, 200),
                         compression=None if tiff_compression == "raw" else tiff_compression)
    elif kind == "pdf":
        path = folder / f"ho-so-{pages}.pdf"
        sequence[0].save(path, "PDF", save_all=True, append_images=sequence[1:], resolution=200, quality=85)
    else:
        raise ValueError(f"unknown kind {kind!r}: one of {KINDS}")
    return [path]


def _tree(pid: int) -> list[tuple[int, int]]:
    """(pid, parent pid) of a process and of its descendants alive now."""
    try:
        root = psutil.Process(pid)
        found = [(pid, 0)]
        for child in root.children(recursive=True):
            try:
                found.append((child.pid, child.ppid()))
            except psutil.NoSuchProcess:
                continue
        return found
    except psutil.NoSuchProcess:
        return []


def _status(pid: int) -> tuple[str, int] | None:
    """(program, peak RSS in bytes) of a live process; the program is the executable's name (a
    forked pool worker is ``python3`` whatever its command name)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        program = Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return None
    if "VmHWM" not in fields:
        return None  # a zombie
    return program, int(fields["VmHWM"].split()[0]) * 1024


def run_ingest(files: list[Path], home: Path, engine: str | None = None, jobs: int = 0,
               tree: Path | None = None) -> dict:
    """Run ``sohoa ingest`` on ``files`` in ``home`` and follow its process tree's peaks; ``tree``:
    another copy of the sources to run (an earlier version, side by side), else this one."""
    env = {**os.environ, "SOHOA_HOME": str(home)}
    for name in [n for n in env if n.startswith("SOHOA_") and n != "SOHOA_HOME"]:
        if name != "SOHOA_OCR_ENGINE" or engine is not None:
            del env[name]  # the embedded default, whatever the calling shell has set
    if engine:
        env["SOHOA_OCR_ENGINE"] = engine
    program = [str(ROOT / ".venv" / "bin" / "sohoa")]
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
        program = [str(ROOT / ".venv" / "bin" / "python"), "-c",
                   "import sys; from api.cli import main; sys.argv[0] = 'sohoa'; sys.exit(main())"]
    command = [*program, "ingest", "--dossier", "H23.50-261201-0017",
               "--title", "Hồ sơ đo bộ nhớ", "--json", *(["--jobs", str(jobs)] if jobs else []),
               *map(str, files)]
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=tree or ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peaks: dict[int, tuple[str, int, int]] = {}  # pid -> (name, peak, parent)
    while process.poll() is None:
        for pid, parent in _tree(process.pid):
            status = _status(pid)
            if status is not None:
                name, peak = status
                seen = peaks.get(pid)
                if seen is not None and seen[0] == name:  # after an exec, the new program's peak alone
                    peak = max(peak, seen[1])
                peaks[pid] = (name, peak, parent)
        time.sleep(SAMPLE_EVERY)
    out, err = process.communicate()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"sohoa ingest exited {process.returncode}: {err.decode(errors='replace')[-2000:]}")
    summary = json.loads(out)
    root = peaks.get(process.pid, ("", 0, 0))[1]
    workers = [p for pid, (name, p, parent) in peaks.items() if parent == process.pid and name.startswith("python")]
    # a Python process below a worker is a fork about to exec poppler or tesseract: until it does,
    # it shows the worker's own peak, which is not its own
    others = [p for pid, (name, p, parent) in peaks.items() if pid != process.pid and not name.startswith("python")]
    return {"ingest_peak_mb": round(root / MB, 1), "worker_peak_mb": round(max(workers, default=0) / MB, 1),
            "other_peak_mb": round(max(others, default=0) / MB, 1), "workers": len(workers),
            "seconds": round(seconds, 1), "pages_done": len(summary.get("pages", [])),
            "pdf_bytes": (summary.get("pdf") or {}).get("size")}


def measure_peak(pages: int, kind: str, workdir, *, engine: str | None = None, jobs: int = 0,
                 tiff_compression: str = "tiff_lzw", tree: Path | None = None) -> dict:
    """Peak RSS (MB) of the ingest process and of its largest page worker for a ``pages``-page
    document of ``kind`` (tiff | pdf | jpeg), in a fresh SOHOA_HOME under ``workdir``."""
    workdir = Path(workdir)
    run_dir = Path(tempfile.mkdtemp(prefix=f"mem-{kind}-{pages}-", dir=workdir))
    files = render_input(pages, kind, run_dir / "input", tiff_compression)
    result = run_ingest(files, run_dir / "home", engine, jobs, tree)
    return {"kind": kind, "pages": pages, "input_mb": round(sum(f.stat().st_size for f in files) / MB, 1),
            **result}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--engine", choices=("vote", "tesseract", "trueocr"), default=None,
                        help="OCR engine (default: sohoa's default)")
    parser.add_argument("--jobs", type=int, default=0, help="pages in parallel (default: every core)")
    parser.add_argument("--tiff-compression", choices=("tiff_lzw", "raw"), default="tiff_lzw")
    parser.add_argument("--tree", type=Path, help="run this copy of the sources instead (to compare versions)")
    parser.add_argument("--workdir", help="where inputs and SOHOA_HOMEs go (default: a temporary folder)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sohoa-mem-", dir=args.workdir) as workdir:
        header = f"{'kind':<5} {'pages':>5} {'input MB':>8} {'ingest MB':>9} {'worker MB':>9} {'other MB':>8} {'s':>6}"
        print(header, flush=True)
        for kind in args.kinds:
            for pages in args.pages:
                row = measure_peak(pages, kind, workdir, engine=args.engine, jobs=args.jobs,
                                   tiff_compression=args.tiff_compression, tree=args.tree)
                rows.append(row)
                print(f"{kind:<5} {pages:>5} {row['input_mb']:>8} {row['ingest_peak_mb']:>9} "
                      f"{row['worker_peak_mb']:>9} {row['other_peak_mb']:>8} {row['seconds']:>6}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"engine": args.engine or "default", "jobs": args.jobs or os.cpu_count(),
                                               "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
