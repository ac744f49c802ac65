"""A hot folder for network scanners: ``sohoa watch FOLDER``.

A scanner (or an operator) drops files into ``FOLDER/<dossier code>/``; a file dropped into
FOLDER itself names its dossier by the receipt QR code on its first page. Each file is one
document, titled by its name. A file is taken only once it has stopped changing (the same
size and modification time for ``settle`` seconds: scanners write over the network slowly),
then moved to ``FOLDER/done/<code>/`` once stored, or to ``FOLDER/failed/`` with
``<name>.error.txt`` beside it saying why, in Vietnamese. Nothing is ever deleted; a file
moved back from ``failed/`` is tried again. Hidden and temporary files (``.*``, ``~$*``,
``*.part``, ``*.tmp``) are left alone, as are ``done/`` and ``failed/``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .bulk_plan import ignored_name, supported_name, title_and_order
from .errors import describe

DONE, FAILED = "done", "failed"
TEMPORARY_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial")


@dataclass(frozen=True)
class HotFile:
    path: Path
    dossier: str | None  # from its sub-folder; None: from the receipt QR code on its first page
    title: str


@dataclass
class Watcher:
    """Which files of the folder have stopped changing: call ``ready(now)`` on every look."""

    folder: Path
    settle: float = 5.0
    _seen: dict = field(default_factory=dict)  # path -> (size, mtime, stable since)

    def ready(self, now: float) -> tuple[list[HotFile], int]:
        """(files unchanged for ``settle`` seconds, files still changing)."""
        found, waiting, current = [], 0, set()
        for path, dossier in self._candidates():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            current.add(path)
            signature = (stat.st_size, stat.st_mtime_ns)
            previous = self._seen.get(path)
            if previous is None or previous[:2] != signature:
                self._seen[path] = (*signature, now)
                waiting += 1
            elif now - previous[2] >= self.settle and stat.st_size > 0:
                found.append(HotFile(path, dossier, title_and_order(path.stem)[0] or path.stem))
            else:
                waiting += 1
        for gone in set(self._seen) - current:
            del self._seen[gone]
        return found, waiting

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)

    def _candidates(self):
        for entry in sorted(self.folder.iterdir()):
            if _skipped(entry.name) or entry.name in (DONE, FAILED):
                continue
            if entry.is_file():
                yield entry, None
            elif entry.is_dir():
                for inner in sorted(entry.iterdir()):
                    if inner.is_file() and not _skipped(inner.name):
                        yield inner, entry.name


def _skipped(name: str) -> bool:
    return ignored_name(name) or name.lower().endswith(TEMPORARY_SUFFIXES)


def move_done(folder: Path, hot: HotFile, code: str) -> Path:
    return _move(hot.path, folder / DONE / code)


def move_failed(folder: Path, hot: HotFile, message: str) -> Path:
    target = _move(hot.path, folder / FAILED)
    target.with_name(target.name + ".error.txt").write_text(message + "\n", encoding="utf-8")
    return target


def _move(path: Path, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target, n = directory / path.name, 1
    while target.exists():  # the same name scanned again: keep both
        n += 1
        target = directory / f"{path.stem} ({n}){path.suffix}"
    path.rename(target)
    return target


def run(folder: Path, handle: Callable[[HotFile], str], *, settle: float = 5.0, poll: float = 1.0,
        once: bool = False, on_event: Callable[[str, HotFile, str], None] | None = None,
        clock=time.monotonic, sleep=time.sleep) -> int:
    """Watch ``folder``: ``handle(file)`` stores one file and returns its dossier code, or raises
    (its message goes into the error file). With ``once``, stop when no file is left waiting.
    Returns the number of files taken."""
    folder = Path(folder)
    (folder / DONE).mkdir(parents=True, exist_ok=True)
    (folder / FAILED).mkdir(parents=True, exist_ok=True)
    watcher, taken = Watcher(folder, settle), 0
    report = on_event or (lambda *a: None)
    while True:
        ready, waiting = watcher.ready(clock())
        for hot in ready:
            taken += 1
            watcher.forget(hot.path)
            if not supported_name(hot.path.name):
                moved = move_failed(folder, hot, f"Tệp {hot.path.name}: chỉ nhận JPEG, PNG, TIFF, PDF")
                report("failed", hot, str(moved))
                continue
            try:
                code = handle(hot)
            except Exception as exc:  # one bad file never stops the folder
                described = describe(exc)
                message = f"{described.message_vi}\n({described.detail})" if described.detail else described.message_vi
                move_failed(folder, hot, f"Không số hóa được {hot.path.name}:\n{message}")
                report("failed", hot, message)
                continue
            report("done", hot, str(move_done(folder, hot, code)))
        if once and not ready and not waiting:
            return taken
        sleep(poll)
