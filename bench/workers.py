"""Scaling of the Celery workers: pages per minute of one bulk set with one and with two
worker processes (each `sohoa worker --concurrency 1`), run side by side, alternating.

    .venv/bin/python -m bench.workers                    # 12 dossiers, 24 pages, 3 rounds
    .venv/bin/python -m bench.workers --dossiers 20 --rounds 5

Each run converts the same rendered backlog into a fresh SOHOA_HOME and database on Redis
(127.0.0.1:6379, a database of its own, emptied), timing the whole `sohoa bulk` command from
start to its last document committed. The embedded default (no broker, one process over the
machine's cores) is run on the same set as a reference. Medians and ratios are quoted; the
machine's other load moves absolute times, so compare within one run only.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOHOA = str(Path(sys.executable).with_name("sohoa"))
sys.path.insert(0, str(ROOT))


def make_backlog(root: Path, dossiers: int) -> int:
    """``dossiers`` folders, each with two one-page documents (text and administrative pages)."""
    from tests.pagegen import PageSpec, render_page

    pages = 0
    for n in range(dossiers):
        folder = root / f"H23.50-261201-{n + 100:04d}"
        folder.mkdir(parents=True)
        for k, layout in enumerate(("text", "admin"), start=1):
            page = render_page(PageSpec(layout=layout, seed=9000 + 10 * n + k, dpi=200, skew_deg=1.5))
            page.image.save(folder / f"{k:02d}_Tài liệu {k}.png", dpi=page.dpi)
            pages += 1
    return pages


def run_once(backlog: Path, workers: int, redis_db: int) -> float:
    home = Path(tempfile.mkdtemp(prefix="sohoa-bench-"))
    env = {**os.environ, "SOHOA_HOME": str(home), "OMP_THREAD_LIMIT": "1"}
    for name in ("SOHOA_BROKER_URL", "SOHOA_DATABASE_URL", "SOHOA_STORAGE"):
        env.pop(name, None)
    procs = []
    try:
        if workers:
            import redis

            url = f"redis://127.0.0.1:6379/{redis_db}"
            redis.Redis.from_url(url).flushdb()
            env["SOHOA_BROKER_URL"] = url
            subprocess.run([SOHOA, "db", "upgrade"], env=env, check=True, capture_output=True)
            procs = [subprocess.Popen([SOHOA, "worker", "--concurrency", "1"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True) for _ in range(workers)]
            time.sleep(3)  # the workers connect before the clock starts
        started = time.monotonic()
        done = subprocess.run([SOHOA, "bulk", str(backlog), "--json"], env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"bulk failed ({workers} workers): {done.stderr}")
        return elapsed
    finally:
        for p in procs:
            os.killpg(p.pid, 9)
            p.wait()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dossiers", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-db", type=int, default=14)
    args = parser.parse_args()
    backlog = Path(tempfile.mkdtemp(prefix="sohoa-backlog-"))
    try:
        pages = make_backlog(backlog, args.dossiers)
        print(f"bulk set: {args.dossiers} dossiers, {pages} pages (rendered, 200 dpi); {os.cpu_count()} cores")
        times: dict[str, list[float]] = {"embedded (no broker)": [], "1 worker": [], "2 workers": []}
        for r in range(args.rounds):
            for label, workers in (("1 worker", 1), ("2 workers", 2), ("embedded (no broker)", 0)):
                times[label].append(run_once(backlog, workers, args.redis_db))
                print(f"  round {r + 1}: {label}: {times[label][-1]:.1f} s", flush=True)
        print(f"\n{'run':<24}{'median s':>10}{'pages/min':>11}")
        for label, values in times.items():
            median = statistics.median(values)
            print(f"{label:<24}{median:>10.1f}{60 * pages / median:>11.1f}")
        one, two = statistics.median(times["1 worker"]), statistics.median(times["2 workers"])
        print(f"\nscaling 2 workers / 1 worker: {one / two:.2f}x pages per minute")
    finally:
        shutil.rmtree(backlog, ignore_errors=True)


if __name__ == "__main__":
    main()
