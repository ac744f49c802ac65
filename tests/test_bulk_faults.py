"""Issue 16's acceptance check on a bulk run against real object storage: the gateway goes away
in the middle of the run and comes back, then the run is killed with SIGKILL; running it again
leaves every dossier complete exactly once, each document once, in order, and `sohoa verify --all`
finds nothing changed, missing or extra."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from storage import keys
from tests.services import rgw_outage
from tests.test_bulk import backlog

SOHOA = str(Path(sys.executable).with_name("sohoa"))
CODES = [f"H23.50-261202-{n:04d}" for n in range(71, 75)]


def _manifest(store, code: str) -> dict | None:
    return json.loads(store.get(keys.manifest(code))) if store.exists(keys.manifest(code)) else None


def test_a_storage_outage_then_a_kill_in_a_bulk_run_leave_every_dossier_complete_once(
        rendered, tmp_path, rgw, s3_env, s3_store):
    planned = backlog(rendered, tmp_path / "kho", CODES, dpi=100, seed=900)
    inputs = sum(len(t) for t in planned.values())
    env = {**os.environ, "SOHOA_HOME": str(tmp_path / "home"), "SOHOA_JOBS": "1"}
    first = subprocess.Popen([SOHOA, "bulk", str(tmp_path / "kho")], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while _manifest(s3_store, CODES[0]) is None:
            assert time.monotonic() < deadline and first.poll() is None, "the first run did not get going"
            time.sleep(0.2)
        restart = rgw_outage(rgw)  # the object store goes away mid-run ...
        time.sleep(8)
        restart()  # ... and comes back
        deadline = time.monotonic() + 300
        while _manifest(s3_store, CODES[2]) is None and first.poll() is None:
            assert time.monotonic() < deadline, "the first run did not go on after the outage"
            time.sleep(0.2)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)  # then the power goes off
        first.wait()

    again = subprocess.run([SOHOA, "bulk", str(tmp_path / "kho"), "--json"], env=env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    totals = json.loads(again.stdout)["totals"]
    assert totals["documents"] == inputs and totals["done"] + totals["skipped"] == inputs, totals
    for code, titles in planned.items():
        manifest = _manifest(s3_store, code)
        assert manifest is not None, f"{code} was lost"
        assert [d["title"] for d in manifest["documents"]] == titles, code  # once each, in order

    verify = subprocess.run([SOHOA, "verify", "--all", "--json"], env=env, capture_output=True, text=True,
                            timeout=600)
    assert verify.returncode == 0, verify.stdout + verify.stderr
