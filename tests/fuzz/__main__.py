"""python -m tests.fuzz TARGET [libFuzzer flags] [CORPUS_DIR | CRASH_FILE]
python -m tests.fuzz seeds TARGET DIR      (write the target's seed corpus into DIR)

A crash file given instead of a corpus directory is replayed once: the way to reproduce a
finding (``python -m tests.fuzz inputs artifacts/crash-...``)."""
from __future__ import annotations

import hashlib
import sys
import traceback
import warnings
from pathlib import Path

from tests.fuzz import target


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[1] == "seeds":
        directory = Path(argv[3])
        directory.mkdir(parents=True, exist_ok=True)
        print(f"{target(argv[2]).write_seeds(directory)} seeds written to {directory}")
        return
    if len(argv) < 2:
        raise SystemExit(__doc__)
    import atheris

    module = target(argv[1])
    warnings.simplefilter("ignore")  # Pillow's UserWarnings on damaged files: noise, not findings
    with atheris.instrument_imports(include=list(module.INSTRUMENT)):
        module.instrumented_imports()

    prefix = next((a.split("=", 1)[1] for a in argv if a.startswith("-artifact_prefix=")), "./")

    def one_input(data: bytes) -> None:
        try:
            module.test_one_input(data)
        except BaseException:
            traceback.print_exc()  # the finding, before libFuzzer writes its crash file
            sys.stderr.flush()
            # libFuzzer's own crash file under the same name, written first: a SIGALRM of the
            # -timeout timer during atheris' exit path has been seen to end the process before it
            crash = Path(f"{prefix}crash-{hashlib.sha1(data).hexdigest()}")
            if not crash.exists():
                crash.write_bytes(data)
            raise

    atheris.Setup([argv[0], *argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
