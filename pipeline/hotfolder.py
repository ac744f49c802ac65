"""A hot folder for network scanners: ``sohoa watch FOLDER``.

A scanner (or an operator) drops files into ``FOLDER/<dossier code>/``; a file dropped into
FOLDER itself names its dossier by the receipt QR code on its first page. Each file is one
document, titled by its name. A file is taken only once it has stopped changing (the same
size and modification time for ``settle`` seconds: scanners write over the network slowly),
then moved to ``FOLDER/done/<code>/`` once stored, or to ``FOLDER/failed/`` with
``<name>.error.txt`` beside it saying why, in Vietnamese. Nothing is ever deleted; a file
moved back from ``failed/`` is tried again. Hidden and temporary files (``.*``, ``~$*``,
``*.part``, ``*.tmp``, ``*.filepart``, macOS's ``*.sb-*``, ``*~``) are left alone, as are
``done/`` and ``failed/``.

A file is read once it has settled, and only if it is still as it settled; a file that changed
while it was read (a scanner that paused longer than ``settle``, then wrote on) is not moved: it
is taken again once it settles, and the operator is told which document was stored from the
part read. A file in ``done/`` that changes within ``WATCH_DONE_SECONDS`` is reported the same
way. Within a dossier's folder the files go in in natural order of their names (scan_2 before
scan_10), as ``sohoa bulk`` orders them. Links, folders inside a dossier's folder and files that
cannot be moved are reported once and left where they are; the watch goes on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .bulk_plan import ignored_name, natural_key, supported_name, title_and_order
from .errors import describe
from .inputs import without_extension

DONE, FAILED = "done", "failed"
TEMPORARY_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".filepart", "~")
WATCH_DONE_SECONDS = 600.0  # a file moved to done/ that changes within this was still being written
EMPTY_SETTLE_FACTOR = 3     # an empty file waits this many times ``settle``: a scanner may create it first


@dataclass(frozen=True)
class HotFile:
    path: Path
    dossier: str | None  # from its sub-folder; None: from the receipt QR code on its first page
    title: str
    signature: tuple[int, int] = (0, 0)  # (size, modification time in ns) when it settled


@dataclass(frozen=True)
class Taken:
    """What ``handle`` made of one file: its dossier, its document, and what the operator should
    know (pages to look at again, a document already there)."""

    dossier: str
    doc_id: str = ""
    notes: tuple[str, ...] = ()


@dataclass
class Watcher:
    """Which files of the folder have stopped changing: call ``ready(now)`` on every look."""

    folder: Path
    settle: float = 5.0
    _seen: dict = field(default_factory=dict)  # path -> (size, mtime, stable since)
    _said: set = field(default_factory=set)    # what was reported once (a link, a folder, a stuck file)
    unreadable: dict = field(default_factory=dict)  # a dossier's folder that could not be listed -> why

    def ready(self, now: float) -> tuple[list[HotFile], int]:
        """(files unchanged for ``settle`` seconds, files still changing). OSError when the folder
        itself cannot be read (the share unmounted)."""
        found, waiting, current = [], 0, set()
        for path, dossier in self._candidates():
            signature = _signature(path)
            if signature is None:
                continue
            current.add(path)
            previous = self._seen.get(path)
            wait = self.settle * (EMPTY_SETTLE_FACTOR if signature[0] == 0 else 1)
            if previous is None or previous[:2] != signature:
                self._seen[path] = (*signature, now)
                waiting += 1
            elif now - previous[2] >= wait and (path, signature) not in self._said:
                stem = without_extension(path.name)
                found.append(HotFile(path, dossier, title_and_order(stem)[0] or stem, signature))
            elif (path, signature) not in self._said:
                waiting += 1
        for gone in set(self._seen) - current:
            del self._seen[gone]
        return found, waiting

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)

    def first_time(self, what) -> bool:
        """Whether ``what`` is reported for the first time (then it is remembered)."""
        if what in self._said:
            return False
        self._said.add(what)
        return True

    def forget_said(self, which: Callable[[tuple], bool]) -> None:
        """Forget what was said of these (the trouble is over: a next one is said again)."""
        self._said = {what for what in self._said if not which(what)}

    def odd_entries(self) -> list[tuple[Path, str]]:
        """Links and folders inside a dossier's folder, each with why it is left alone."""
        odd = []
        for entry in _listed(self.folder):
            if _skipped(entry.name) or entry.name in (DONE, FAILED):
                continue
            if entry.is_symlink():
                odd.append((entry, "là liên kết (symlink): không theo liên kết ra ngoài thư mục máy quét"))
            elif entry in self.unreadable:
                exc = self.unreadable[entry]
                odd.append((entry, f"không đọc được ({exc.strerror or exc}): các tệp trong đó chưa được xét"))
            elif entry.is_dir():
                try:
                    inner_entries = _listed(entry)
                except OSError:
                    continue  # said on the next look, from ``unreadable``
                for inner in inner_entries:
                    if _skipped(inner.name):
                        continue
                    if inner.is_symlink():
                        odd.append((inner, "là liên kết (symlink): không theo liên kết ra ngoài thư mục máy quét"))
                    elif inner.is_dir():
                        odd.append((inner, "là thư mục con trong thư mục hồ sơ: không xét; đặt tệp thẳng vào "
                                           f"thư mục {entry.name}"))
        return odd

    def _candidates(self):
        self.unreadable = {}
        for entry in _listed(self.folder):
            if _skipped(entry.name) or entry.name in (DONE, FAILED) or entry.is_symlink():
                continue
            if entry.is_file():
                yield entry, None
            elif entry.is_dir():
                try:
                    inner_entries = _listed(entry)
                except OSError as exc:  # one dossier's folder (its rights, moved away): the others go on
                    self.unreadable[entry] = exc
                    continue
                for inner in inner_entries:
                    if inner.is_file() and not inner.is_symlink() and not _skipped(inner.name):
                        yield inner, entry.name


