"""The counter's scanner, through SANE's own command-line frontend ``scanimage`` (Debian
``sane-utils``): the document feeder (ADF), duplex or the flatbed, 300 dpi colour by default.

``scan_pages`` scans one bundle of paper into ``out_dir/page-0001.tif``, ``page-0002.tif``, ...
and returns them only when every page the scanner reported came out as a readable image:

1. the device is the one configured, or the only one ``scanimage -L`` finds (several: the
   operator chooses; none: a clear error);
2. the device's own options (``scanimage -d DEVICE -A``) turn the logical choices (``adf``,
   ``duplex``, ``flatbed``; ``color``, ``gray``, ``lineart``) into its values ("ADF Front",
   "Automatic Document Feeder", "ADF Duplex", "24bit Color", ...), and a resolution the device
   cannot scan at is refused before any paper moves;
3. ``scanimage --batch`` scans until the feeder is empty (or the number of pages asked for);
   scanimage reports every page on stderr ("Scanned page N. (scanner status = S)"), and a page
   that ended with any status but success (jammed, cover open, I/O error ...) fails the scan;
4. the pages the scanner reported are counted against the images received (every one decoded
   in full): a misfeed, an empty or truncated image fails the scan ("Máy quét báo N trang nhưng
   chỉ nhận được M ảnh"); so do a feeder that ran empty before the pages asked for and a bundle
   larger than ``max_pages``;
5. each image is written again, losslessly (Deflate; CCITT G4 for 1-bit), keeping its pixels and
   its resolution header (so the page-size logic finds 300 dpi), with the scan's time, device and
   page number in its TIFF tags: two blank backs of a duplex scan are two different files.

Nothing here reads sohoa's settings or the environment; every failure is a ``ScannerError``
(exit status INPUT, code "scanner") with a Vietnamese message that names the device.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

from .errors import ExitCode, SohoaError

SOURCES = ("adf", "duplex", "flatbed")
MODES = ("color", "gray", "lineart")
PAGE_NAME = "page-{:04d}.tif"
RAW_DIR = ".scanimage"          # scanimage's own files, inside out_dir, removed afterwards
SOFTWARE = "sohoa scan (SANE scanimage)"

# SANE_Status values (sane.h); scanimage reports them as "(scanner status = N)" and exits with them
STATUS_GOOD, STATUS_EOF, STATUS_NO_DOCS = 0, 5, 7
STATUS_VI = {
    1: "thao tác không được máy quét hỗ trợ",
    2: "lần quét đã bị hủy",
    3: "máy quét đang bận (một chương trình khác đang dùng?)",
    4: "máy quét từ chối tham số quét",
    6: "kẹt giấy trong khay nạp",
    7: "khay nạp không có giấy",
    8: "nắp máy quét đang mở",
    9: "lỗi truyền dữ liệu với máy quét (cáp, nguồn?)",
    10: "máy quét hết bộ nhớ",
    11: "không có quyền dùng máy quét (tài khoản chưa ở nhóm scanner?)",
}


class ScannerError(SohoaError):
    """The scanner could not deliver every page of the bundle; nothing was ingested."""

    exit_code, code = ExitCode.INPUT, "scanner"

    def __init__(self, device: str | None, message_vi: str, detail: str = ""):
        self.device = device
        super().__init__(message_vi, detail)


@dataclass(frozen=True)
class ScanSettings:
    """What to scan with. ``source`` and ``mode`` take the logical names above or the device's
    own value (``scanimage -d DEVICE -A``); ``pages`` is the number of images expected (duplex:
    two per sheet), None to scan until the feeder is empty."""

    device: str | None = None       # SANE device name (scanimage -L); None: the only one found
    source: str = "adf"
    resolution: int = 300
    mode: str = "color"
    pages: int | None = None
    max_pages: int = 100            # a bundle larger than this is refused (None pages only)
    timeout_s: float = 1800.0       # the whole scan; a scanner that hangs is stopped after it
    extra_options: tuple[str, ...] = ()   # device-specific scanimage options, passed last


@dataclass(frozen=True)
class ScannerDevice:
    name: str
    vendor: str = ""
    model: str = ""
    type: str = ""

    def __str__(self) -> str:
        about = " ".join(p for p in (self.vendor, self.model) if p)
        return f"{self.name} ({about}{', ' + self.type if self.type else ''})" if about else self.name


@dataclass(frozen=True)
class ScanResult:
    files: tuple[Path, ...]
    reported_pages: int | None      # pages scanimage reported as scanned
    device: str
    source: str = ""                # the device's --source value used ("" when it has none)
    mode: str = ""                  # the device's --mode value used
    resolution: int = 0
    feeder_empty: bool = False      # the batch ended because the feeder ran out of paper
    command: tuple[str, ...] = ()

    def to_json(self) -> dict:
        """What ``--json`` shows of a scan (the files are working copies, gone once ingested)."""
        return {"device": self.device, "source": self.source, "mode": self.mode, "resolution": self.resolution,
                "reportedPages": self.reported_pages, "images": len(self.files), "feederEmpty": self.feeder_empty}


@dataclass(frozen=True)
class DeviceOption:
    """One option of ``scanimage -A``: its name, its choices (string or number list) or range."""

    name: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    default: str = ""

    @property
    def inactive(self) -> bool:
        return self.default == "inactive"


@dataclass(frozen=True)
class BatchLog:
    """What scanimage said on stderr about a batch."""

    pages: tuple[tuple[int, int], ...] = ()    # (page number, SANE status) per "Scanned page" line
    terminated: int | None = None              # "Batch terminated, N pages scanned"
    feeder_empty: bool = False                 # "sane_start: Document feeder out of documents"
    messages: tuple[str, ...] = ()             # "scanimage: ..." lines (errors, in English)

    @property
    def good_pages(self) -> int:
        return sum(1 for _, status in self.pages if status in (STATUS_GOOD, STATUS_EOF))

    @property
    def failed_page(self) -> tuple[int, int] | None:
        return next(((n, s) for n, s in self.pages if s not in (STATUS_GOOD, STATUS_EOF)), None)


# --------------------------------------------------------------------------- pure parts

_SCANNED = re.compile(r"^Scanned page (\d+)\. \(scanner status = (\d+)\)")
_TERMINATED = re.compile(r"^Batch terminated, (\d+) pages? scanned")
_OPTION = re.compile(r"^ {4}(--?[A-Za-z0-9][\w-]*)(\[=\((?P<bool>[^)]*)\)\])?(?: (?P<spec>.*?))? \[(?P<default>[^\]]*)\]\s*$")
_RANGE = re.compile(r"^(-?[\d.]+)\.\.(-?[\d.]+)")


def parse_log(stderr: str) -> BatchLog:
    pages, terminated, empty, messages = [], None, False, []
    for line in stderr.splitlines():
        line = line.strip()
        if m := _SCANNED.match(line):
            pages.append((int(m[1]), int(m[2])))
        elif m := _TERMINATED.match(line):
            terminated = int(m[1])
        elif line.startswith("scanimage:"):
            messages.append(line)
            if "sane_start" in line and "out of documents" in line:
                empty = True
    return BatchLog(tuple(pages), terminated, empty, tuple(messages))


def parse_options(text: str) -> dict[str, DeviceOption]:
    """The options of ``scanimage -d DEVICE -A``, by name (``--source``, ``--mode``, ``-x`` ...)."""
    options = {}
    for line in text.splitlines():
        m = _OPTION.match(line)
        if not m:
            continue
        name, spec, default = m[1], (m["spec"] or "").strip(), m["default"].strip()
        if m["bool"]:
            options[name] = DeviceOption(name, tuple(m["bool"].split("|")), default=default)
        elif r := _RANGE.match(spec):
            options[name] = DeviceOption(name, low=float(r[1]), high=float(r[2]), default=default)
        elif spec and not spec.startswith("<"):
            values = spec.split("|")
            values[-1] = re.sub(r"(?<=\d)(dpi|mm|pel|bit|us|%)$", "", values[-1])  # the unit after the last value
            options[name] = DeviceOption(name, tuple(v.strip() for v in values), default=default)
        else:
            options[name] = DeviceOption(name, default=default)
    return options


def _norm(value: str) -> str:
    return " ".join(value.lower().replace("_", " ").split())


def resolve_source(device: str, wanted: str, options: dict[str, DeviceOption]) -> tuple[str, tuple[str, ...]]:
    """(the device's --source value or "", further options) for ``adf``, ``duplex``, ``flatbed``
    or one of the device's own values."""
    option = options.get("--source")
    choices = option.choices if option else ()
    logical = {"adf": "adf", "feeder": "adf", "adf duplex": "duplex", "duplex": "duplex",
               "flatbed": "flatbed"}.get(_norm(wanted))
    exact = next((c for c in choices if _norm(c) == _norm(wanted)), None)
    if exact is not None and logical is None:
        return exact, ()
    if logical is None:
        raise ScannerError(device, f"Máy quét «{device}» không có nguồn giấy «{wanted}»; "
                                   f"các nguồn có: {', '.join(choices) or '(không có lựa chọn nguồn)'}",
                           f"source {wanted!r} not among {list(choices)}")
    feeders = [c for c in choices if re.search(r"adf|feeder|document|automatic", c, re.I)]
    if logical == "flatbed":
        if not choices:
            return "", ()
        found = next((c for c in choices if re.search(r"flatbed|platen|normal", c, re.I)), None)
        if found is None:
            raise ScannerError(device, f"Máy quét «{device}» không có mặt kính (flatbed); "
                                       f"các nguồn có: {', '.join(choices)}", f"no flatbed among {list(choices)}")
        return found, ()
    if logical == "duplex":
        found = next((c for c in choices if "duplex" in c.lower()), None)
        if found is not None:
            return found, ()
        adf_mode = options.get("--adf-mode")   # epson2, epsonds: ADF source plus --adf-mode Duplex
        simplex = [c for c in feeders if not re.search(r"back|rear", c, re.I)]
        if adf_mode and simplex and "Duplex" in adf_mode.choices:
            return simplex[0], ("--adf-mode", "Duplex")
        raise ScannerError(device, f"Máy quét «{device}» không quét được hai mặt (duplex); "
                                   f"các nguồn có: {', '.join(choices) or '(không có lựa chọn nguồn)'}",
                           f"no duplex source among {list(choices)}")
    simplex = [c for c in feeders if not re.search(r"duplex|back|rear", c, re.I)]
    if not simplex:
        raise ScannerError(device, f"Máy quét «{device}» không có khay nạp giấy (ADF); "
                                   f"các nguồn có: {', '.join(choices) or '(không có lựa chọn nguồn)'}",
                           f"no document feeder among {list(choices)}")
    return next((c for c in simplex if "front" in c.lower()), simplex[0]), ()


def resolve_mode(device: str, wanted: str, options: dict[str, DeviceOption]) -> str:
    option = options.get("--mode")
    if option is None or not option.choices:
        return ""
    exact = next((c for c in option.choices if _norm(c) == _norm(wanted)), None)
    if exact is not None:
        return exact
    patterns = {"color": r"colou?r", "colour": r"colou?r", "gray": r"gr[ae]y", "grey": r"gr[ae]y",
                "lineart": r"lineart|binary|black ?& ?white|^bw$|monochrome"}
    pattern = patterns.get(_norm(wanted))
    found = [c for c in option.choices if pattern and re.search(pattern, c, re.I)]
    if not found:
        raise ScannerError(device, f"Máy quét «{device}» không có chế độ màu «{wanted}»; "
                                   f"các chế độ có: {', '.join(option.choices)}",
                           f"mode {wanted!r} not among {list(option.choices)}")
    return next((c for c in found if not re.search(r"16|48", c)), found[0])  # 8 bits per sample first


def check_resolution(device: str, resolution: int, options: dict[str, DeviceOption]) -> None:
    option = options.get("--resolution")
    if option is None:
        raise ScannerError(device, f"Máy quét «{device}» không cho chọn độ phân giải", "no --resolution option")
    if option.low is not None and option.high is not None:
        if not option.low <= resolution <= option.high:
            raise ScannerError(device, f"Máy quét «{device}» không quét được ở {resolution} dpi "
                                       f"(chỉ từ {option.low:g} đến {option.high:g} dpi)",
                               f"resolution {resolution} outside {option.low:g}..{option.high:g}")
    elif option.choices and str(resolution) not in option.choices:
        raise ScannerError(device, f"Máy quét «{device}» không quét được ở {resolution} dpi "
                                   f"(các độ phân giải có: {', '.join(option.choices)} dpi)",
                           f"resolution {resolution} not among {list(option.choices)}")


def batch_count(settings: ScanSettings, source: str) -> int:
    """How many images scanimage is asked for: the pages expected, one on the flatbed, else one
    more than ``max_pages`` (so a larger bundle shows, rather than being silently cut)."""
    if settings.pages is not None:
        return settings.pages
    if not source or re.search(r"flatbed|platen|normal", source, re.I):
        return 1
    return settings.max_pages + 1


def build_command(program: str, device: str, settings: ScanSettings, options: dict[str, DeviceOption],
                  raw_dir: Path) -> tuple[list[str], str, str]:
    """(scanimage's argument list, the --source value, the --mode value) for this device."""
    source, source_extra = resolve_source(device, settings.source, options)
    mode = resolve_mode(device, settings.mode, options)
    check_resolution(device, settings.resolution, options)
    flatbed = not source or bool(re.search(r"flatbed|platen|normal", source, re.I))
    if flatbed and (settings.pages or 1) > 1:
        raise ScannerError(device, f"Mặt kính của máy quét «{device}» quét mỗi lần một trang; "
                                   f"muốn quét {settings.pages} trang hãy dùng khay nạp (ADF)",
                           "flatbed scans one page at a time")
    command = [program, "-d", device, f"--batch={raw_dir / 'raw-%04d.tif'}", "--format=tiff",
               f"--batch-count={batch_count(settings, source)}"]
    if source:
        command += ["--source", source, *source_extra]
    if mode:
        command += ["--mode", mode]
    depth = options.get("--depth")   # 8 bits per sample where the device would send 16 (never an inactive option)
    if depth and not depth.inactive and depth.default != "8" and "8" in depth.choices \
            and not re.search(r"lineart|binary|black|^bw$|monochrome", mode, re.I):
        command += ["--depth", "8"]
    command += ["--resolution", str(settings.resolution), *settings.extra_options]
    return command, source, mode


def check_page_count(device: str, reported: int, received: int, unreadable: Sequence[int] = ()) -> None:
    """The pages the scanner reported against the images received: any difference is a misfeed,
    a jam or a lost image, and fails the scan (a document must hold every page of the paper)."""
    if reported == received:
        return
    bad = f" (ảnh trang {', '.join(map(str, unreadable))} rỗng hoặc hỏng)" if unreadable else ""
    word = "chỉ nhận được" if received < reported else "lại nhận được"
    raise ScannerError(device, f"Máy quét «{device}» báo {reported} trang nhưng {word} {received} ảnh{bad}: "
                               "có thể giấy bị kẹt hoặc kéo lệch. Hãy xếp lại cả tập giấy và quét lại.",
                       f"scanner reported {reported} pages, {received} readable images")


# --------------------------------------------------------------------------- the scanner

def scanimage_program(device: str | None = None) -> str:
    program = shutil.which("scanimage")
    if program is None:
        raise ScannerError(device, "Chưa cài chương trình quét scanimage (gói Debian sane-utils) nên chưa dùng được "
                                   f"máy quét «{device or 'chưa chọn'}»; hãy chạy scripts/setup.sh hoặc "
                                   "apt-get install sane-utils", "scanimage not found on PATH")
    return program


def list_devices(timeout_s: float = 90.0) -> list[ScannerDevice]:
    """The scanners SANE finds (``scanimage -f``): USB, network (escl, airscan ...) and the ones
    the backends' configuration names. Probing the network can take some seconds."""
    program = scanimage_program()
    try:
        done = subprocess.run([program, "-f", "sohoa-device\t%d\t%v\t%m\t%t%n"], capture_output=True,
                              text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ScannerError(None, f"Tìm máy quét quá {timeout_s:g} giây mà chưa xong (máy quét: chưa chọn)",
                           "scanimage -f timed out") from None
    devices = []
    for line in done.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == "sohoa-device" and len(parts) == 5 and parts[1]:
            devices.append(ScannerDevice(*parts[1:]))
    return devices


def choose_device(device: str | None) -> str:
    if device:
        return device
    found = list_devices()
    if not found:
        raise ScannerError(None, "Không tìm thấy máy quét nào (máy quét: chưa chọn). Kiểm tra cáp, nguồn, "
                                 "mạng và quyền dùng máy quét (nhóm scanner), hoặc chọn máy quét bằng --device",
                           "scanimage -L found no device")
    if len(found) > 1:
        raise ScannerError(None, "Tìm thấy nhiều máy quét (máy quét: chưa chọn), hãy chọn một bằng --device: "
                                 + "; ".join(map(str, found)), f"{len(found)} devices found")
    return found[0].name


def device_options(program: str, device: str, timeout_s: float = 120.0) -> dict[str, DeviceOption]:
    """The device's options, read by opening it (``scanimage -d DEVICE -A``); an error naming the
    device and the scanners found when it cannot be opened."""
    try:
        done = subprocess.run([program, "-d", device, "-A"], capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ScannerError(device, f"Máy quét «{device}» không trả lời sau {timeout_s:g} giây",
                           "scanimage -A timed out") from None
    if done.returncode != 0 or "All options specific to device" not in done.stdout:
        detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        reason = ("máy quét đang bận (một chương trình khác đang dùng?)" if "busy" in detail.lower() else
                  "không có quyền dùng máy quét (tài khoản chưa ở nhóm scanner?)" if "denied" in detail.lower() else
                  "không có máy quét này, hoặc máy chưa bật, chưa cắm cáp, chưa nối mạng")
        try:
            found = [d.name for d in list_devices()]
        except ScannerError:
            found = []
        raise ScannerError(device, f"Không mở được máy quét «{device}»: {reason}. Máy quét tìm thấy: "
                                   f"{', '.join(found) or 'không có'}", detail)
    return parse_options(done.stdout)


def _run_batch(command: list[str], timeout_s: float,
               on_page: Callable[[int], None] | None) -> tuple[int, str, bool]:
    """Run scanimage, passing on each page as it is reported; (exit status, stderr, timed out)."""
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout_s, stop)
    timer.start()
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            m = _SCANNED.match(line.strip())
            if m and on_page is not None and int(m[2]) in (STATUS_GOOD, STATUS_EOF):
                on_page(int(m[1]))
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:   # interrupted (Ctrl-C) or the callback failed: stop the scanner
            proc.kill()
            proc.wait()
        proc.stderr.close()
    return proc.returncode, "".join(lines), timed_out.is_set()


def _read_page(path: Path):
    """The page's image, decoded in full, or None when it is empty or truncated."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            return img.copy(), img.info.get("dpi")
    except (OSError, SyntaxError, ValueError):
        return None


def _write_page(image, dpi, path: Path, number: int, total: int, device: str, scanned: datetime) -> None:
    """The scanned pixels unchanged, losslessly compressed, with the resolution header and the
    scan's time, device and page number (ASCII TIFF tags)."""
    from PIL import TiffImagePlugin

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[305] = SOFTWARE                                  # Software
    tags[306] = scanned.strftime("%Y:%m:%d %H:%M:%S")     # DateTime
    tags[270] = (f"Scanned {scanned.isoformat(timespec='seconds')} on SANE device "
                 f"{device.encode('ascii', 'replace').decode()}, page {number} of {total}")  # ImageDescription
    compression = "group4" if image.mode == "1" else "tiff_adobe_deflate"
    partial = path.with_suffix(".part")
    image.save(partial, format="TIFF", compression=compression, tiffinfo=tags,
               **({"dpi": tuple(float(v) for v in dpi)} if dpi else {}))
    partial.replace(path)


def check_batch(device: str, status: int, log: BatchLog) -> None:
    """scanimage's exit status and report against a complete batch: a page that ended with a SANE
    error (read), a scan that could not start (a jam or an open cover before the next page), an
    empty feeder before the first page, options the device refused. The feeder running out after
    at least one page is the normal end of a bundle."""
    last = log.messages[-1] if log.messages else f"scanimage exit status {status}"
    failed = log.failed_page
    normal_end = status == STATUS_GOOD or (status == STATUS_NO_DOCS and log.feeder_empty and log.good_pages > 0)
    started = any("sane_start" in m for m in log.messages)
    if failed is None and not normal_end and (log.pages or started):
        failed = (log.good_pages + 1, status)
    if failed is not None:
        page, code = failed
        if code == STATUS_NO_DOCS and log.good_pages == 0:
            raise ScannerError(device, f"Khay nạp của máy quét «{device}» không có giấy: hãy đặt tập giấy vào khay "
                                       "rồi quét lại", last)
        reason = STATUS_VI.get(code, f"lỗi SANE {code}")
        raise ScannerError(device, f"Máy quét «{device}» báo lỗi ở trang {page}: {reason}. Đã nhận "
                                   f"{log.good_pages} trang, chưa số hóa gì; hãy xếp lại cả tập giấy và quét lại.", last)
    if not normal_end or not log.pages:
        raise ScannerError(device, f"Máy quét «{device}» không quét được: {last}", last)


def scan_pages(settings: ScanSettings, out_dir: Path, *,
               on_page: Callable[[int], None] | None = None) -> ScanResult:
    """Scan one bundle into ``out_dir/page-0001.tif`` ... (see the module's description).
    ``on_page(n)`` is called as page n comes out of the scanner. On any failure no page file
    is left in ``out_dir``."""
    if settings.resolution <= 0 or settings.max_pages <= 0 or (settings.pages is not None and settings.pages <= 0):
        raise ScannerError(settings.device, "Độ phân giải, số trang và giới hạn số trang phải là số dương "
                                            f"(máy quét: {settings.device or 'chưa chọn'})",
                           "resolution, pages and max_pages must be positive")
    program = scanimage_program(settings.device)
    device = choose_device(settings.device)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.glob("page-*.tif")):
        raise ScannerError(device, f"Thư mục {out_dir} đã có ảnh quét; hãy quét bằng máy «{device}» vào một thư mục trống",
                           "out_dir already holds pages")
    options = device_options(program, device)
    raw_dir = out_dir / RAW_DIR
    command, source, mode = build_command(program, device, settings, options, raw_dir)
    shutil.rmtree(raw_dir, ignore_errors=True)
    raw_dir.mkdir(parents=True)
    files: list[Path] = []
    try:
        status, stderr, timed_out = _run_batch(command, settings.timeout_s, on_page)
        log = parse_log(stderr)
        if timed_out:
            raise ScannerError(device, f"Máy quét «{device}» không xong sau {settings.timeout_s:g} giây "
                                       f"(đã nhận {log.good_pages} trang); đã dừng lần quét", "scanimage timed out")
        check_batch(device, status, log)
        if settings.pages is not None and log.good_pages < settings.pages:
            raise ScannerError(device, f"Khay nạp của máy quét «{device}» hết giấy sau {log.good_pages} trang, "
                                       f"chưa đủ {settings.pages} trang cần quét", "feeder empty before pages")
        if settings.pages is None and log.good_pages > settings.max_pages:
            raise ScannerError(device, f"Tập giấy trên máy quét «{device}» dài hơn giới hạn {settings.max_pages} "
                                       "trang; hãy chia thành nhiều tài liệu hoặc tăng giới hạn số trang",
                               f"more than max_pages={settings.max_pages}")
        scanned = datetime.now().astimezone()
        unreadable = []
        for raw in sorted(raw_dir.glob("raw-*.tif")):
            page = _read_page(raw)
            if page is None:
                unreadable.append(int(raw.stem.split("-")[1]))
                continue
            image, dpi = page
            path = out_dir / PAGE_NAME.format(len(files) + 1)
            files.append(path)
            _write_page(image, dpi or (settings.resolution, settings.resolution), path, len(files),
                        log.good_pages, device, scanned)
        check_page_count(device, log.good_pages, len(files), unreadable)
        return ScanResult(tuple(files), log.good_pages, device, source, mode, settings.resolution,
                          log.feeder_empty, tuple(command))
    except BaseException:
        for path in files:
            path.unlink(missing_ok=True)
            path.with_suffix(".part").unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(raw_dir, ignore_errors=True)