def _listed(folder: Path) -> list[Path]:
    """The entries of a folder in natural order of their names (scan_2 before scan_10)."""
    return sorted(folder.iterdir(), key=lambda p: natural_key(p.name))


def _signature(path: Path) -> tuple[int, int] | None:
    """(size, modification time in ns), or None when the file is gone or cannot be looked at (a
    share that dropped: the file is then left alone)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _skipped(name: str) -> bool:
    lowered = name.lower()
    return ignored_name(name) or lowered.endswith(TEMPORARY_SUFFIXES) or ".sb-" in lowered  # macOS over SMB


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


def _moving_failed(hot: HotFile, to: str, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"tệp {hot.path.name} không còn ở đó (đã bị xóa hoặc chuyển đi trong lúc đọc), không chuyển vào {to}/"
    reason = "không có quyền" if isinstance(exc, PermissionError) else exc.strerror or type(exc).__name__
    return (f"không chuyển được {hot.path.name} vào {to}/ ({reason}); tệp để nguyên chỗ cũ, không số hóa lại "
            "khi chưa thay đổi")


def run(folder: Path, handle: Callable[[HotFile], Taken | str], *, settle: float = 5.0, poll: float = 1.0,
        once: bool = False, on_event: Callable[[str, HotFile, str], None] | None = None,
        clock=time.monotonic, sleep=time.sleep) -> int:
    """Watch ``folder``: ``handle(file)`` stores one file and returns what it made (``Taken``, or
    the dossier code), or raises (its message goes into the error file). With ``once``, stop when
    no file is left waiting. Returns the number of files taken. Events: ``done``, ``failed``,
    ``changed`` (read while it changed: not moved), ``changed-in-done``, ``left`` (a link, a folder
    or a file that cannot be moved), ``unreadable`` (the folder itself)."""
    folder = Path(folder)
    (folder / DONE).mkdir(parents=True, exist_ok=True)
    (folder / FAILED).mkdir(parents=True, exist_ok=True)
    watcher, taken = Watcher(folder, settle), 0
    report = on_event or (lambda *a: None)
    moved: dict[Path, tuple[tuple[int, int] | None, str, float]] = {}  # done/ file -> (signature, document, until)
    while True:
        try:
            ready, waiting = watcher.ready(clock())
            odd = watcher.odd_entries()
        except OSError as exc:  # the share unmounted or renamed: said once an outage, looked at again
            if watcher.first_time(("folder", str(exc))):
                report("unreadable", HotFile(folder, None, ""), f"không đọc được thư mục {folder}: "
                       f"{exc.strerror or exc}; thử lại sau")
            if once:
                return taken
            sleep(poll)
            continue
        watcher.forget_said(lambda what: what[0] == "folder")  # readable again: a next outage is said again
        for path, why in odd:
            if watcher.first_time(("odd", path, why)):
                report("left", HotFile(path, None, path.name), f"{path.name} {why}")
        watcher.forget_said(lambda what: what[0] == "odd" and not any(what[1:] == o for o in odd))
        for hot in ready:
            try:
                taken += _take(folder, hot, handle, watcher, report, moved, clock)
            except OSError as exc:  # the share dropped while the file was looked at: left, said once
                if watcher.first_time((hot.path, hot.signature)):
                    report("left", hot, f"{hot.path.name}: lỗi đọc ghi thư mục máy quét ({exc.strerror or exc}); "
                                        "tệp để nguyên, xét lại khi thư mục đọc được")
        _look_at_done(moved, clock(), report)
        if once and not ready and not waiting:
            return taken
        sleep(poll)


def _take(folder: Path, hot: HotFile, handle, watcher: Watcher, report, moved: dict, clock) -> int:
    """One settled file: stored and moved to done/, or refused and moved to failed/, or left as it
    is (it changed, it cannot be moved). Returns 1 when it was stored or refused, else 0."""
    watcher.forget(hot.path)  # whatever becomes of it, it settles anew before it is taken again
    if _signature(hot.path) != hot.signature:  # it changed since this look began
        return 0
    if not supported_name(hot.path.name, hot.path):
        reason = f"Tệp {hot.path.name}: chỉ nhận JPEG, PNG, TIFF, PDF"
        _fail(folder, hot, reason, reason, watcher, report)
        return 1
    try:
        made = handle(hot)
    except Exception as exc:  # one bad file never stops the folder
        described = describe(exc)
        message = f"{described.message_vi}\n({described.detail})" if described.detail else described.message_vi
        if _signature(hot.path) not in (hot.signature, None):
            report("changed", hot, f"{hot.path.name} thay đổi trong lúc đọc (máy quét vẫn đang ghi?): "
                                   "để nguyên, sẽ đọc lại khi ghi xong")
            return 0
        _fail(folder, hot, f"Không số hóa được {hot.path.name}:\n{message}", message, watcher, report)
        return 1
    made = made if isinstance(made, Taken) else Taken(made)
    if _signature(hot.path) not in (hot.signature, None):
        report("changed", hot, f"{hot.path.name} thay đổi trong lúc đọc (máy quét vẫn đang ghi?): tài liệu "
                               f"{made.doc_id or made.dossier} vừa lưu từ phần đã đọc, có thể thiếu trang; tệp "
                               "để nguyên và sẽ được số hóa lại khi ghi xong")
        return 0
    try:
        target = move_done(folder, hot, made.dossier)
    except OSError as exc:
        if watcher.first_time((hot.path, hot.signature)):
            report("left", hot, f"đã số hóa {hot.path.name} ({made.doc_id or made.dossier}) nhưng "
                                + _moving_failed(hot, f"{DONE}/{made.dossier}", exc))
        return 1
    # as it settled: a write between the last look and the move shows in done/
    moved[target] = (hot.signature, made.doc_id or made.dossier, clock() + WATCH_DONE_SECONDS)
    report("done", hot, "; ".join((str(target), *made.notes)))
    return 1


def _fail(folder: Path, hot: HotFile, written: str, shown: str, watcher: Watcher, report) -> None:
    """Move the file to failed/ with ``written`` beside it, and report ``shown``."""
    try:
        move_failed(folder, hot, written)
    except OSError as exc:
        if watcher.first_time((hot.path, hot.signature)):
            report("left", hot, shown.splitlines()[0] + "; " + _moving_failed(hot, FAILED, exc))
        return
    report("failed", hot, shown)


def _look_at_done(moved: dict, now: float, report) -> None:
    """Report a file moved to done/ that changed since (the scanner wrote on into it), once."""
    for target, (signature, document, until) in list(moved.items()):
        now_signature = _signature(target)
        if now > until or now_signature is None:  # its time is over, or the operator took it away
            del moved[target]
        elif now_signature != signature:
            del moved[target]
            report("changed-in-done", HotFile(target, None, target.stem),
                   f"{target.name} trong {DONE}/ thay đổi sau khi đã số hóa (máy quét vẫn đang ghi?): tài liệu "
                   f"{document} có thể thiếu trang; chuyển tệp về thư mục hồ sơ để số hóa lại")
