"""The ``sohoa`` command line: a door onto ``pipeline.service``.

Each command parses its arguments, calls one service operation and prints the result (in
Vietnamese, or as JSON with ``--json``). Errors go through one handler: the operator reads
the Vietnamese message, the exit status says which kind of failure it was
(``pipeline.errors.ExitCode``), and an unexpected error's traceback goes to
``SOHOA_HOME/logs/errors.log``.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import sys
import re
import logging
import threading
import time
import traceback
from contextlib import contextmanager
from datetime import date, datetime
from importlib.metadata import PackageNotFoundError, version
from zoneinfo import ZoneInfo
from pathlib import Path

from pipeline import config, service
from pipeline.config import Settings
from pipeline.errors import ExitCode, UsageError, describe
from pipeline.models import FLAG_VI, MAINTENANCE_VI, IngestRequest

MAINTENANCE_CODES = list(MAINTENANCE_VI)


def _print_json(value) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=1, default=str))


def number_vi(value: float, decimals: int = 0, sign: bool = False) -> str:
    """A number as a Vietnamese reader writes it: 7.352.198 and +2,50 (JSON keeps plain numbers)."""
    text = f"{value:{'+' if sign else ''},.{decimals}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def datetime_vi(iso: str) -> str:
    """01/12/2026 19:30 from an ISO 8601 time (shown in the time it was recorded in, Vietnam time)."""
    try:
        return datetime.fromisoformat(iso).strftime("%d/%m/%Y %H:%M")
    except (TypeError, ValueError):
        return str(iso)


class PageProgress:
    """Pages done of the total, pages per minute and time left, on one line of the operator's
    terminal. (Hand-written: tqdm silently disabled itself on some pseudo-terminals here.)"""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.started
        line = f"Đang xử lý: {done}/{total} trang"
        if done and elapsed > 0:
            left = (total - done) * elapsed / done
            line += f", {number_vi(60 * done / elapsed, 1)} trang/phút, còn khoảng {int(left // 60)}:{int(left % 60):02d}"
        self.stream.write("\r" + line.ljust(72))
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def cmd_ingest(args, settings: Settings) -> int:
    request = IngestRequest(args.dossier, tuple(args.files), args.title, maintenance=args.maintenance,
                            paper_file_code=args.paper_file_code, jobs=args.jobs, unsigned=args.unsigned,
                            change_recorded=args.change_recorded, paper_dates=_paper_dates(args))
    progress = PageProgress() if sys.stderr.isatty() and not args.json else None
    try:
        result = service.ingest(settings, request, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    return _report_ingest(args, result)


def _paper_dates(args) -> tuple[str, str] | None:
    """--start-date and --end-date as typed (the ingest checks them, as it checks a bulk list's)."""
    return (args.start_date or "", args.end_date or "") if args.start_date or args.end_date else None


def _report_ingest(args, result, scanned=None) -> int:
    for warning in result.warnings:
        print(f"CẢNH BÁO: {warning}", file=sys.stderr)
    if args.json:
        _print_json({**result.to_json(), **({"scan": scanned.to_json()} if scanned is not None else {})})
        return ExitCode.OK
    if scanned is not None:
        print(f"Đã quét {scanned.reported_pages} trang trên máy quét {scanned.device} "
              f"({scanned.source or 'nguồn mặc định'}, {scanned.resolution} dpi, {scanned.mode or 'chế độ mặc định'})")
    verb = "đã có sẵn (không tạo bản trùng)" if result.duplicate else "đã số hóa"
    print(f"Tài liệu {result.doc_id} {verb}: {len(result.pages)} trang, "
          f"PDF/A-2b {number_vi(result.pdf['size'])} byte, SHA-256 {result.pdf['sha256']}")
    if result.reused_pages:
        print(f"  ({result.reused_pages} trang đã xử lý ở lần chạy trước được dùng lại)")
    for p in result.pages:
        flags = ", ".join(FLAG_VI.get(f, f) for f in p.flags)
        print(f"  Trang {p.number} ({p.file} tr.{p.page}): xoay {p.orientation}°, "
              f"nghiêng {number_vi(p.skew_deg, 2, sign=True)}°, tin cậy OCR {number_vi(p.ocr_confidence)}%"
              + (f"  CẢNH BÁO: {flags}" if flags else ""))
    return ExitCode.OK


def cmd_scan(args, settings: Settings) -> int:
    request = IngestRequest(args.dossier, (), args.title, maintenance=args.maintenance,
                            paper_file_code=args.paper_file_code, jobs=args.jobs, unsigned=args.unsigned,
                            change_recorded=args.change_recorded, paper_dates=_paper_dates(args))
    terminal = sys.stderr.isatty() and not args.json

    def on_page(number: int) -> None:
        if terminal:
            sys.stderr.write(f"\rĐang quét: {number} trang".ljust(72))
            sys.stderr.flush()

    progress = PageProgress() if terminal else None
    try:
        scanned, result = service.scan(settings, request, device=args.device, source=args.source,
                                       resolution=args.resolution, mode=args.mode, pages=args.pages,
                                       max_pages=args.max_pages, progress=progress, on_page=on_page)
    finally:
        if terminal:
            sys.stderr.write("\n")
        if progress is not None:
            progress.close()
    return _report_ingest(args, result, scanned)


def cmd_scanners(args, settings: Settings) -> int:
    found = service.scanners()
    if args.json:
        _print_json([{"name": d.name, "vendor": d.vendor, "model": d.model, "type": d.type} for d in found])
        return ExitCode.OK
    if not found:
        print("Không tìm thấy máy quét nào (kiểm tra cáp, nguồn, mạng và quyền dùng máy quét: nhóm scanner)")
    for d in found:
        print(d)
    return ExitCode.OK


def cmd_show(args, settings: Settings) -> int:
    view = service.show(settings, args.dossier)
    if args.json:
        _print_json(view.to_json())
        return ExitCode.OK
    print(f"Hồ sơ {view.code}: {view.title}")
    print(f"  {view.total_doc} tài liệu, {view.number_of_page} trang, cập nhật {datetime_vi(view.updated)}")
    print(f"  Hồ sơ giấy {view.paper_file_code}; thời hạn bảo quản {view.maintenance_vi}; "
          + _dossier_dates_vi(view))
    for d in view.documents:
        sig = d.signature or {}
        signed = ("ký thử nghiệm" if sig.get("testSignature") else f"ký số {sig.get('level')}") if sig else "chưa ký"
        print(f"  - {d.doc_id}: {d.title} ({d.number_of_pages} trang, {signed}"
              + (f", {len(d.flagged_pages)} trang cần kiểm tra" if d.flagged_pages else "") + ")")
        for p in d.flagged_pages:
            print(f"      trang {p.number} ({p.file} tr.{p.page}): " + ", ".join(FLAG_VI.get(f, f) for f in p.flags))
    return ExitCode.OK


def _dossier_dates_vi(view) -> str:
    if not view.start_date:
        return "chưa có ngày"
    days = (date.fromisoformat(d).strftime("%d/%m/%Y") for d in (view.start_date, view.end_date))
    span = " – ".join(dict.fromkeys(days))
    return f"thời gian {span}" + (" (theo hồ sơ giấy)" if view.dates_from_paper else " (ngày số hóa)")


def cmd_export(args, settings: Settings) -> int:
    result = service.export(settings, args.dossier, Path(args.out))
    if args.json:
        _print_json(result.to_json())
        return ExitCode.OK
    print(f"Đã xuất {len(result.files) - 1} tài liệu của hồ sơ {result.code} vào {result.directory}")
    return ExitCode.OK


def cmd_link(args, settings: Settings) -> int:
    links = service.link(settings, args.dossier, args.doc_id, args.expires)
    if args.json:
        _print_json([link.to_json() for link in links])
        return ExitCode.OK
    for link in links:
        print(f"{link.doc_id}\t{link.url}")
    return ExitCode.OK


def cmd_audit(args, settings: Settings) -> int:
    if args.action == "anchor":
        anchor = service.audit_anchor(settings, force=args.force)
        if args.json:
            _print_json(anchor.to_json() if anchor else None)
        elif anchor is None:
            print("Không có dòng nhật ký mới từ lần neo trước; không neo (dùng --force để neo lại)")
        else:
            stamp = "có dấu thời gian RFC 3161" if anchor.timestamped else (
                f"KHÔNG có dấu thời gian ({anchor.timestamp_error})" if anchor.timestamp_error else "không dấu thời gian")
            print(f"Đã neo nhật ký: {anchor.rows} dòng, dòng cuối {anchor.sha256[:16]}…, {stamp}; lưu tại {anchor.key}")
        return ExitCode.OK
    if args.action == "verify":
        verdict = service.audit_verify(settings)
        if args.json:
            _print_json(verdict.to_json())
        else:
            for message, detail in verdict.problems:
                print(f"LỖI: {message} ({detail})", file=sys.stderr)
            if verdict.ok:
                print(f"Nhật ký nguyên vẹn: {verdict.rows} dòng, {verdict.anchors} lần neo "
                      f"({verdict.timestamped} có dấu thời gian); {verdict.unanchored_rows} dòng sau lần neo cuối")
            if verdict.ok and not verdict.anchors:
                # the chain alone cannot show rows cut off its end, nor a log lost whole with its database
                print("Lưu ý: chưa có lần neo nào, nên không phát hiện được các dòng cuối bị cắt bỏ hay cả nhật ký bị "
                      "mất (cơ sở dữ liệu mất hoặc thay mới). Neo định kỳ bằng 'sohoa audit anchor' (sohoa serve tự "
                      f"neo mỗi {settings.audit.anchor_interval} giây; chỉ dùng dòng lệnh: đặt lịch chạy lệnh này).")
        return ExitCode.OK if verdict.ok else ExitCode.CHECK_FAILED
    report = service.audit_log(settings, args.last)
    if args.json:
        _print_json(report.to_json())
        return ExitCode.OK if report.intact else ExitCode.CHECK_FAILED
    if not report.intact:
        print(f"LỖI: chuỗi băm của nhật ký kiểm tra đứt tại dòng {report.lines}: dòng này hoặc dòng trước nó đã bị "
              f"sửa, hoặc có dòng bị xóa (audit log hash chain broken at line {report.lines})", file=sys.stderr)
        return ExitCode.CHECK_FAILED
    for event in report.events:
        where = " ".join(str(event[k]) for k in ("dossier", "docId", "file") if event.get(k))
        outcome = {"success": "thành công", "failure": "THẤT BẠI", "duplicate": "đã có"}.get(event.get("outcome"),
                                                                                           event.get("outcome"))
        print(f"{datetime_vi(event.get('at'))}  {event.get('actor', '?'):<10} {event.get('action', '?'):<10} "
              f"{outcome:<11} {where}" + (f"  ({event['reason']})" if event.get("reason") else ""))
    # the chain alone cannot see rows cut from its end, nor a log rewritten whole: only the anchors
    # can, which 'audit verify' checks (it said "nguyên vẹn" over a truncated log; archive review)
    print(f"Chuỗi băm liền mạch qua {report.lines} dòng; đối chiếu với các lần neo (phát hiện dòng bị cắt ở cuối "
          f"hay nhật ký bị viết lại): sohoa audit verify (hash chain unbroken over {report.lines} lines)",
          file=sys.stderr)
    return ExitCode.OK


def cmd_info(args, settings: Settings) -> int:
    report = service.info(settings)
    if args.json:
        _print_json(report.to_json())
        return ExitCode.OK
    origin = "SOHOA_HOME" if report.home_origin == "SOHOA_HOME" else "mặc định của người dùng; đặt SOHOA_HOME để đổi"
    storage = report.storage
    where = storage.get("path") or f"{storage.get('endpoint')} / bucket {storage.get('bucket')}"
    signing = report.signing
    key = {"development": "khóa THỬ NGHIỆM (chưa cấu hình khóa của cơ quan)", "pkcs12": f"tệp PKCS#12 {signing['path']}",
           "pkcs11": f"token PKCS#11 {signing['token'] or ''} ({signing['path']})"}[signing["key"]]
    print(f"Thư mục dữ liệu: {report.home} ({origin})")
    print(f"Kho lưu trữ:     {storage['kind']}: {where}"
          + (f", {report.dossiers} hồ sơ" if report.dossiers is not None else ""))
    print(f"Chỉ mục:         {report.index['database']}")
    print("Hàng đợi việc:   " + (f"{report.index['broker']} (các trang do worker xử lý: sohoa worker)"
                                 if report.index.get("broker") else "không có (mọi việc chạy trong lệnh đang gọi)"))
    print(f"Khóa ký:         {key}; mức {signing['level'] or 'mặc định'}; thu hồi: {signing['revocation']}")
    print("Phiên bản:       " + ", ".join(f"{k} {v}" for k, v in report.versions.items() if v))
    return ExitCode.OK


def cmd_cache(args, settings: Settings) -> int:
    report = service.page_cache(settings, clear=args.clear)
    if args.json:
        _print_json(report.to_json())
        return ExitCode.OK
    size = f"{number_vi(report.bytes / 1_048_576, 1)} MiB"
    if report.cleared:
        print(f"Đã xóa bộ đệm trang: {report.pages} trang, {size}")
    else:
        print(f"Bộ đệm trang (các trang đã xử lý của lần số hóa bị lỗi, để chạy lại): {report.pages} trang, {size}")
    return ExitCode.OK


def cmd_search(args, settings: Settings) -> int:
    query = " ".join(args.query)
    prefix = service.code_prefix_in(query)  # a code, or the start of one: its dossiers too, as the web lists them
    by_code = service.dossiers_by_code(settings, prefix) if prefix else ()
    result = service.search(settings, query, code_prefix=args.code_prefix, limit=args.limit, offset=args.offset)
    if args.json:
        _print_json({**result.to_json(), **({"dossiers": list(by_code)} if prefix else {})})
    else:
        if by_code:
            print(f"Hồ sơ có mã bắt đầu bằng «{prefix}» (xem: sohoa show MÃ):")
            for d in by_code:
                print(f"  {d['dossierCode']}  {d['documents']} tài liệu, {d['pages']} trang  {d['title']}")
        print(format_hits(result))
        if not result.hits and service.index_behind_store(settings):
            print("Chỉ mục tìm kiếm chưa có hồ sơ nào trong khi kho đã có: chạy 'sohoa reindex' để dựng lại "
                  "(the search index is empty while the store holds dossiers)", file=sys.stderr)
    return ExitCode.OK


TIER_VI = {"phrase": "đúng cụm từ", "phrase-folded": "đúng cụm từ (không dấu)", "near": "các từ ở gần nhau",
           "all": "có đủ các từ"}


def format_hits(result) -> str:
    titles = [f"Tiêu đề khớp với «{result.query}» (xem: sohoa show MÃ):"] if result.titles else []
    for t in result.titles:
        titles.append(f"  {t.dossier_code}  " + (f"tài liệu {t.doc_id}" if t.doc_id else "hồ sơ")
                      + f"  «{t.title}»" + (" (khớp đúng dấu)" if t.exact else ""))
    if not result.hits:
        return "\n".join(titles + [f"Không trang nào chứa «{result.query}»." if titles
                                    else f"Không tìm thấy kết quả nào cho «{result.query}»."])
    return "\n".join(titles + [_page_hits(result)])


def _page_hits(result) -> str:
    shown = (f"Kết quả {result.offset + 1}-{result.offset + len(result.hits)}" if result.offset
             else f"Tìm thấy {len(result.hits)} kết quả")
    lines = [f"{shown} cho «{result.query}»" + (f" (còn nữa: --offset {result.offset + len(result.hits)}):"
                                                 if result.more else ":")]
    for n, hit in enumerate(result.hits, start=result.offset + 1):
        exact = ", khớp đúng dấu" if hit.exact else ""
        lines.append(f"{n:>3}. {hit.dossier_code}  tài liệu {hit.doc_id}, trang {hit.page} "
                     f"({TIER_VI.get(hit.tier, hit.tier)}{exact}; điểm {number_vi(hit.score, 3)})"
                     + (f"  «{hit.title}»" if hit.title else ""))
        lines.append(f"     {hit.snippet}")
    return "\n".join(lines)


def cmd_reindex(args, settings: Settings) -> int:
    result = service.reindex(settings)
    if args.json:
        _print_json(result.to_json())
    else:
        print(f"Đã dựng lại chỉ mục từ kho lưu trữ: {result.dossiers} hồ sơ, "
              f"{result.documents} tài liệu, {result.pages} trang.")
        print("(Chỉ chỉ mục tìm kiếm được dựng lại từ kho. Người dùng, mã truy cập API, các lượt xử lý và nhật ký "
              "truy cập chỉ ở cơ sở dữ liệu: cơ sở dữ liệu mất thì khôi phục chúng từ bản sao lưu của nó.)")
        for failure in result.errors:
            if failure.get("docId"):
                print(f"  LỖI tài liệu {failure['docId']} (hồ sơ {failure['dossierCode']}, các tài liệu khác vẫn "
                      f"được lập chỉ mục): {failure['error']}")
            else:
                print(f"  LỖI hồ sơ {failure['dossierCode']}: {failure['error']}")
    return ExitCode.CHECK_FAILED if result.errors else ExitCode.OK


CHECK_VI = {
    "integrity": "toàn vẹn nội dung đã ký", "coverage": "chữ ký bao trùm toàn bộ tệp",
    "chain": "chuỗi chứng thư tới gốc tin cậy", "revocation": "tình trạng thu hồi chứng thư",
    "timestamp": "dấu thời gian", "signature": "chữ ký số", "pdfa": "PDF/A-2b",
    "sha256": "SHA-256 của tệp PDF", "size": "kích thước tệp PDF",
    "otherObjects": "bản gốc, phiên bản trước, văn bản OCR", "manifestSignature": "bản ghi chữ ký trong manifest",
    "manifestHistory": "lịch sử manifest", "stored": "tệp PDF đã lưu",
    "versions": "phiên bản PDF cuối cùng", "identity": "tệp PDF thuộc đúng hồ sơ và tài liệu",
}


REVOCATION_VI = {"good": "còn hiệu lực", "revoked": "ĐÃ BỊ THU HỒI", "unavailable": "chưa xác định được",
                 "not-needed": "không cần kiểm tra"}
SOURCE_VI = {"embedded": "dữ liệu nhúng trong tệp", "fetched": "tra cứu trực tuyến", "none": "không có dữ liệu"}


def cmd_verify(args, settings: Settings) -> int:
    shown: dict[str, int] = {}  # dossier -> verdicts printed as it was judged

    def show(code: str, verdicts: tuple) -> None:
        _print_dossier(code, verdicts, f"[{len(shown) + 1}] ")
        shown[code] = len(verdicts)
        sys.stdout.flush()

    streamed = not args.json and not args.fixity_only
    report = service.verify(settings, args.codes, all_dossiers=args.all, signatures=not args.fixity_only,
                            on_dossier=show if streamed else None)
    if args.json:
        _print_json(report.to_json() if report.objects is None or not args.fixity_only
                    else {"objects": report.objects, **report.to_json()})
        return ExitCode.CHECK_FAILED if report.failed else ExitCode.OK
    if report.objects is not None:
        _print_objects(report.objects)
    if args.fixity_only:
        return ExitCode.CHECK_FAILED if report.failed else ExitCode.OK
    for code, verdicts in report.results.items():  # what the object check added (a dossier lost whole)
        if len(verdicts) > shown.get(code, 0):
            _print_dossier(code, verdicts[shown.get(code, 0):])
    failed = sum(1 for verdicts in report.results.values() if not verdicts or not all(v.ok for v in verdicts))
    print(f"Đã kiểm tra {len(report.results)} hồ sơ: {len(report.results) - failed} đạt, {failed} KHÔNG ĐẠT.")
    if report.unindexed:
        named = ", ".join(report.unindexed[:5]) + (", …" if len(report.unindexed) > 5 else "")
        print(f"Lưu ý: chỉ mục tìm kiếm chưa có {len(report.unindexed)} hồ sơ của kho ({named}): tìm kiếm không thấy "
              "chúng (cơ sở dữ liệu được khôi phục từ bản sao lưu cũ hơn kho?); chạy 'sohoa reindex'.")
    return ExitCode.CHECK_FAILED if report.failed else ExitCode.OK


def _print_dossier(code: str, verdicts: tuple, counter: str = "") -> None:
    print(f"{counter}Hồ sơ / dossier {code}:")
    if not verdicts:
        print("  KHÔNG ĐẠT: hồ sơ không có tài liệu / FAIL: dossier has no documents")
    for v in verdicts:
        print(f"  {v.message_vi}\n  {v.message_en}")
        for name, passed in v.checks.items():
            print(f"    [{'x' if passed else ' '}] {CHECK_VI.get(name, name)}: {'đạt' if passed else 'KHÔNG ĐẠT'}")
        for s in (v.details.signatures if v.details else ()):
            print(f"        {s.field}: tình trạng thu hồi {REVOCATION_VI.get(s.revocation, s.revocation)}"
                  f" ({SOURCE_VI.get(s.revocation_source, s.revocation_source)})")


OBJECT_OUTCOME_VI = {"mismatch": "THAY ĐỔI (changed)", "missing": "THIẾU (missing)", "extra": "THỪA (extra)"}


def _print_objects(found: dict) -> None:
    """The whole-store object check of ``verify --all``: counts, then each problem with its key."""
    print(f"Kiểm tra đối tượng trong kho / stored objects: {number_vi(found['dossiers'])} hồ sơ, "
          f"{number_vi(found['documents'])} tài liệu, {number_vi(found['objects'])} đối tượng đọc lại "
          f"({number_vi(found['bytesRead'])} byte, {number_vi(found['seconds'], 1)} giây): "
          f"{number_vi(found['changed'])} thay đổi, {number_vi(found['missing'])} thiếu, {number_vi(found['extra'])} thừa"
          + (" - ĐẠT" if found["ok"] else " - KHÔNG ĐẠT"))
    if found.get("held"):
        print(f"  {number_vi(found['held'])} bản gốc được giữ cho lượt xử lý chưa thành tài liệu (đang chờ, đang xử lý, "
              f"lỗi và chờ 'sohoa retry', hoặc đã bỏ; xem 'sohoa status <mã hồ sơ>'): đã đọc lại, không tính là thừa")
    for p in found["problems"]:
        print(f"  {OBJECT_OUTCOME_VI[p['outcome']]}: {p['key']}" + (f" ({p['detail']})" if p.get("detail") else ""))


EVENT_VI = {"ingestion": "tiếp nhận", "digital signature generation": "ký số", "metadata modification": "sửa siêu dữ liệu",
            "fixity check": "kiểm tra mã băm", "digital signature validation": "kiểm tra chữ ký",
            "replication": "sao lưu bản thứ hai", "information package creation": "đóng gói nộp lưu",
            "deletion": "hủy"}
OUTCOME_VI = {"success": "đạt", "failure": "KHÔNG ĐẠT", "warning": "cảnh báo"}


# the preservation events' details are stored in English (PREMIS records, for any archive);
# an archivist reads them in Vietnamese: the known phrasings, anything else as it was stored
EVENT_DETAIL_VI = (
    (r"SHA-256 and size of (\d+) stored PDF\(s\) against the manifest",
     r"mã băm SHA-256 và kích thước của \1 tệp PDF đã lưu, đối chiếu với manifest"),
    (r"PAdES signatures, chain, timestamps and PDF/A of (\d+) document\(s\)",
     r"chữ ký PAdES, chuỗi chứng thư, dấu thời gian và PDF/A của \1 tài liệu"),
    (r"dossier verification", "kiểm tra hồ sơ"),
    (r"whole-store object check \(verify --all\)", "kiểm tra mọi đối tượng của kho (verify --all)"),
    (r"E-ARK SIP of (\S+) into (.+)", r"gói E-ARK SIP của \1 vào \2"),
    (r"E-ARK SIP written to (.+)", r"đã ghi gói E-ARK SIP vào \1"),
    (r"(\d+) object\(s\) copied to (.+), SHA-256 checked there",
     r"đã sao \1 đối tượng sang \2, kiểm mã băm SHA-256 ở đó"),
    (r"rolling fixity \(primary\): (\d+) object\(s\) re-read",
     r"kiểm tra toàn vẹn luân phiên (kho chính): đọc lại \1 đối tượng"),
    (r"rolling fixity \(replica\): (\d+) object\(s\) re-read",
     r"kiểm tra toàn vẹn luân phiên (bản sao): đọc lại \1 đối tượng"),
    (r"legal hold placed by (.+?): (.*)", r"giữ theo yêu cầu pháp lý, do \1: \2"),
    (r"legal hold released by (.+?): (.*)", r"bỏ giữ theo yêu cầu pháp lý, do \1: \2"),
    (r"disposal approved by (.+?) \((\w+)\): (.*); (\d+) object\(s\) removed",
     r"hủy được \1 (\2) phê duyệt: \3; đã xóa \4 đối tượng"),
)


def event_detail_vi(detail: str) -> str:
    """A stored event detail as an archivist reads it (``EVENT_DETAIL_VI``)."""
    for pattern, vietnamese in EVENT_DETAIL_VI:
        if re.fullmatch(pattern, detail, re.S):
            return re.sub(pattern, vietnamese, detail, count=1, flags=re.S)
    return detail


def cmd_events(args, settings: Settings) -> int:
    found = service.dossier_events(settings, args.dossier)
    if args.json:
        _print_json(found)
        return ExitCode.OK
    print(f"Hồ sơ {args.dossier}: {len(found)} sự kiện bảo quản")
    for e in found:
        print(f"  {e['at']}  {EVENT_VI.get(e['type'], e['type'])} ({e['type']}): {OUTCOME_VI.get(e['outcome'], e['outcome'])}"
              + (f" - {event_detail_vi(e['detail'])}" if e.get("detail") else "")
              + (f" [{e['outcomeDetail']}]" if e.get("outcomeDetail") else ""))
    return ExitCode.OK


def cmd_package(args, settings: Settings) -> int:
    if args.bulk:
        if args.dossier or not args.closed_before:
            raise UsageError("--bulk cần --closed-before NGÀY và không nêu mã hồ sơ", "--bulk needs --closed-before")
        results = service.package_bulk(settings, args.closed_before, Path(args.out))
        if args.json:
            _print_json(results)
        else:
            print(f"{len(results)} hồ sơ đóng trước {args.closed_before:%d/%m/%Y}:")
            for code, r in results.items():
                shown = {"packaged": "đã đóng gói", "skipped": "đã có gói, bỏ qua", "failed": "LỖI"}[r["outcome"]]
                print(f"  {code}: {shown} {r.get('path') or r.get('error')}")
        return ExitCode.CHECK_FAILED if any(r["outcome"] == "failed" for r in results.values()) else ExitCode.OK
    if not args.dossier:
        raise UsageError("Nêu mã hồ sơ cần đóng gói, hoặc dùng --bulk --closed-before NGÀY", "CODE or --bulk")
    path = service.package(settings, args.dossier, Path(args.out))
    if args.json:
        _print_json({"dossier": args.dossier, "path": str(path)})
    else:
        print(f"Đã đóng gói hồ sơ {args.dossier} (E-ARK SIP): {path}")
    return ExitCode.OK


def cmd_import_package(args, settings: Settings) -> int:
    code = service.import_package(settings, Path(args.package))
    if args.json:
        _print_json({"dossier": code})
    else:
        print(f"Đã nhập hồ sơ {code} từ gói {args.package}; mọi tệp khớp mã băm SHA-256. Kiểm tra: sohoa verify {code}")
    return ExitCode.OK


RETENTION_VI = {"permanent": "bảo quản vĩnh viễn", "not-due": "chưa đến hạn", "due": "ĐẾN HẠN HỦY",
                "held": "đang bị giữ (pháp lý)", "disposing": "đang hủy dở", "disposed": "đã hủy",
                "damaged": "MANIFEST HỎNG, không đọc được (khôi phục: sohoa restore <mã hồ sơ>)"}


def cmd_retention(args, settings: Settings) -> int:
    if args.action == "relock":
        return _relock(args, settings)
    if args.codes or args.all:
        raise UsageError("'sohoa retention report' liệt kê mọi hồ sơ; mã hồ sơ và --all chỉ dùng với relock",
                         "report takes no dossier codes")
    rows = service.retention_report(settings, args.as_of)
    if args.due:
        rows = [r for r in rows if r.status in ("due", "disposing", "damaged")]  # damaged: its date is unknown
    if args.json:
        _print_json([r.to_json() for r in rows])
        return ExitCode.OK
    print(f"{len(rows)} hồ sơ" + (" đến hạn hủy" if args.due else "") + ":")
    for r in rows:
        closed = f"đóng {r.closed:%d/%m/%Y}" if r.closed else "-"
        due = f"hạn hủy {r.due:%d/%m/%Y}" if r.due else "-"
        print(f"  {r.code}  mã bảo quản {r.maintenance or '-'}  {closed}  {due}  "
              f"{RETENTION_VI.get(r.status, r.status)}  {r.title}")
    return ExitCode.OK


def _relock(args, settings: Settings) -> int:
    results = service.relock(settings, args.codes, all_dossiers=args.all)
    extended = {code: r for code, r in results.items() if len(r) == 2}  # (primary, replica); else (error,)
    failed = {code: r[0] for code, r in results.items() if code not in extended}
    if args.json:
        _print_json({code: {"primary": r[0], "replica": r[1]} if code in extended else {"error": r[0]}
                     for code, r in results.items()})
        return ExitCode.CHECK_FAILED if failed else ExitCode.OK
    print(f"{len(extended)} hồ sơ: mọi đối tượng được khóa đến hạn hủy; đã kéo dài khóa "
          f"{sum(r[0] for r in extended.values())} phiên bản đối tượng ở kho chính, "
          f"{sum(r[1] for r in extended.values())} ở bản sao.")
    for code, message in failed.items():
        print(f"  LỖI    {code}: {message}")
    return ExitCode.CHECK_FAILED if failed else ExitCode.OK


def cmd_hold(args, settings: Settings) -> int:
    record = service.legal_hold(settings, args.dossier, args.reason, release=args.release)
    if args.json:
        _print_json(record)
    else:
        print(f"Hồ sơ {args.dossier}: " + ("đã gỡ lệnh giữ" if args.release else "đang bị giữ theo yêu cầu pháp lý, "
                                             "không thể hủy hay xóa") + f" ({record['reason']})")
    return ExitCode.OK


def cmd_dispose(args, settings: Settings) -> int:
    try:
        token = sys.stdin.readline() if args.approver_token_file == "-" else Path(args.approver_token_file).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Không đọc được tệp mã truy cập của người phê duyệt '{args.approver_token_file}': "
                         + ("không có tệp này" if isinstance(exc, FileNotFoundError) else "không đọc được"),
                         f"cannot read the approver's token file: {exc}") from None
    record = service.dispose(settings, args.dossier, args.reason, token)
    if args.json:
        _print_json(record)
    elif record.get("already"):
        print(f"Hồ sơ {args.dossier} đã được hủy trước đó (ngày {datetime_vi(record.get('disposedAt'))}, phê duyệt: "
              f"{record['approval']['by']}, {record['approval']['reason']}); không có gì để hủy thêm.")
    else:
        print(f"Hồ sơ {args.dossier}: đã hủy {len(record['removed'])} đối tượng; phê duyệt: "
              f"{record['approval']['by']} ({record['approval']['reason']}).")
        for kept in record["kept"]:
            print(f"  CÒN GIỮ  {kept['key']}: {kept['why']}")
        if not record["complete"]:
            print("Chạy lại lệnh này khi thời hạn khóa của các đối tượng còn giữ đã hết.")
    return ExitCode.OK if record["complete"] else ExitCode.CHECK_FAILED


def _size(n: int) -> str:
    return f"{number_vi(n / 1024 / 1024, 1)} MB" if n >= 1024 * 1024 else f"{number_vi(n)} byte"


def cmd_replicate(args, settings: Settings) -> int:
    found = service.replicate(settings, args.codes, check_only=args.check, read=args.read)
    if args.json:
        _print_json(found.to_json())
        return ExitCode.OK if found.ok else ExitCode.CHECK_FAILED
    if args.check:
        print(f"Đối chiếu bản sao {found.target} với kho chính: {found.objects} đối tượng; thiếu {len(found.missing)}, "
              f"khác {len(found.different)}, thừa {len(found.extra)} ({number_vi(found.seconds, 1)} giây).")
        for key in found.missing:
            print(f"  THIẾU  {key}")
        for key in found.different:
            print(f"  KHÁC   {key}")
    else:
        print(f"Đã sao {len(found.copied)} đối tượng ({_size(found.bytes_copied)}) sang bản sao {found.target} "
              f"trong {number_vi(found.seconds, 1)} giây; {number_vi(found.objects)} đối tượng trong kho chính.")
    for key in found.extra:
        print(f"  THỪA   {key} (chỉ có ở bản sao)")
    for key, reason in found.failed:
        print(f"  LỖI    {key}: {reason}")
    return ExitCode.OK if found.ok and not (args.check and (found.missing or found.different)) else ExitCode.CHECK_FAILED


def cmd_restore(args, settings: Settings) -> int:
    found = service.restore(settings, args.codes, read=args.read)
    if args.json:
        _print_json(found.to_json())
        return ExitCode.OK if found.ok else ExitCode.CHECK_FAILED
    print(f"Đã khôi phục {len(found.copied)} đối tượng ({_size(found.bytes_copied)}) từ bản sao {found.source} "
          f"trong {number_vi(found.seconds, 1)} giây.")
    for key, reason in found.failed:
        print(f"  LỖI    {key}: {reason}")
    if found.ok:
        print("Tiếp theo: 'sohoa reindex' (dựng lại chỉ mục tìm kiếm) và 'sohoa verify --all'.")
    return ExitCode.OK if found.ok else ExitCode.CHECK_FAILED


STORE_VI = {"primary": "kho chính", "replica": "bản sao"}
VN = ZoneInfo("Asia/Ho_Chi_Minh")  # times an operator reads


def cmd_fixity(args, settings: Settings) -> int:
    reports = service.fixity(settings, status_only=args.status, limit=args.limit)
    if args.json:
        _print_json([r.to_json() for r in reports])
        return ExitCode.OK if all(r.ok for r in reports) else ExitCode.CHECK_FAILED
    for r in reports:
        where = STORE_VI.get(r.store, r.store)
        if not args.status:
            print(f"{where}: đã đọc lại {r.checked} đối tượng ({_size(r.bytes_read)}), {len(r.problems)} lỗi"
                  + (f"; trong đó {r.held} bản gốc được giữ cho lượt xử lý chưa thành tài liệu, không tính là thừa"
                     if r.held else "") + ".")
        print(f"{where}: chu kỳ bắt đầu {r.cycle_started.astimezone(VN):%d/%m/%Y %H:%M}, đã kiểm tra {r.done}/{r.total} "
              f"đối tượng, hạn hoàn thành {r.expected_end.astimezone(VN):%d/%m/%Y %H:%M}; "
              f"{r.cycle_problems} lỗi trong chu kỳ.")
        for p in r.problems:
            print(f"  {OBJECT_OUTCOME_VI[p.outcome]}: {p.key}" + (f" ({p.detail})" if p.detail else ""))
    return ExitCode.OK if all(r.ok for r in reports) else ExitCode.CHECK_FAILED


def cmd_renew(args, settings: Settings) -> int:
    report = service.renew(settings, args.codes, all_dossiers=args.all, within_days=args.days)
    if args.json:
        _print_json(report.to_json())
    else:
        for code, results in report.results.items():
            print(f"Hồ sơ / dossier {code}:")
            for r in results:
                print(f"  {r.message_vi}\n  {r.message_en}")
    return ExitCode.CHECK_FAILED if report.failed else ExitCode.OK


STATE_VI = {"queued": "đang chờ", "running": "đang xử lý", "finishing": "đang hoàn tất (ghép, ký, lưu)",
            "done": "xong", "failed": "LỖI", "discarded": "đã bỏ (không chạy lại)"}


def cmd_status(args, settings: Settings) -> int:
    views = service.status(settings, args.ref)
    if args.json:
        _print_json([v.to_json() for v in views])
        return ExitCode.OK
    for v in views:
        print(f"Lượt xử lý {v.id}: hồ sơ {v.dossier}, «{v.title}»: {STATE_VI.get(v.state, v.state)}, "
              f"{v.pages_done}/{v.pages_total} trang xong" + (f", {v.pages_failed} trang lỗi" if v.pages_failed else "")
              + (f", tài liệu {v.doc_id}" if v.doc_id else "") + (f" (lần chạy thứ {v.attempts})" if v.attempts > 1 else ""))
        if v.error and v.error.get("code") == "superseded":
            print(f"  {v.error.get('message')}")
        elif v.error and v.state in ("failed", "discarded"):
            print(f"  Lỗi: {v.error.get('message')}\n  " + (f"Chạy lại: sohoa retry {v.id}" if v.state == "failed"
                                                           else "Đã bỏ lượt xử lý này; không chạy lại."))
        elif v.state in ("queued", "running", "finishing") and not settings.broker.url:
            # no workers: only the command that made the job runs it; one stopped leaves it waiting
            print("  Không có worker: lượt này chỉ chạy khi lệnh tạo ra nó (sohoa bulk, sohoa serve) còn chạy. "
                  + ("Nếu lệnh đó đã dừng, chạy lại 'sohoa bulk' trên cùng nguồn" if v.batch
                     else f"Nếu lệnh đó đã dừng, chạy 'sohoa retry {v.id}' (được ngay khi tiến trình đã đọc "
                          f"trang của nó không còn chạy, nếu không thì khi lượt này đã "
                          f"{_minutes(service.quiet_for(settings, v.state))} không thay đổi)")
                  + " (trang đã xong không phải làm lại).")
    return ExitCode.OK


def _minutes(seconds: float) -> str:
    return f"{round(seconds / 60)} phút" if seconds >= 90 else f"{round(seconds)} giây"


def cmd_retry(args, settings: Settings) -> int:
    progress = PageProgress() if sys.stderr.isatty() and not args.json else None
    try:
        result = service.retry(settings, args.job, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    return _report_ingest(args, result)


def cmd_discard(args, settings: Settings) -> int:
    view = service.discard(settings, args.job, args.reason)
    if args.json:
        _print_json(view.to_json())
    else:
        print(f"Đã bỏ lượt xử lý {view.id} (hồ sơ {view.dossier}, «{view.title}»): không chạy lại nữa. "
              f"Bản gốc đã nhận vẫn được giữ cùng hồ sơ cho đến khi hồ sơ bị hủy theo quy định.")
    return ExitCode.OK


def cmd_worker(args, settings: Settings) -> int:
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    print(f"sohoa worker: hàng đợi {', '.join(queues)}, broker {service.redacted(settings.broker.url or '')}",
          file=sys.stderr)
    service.worker(settings, queues, args.concurrency, loglevel="INFO" if args.verbose else "WARNING")
    return ExitCode.OK


def cmd_beat(args, settings: Settings) -> int:
    print(f"sohoa beat: gửi việc định kỳ (kiểm tra toàn vẹn mỗi {settings.fixity.interval} giây) tới broker "
          f"{service.redacted(settings.broker.url or '')}", file=sys.stderr)
    service.beat(settings, loglevel="INFO" if args.verbose else "WARNING")
    return ExitCode.OK


def cmd_serve(args, settings: Settings) -> int:
    """The HTTP API and web interface, until stopped."""
    import uvicorn

    from .http import create_app

    service.database_ready(settings)
    processes = settings.api.processes
    print(f"sohoa phục vụ tại http://{args.host}:{args.port}/"
          + (f" ({processes} tiến trình)" if processes > 1 else "") + " (Ctrl-C để dừng)", file=sys.stderr)
    # idle connections are kept longer than clients and proxies keep theirs (httpx 5 s, nginx's
    # upstream keepalive 60 s): a request is never sent on a connection the server is closing
    served = dict(host=args.host, port=args.port, log_level="warning", proxy_headers=True,
                  forwarded_allow_ips=args.forwarded_allow_ips, timeout_keep_alive=65)
    if processes == 1:
        uvicorn.run(create_app(settings, periodic=True), **served)
        return ExitCode.OK
    # several processes accept on the one port, each with the settings of this environment; this
    # one supervises them (restarts one that dies) and runs the periodic rounds, once for all
    from .http import periodic_rounds

    with _metrics_shared_between_processes(), periodic_rounds(settings):
        # a process that does not answer its supervisor within 30 s is replaced (uvicorn's 5 s
        # default replaces processes still starting on a busy machine, again and again)
        uvicorn.run("api.http:app_from_environment", factory=True, workers=processes,
                    timeout_worker_healthcheck=30, **served)
    return ExitCode.OK


@contextmanager
def _metrics_shared_between_processes():
    """Inside, the server processes started from here count their metrics in one directory of
    files (prometheus_client's multiprocess mode; a new directory, removed after, or the
    operator's own PROMETHEUS_MULTIPROC_DIR, kept); each reads it into its settings."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="sohoa-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(directory, ignore_errors=True)


def _read_password(name: str) -> str:
    """A new password from the terminal (twice) or the first line of standard input."""
    import getpass

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"Mật khẩu cho {name}: ")
    if getpass.getpass("Nhập lại mật khẩu: ") != first:
        raise UsageError("Hai lần nhập mật khẩu không khớp", "passwords differ")
    return first


def cmd_user(args, settings: Settings) -> int:
    if args.action in ("disable", "enable"):
        if not args.name:
            raise UsageError(f"sohoa user {args.action} TÊN", f"user {args.action} needs NAME")
        revoked = service.set_user_disabled(settings, args.name, args.action == "disable")
        print(f"Đã khóa {args.name}: đã thu hồi {revoked} mã truy cập và kết thúc các phiên đăng nhập của người này"
              if args.action == "disable" else f"Đã mở khóa {args.name}: cần tạo mã truy cập mới và đăng nhập lại")
        return ExitCode.OK
    if args.action == "list":
        found = service.users(settings)
        if args.json:
            _print_json(found)
        for u in found:
            if not args.json:
                scope = ", ".join(u["agencies"]) or "toàn hệ thống"
                print(f"{u['name']:<20} {u['role']:<10} {scope}" + ("  (đã khóa)" if u["disabled"] else ""))
        return ExitCode.OK
    if not args.name or not args.role:
        raise UsageError("sohoa user add TÊN --role VAI_TRÒ [--agency MÃ_CƠ_QUAN ...]", "user add needs NAME and --role")
    password = None if args.no_password else _read_password(args.name)
    who = service.add_user(settings, args.name, args.role, args.agency or (), password)
    if args.json:
        _print_json({"name": who.name, "role": who.role, "agencies": list(who.agencies)})
    else:
        print(f"Đã thêm {who.name} ({who.role}; phạm vi: {', '.join(who.agencies) or 'toàn hệ thống'})")
    return ExitCode.OK


def cmd_token(args, settings: Settings) -> int:
    if args.action == "list":
        found = service.tokens(settings, args.name)
        if args.json:
            _print_json(found)
        for t in [] if args.json else found:
            state = f"thu hồi {t['revoked'][:16]}" if t["revoked"] else "còn hiệu lực"
            print(f"{t['id']}  {t['user']:<20} tạo {t['created'][:16]}  dùng lần cuối "
                  f"{(t['lastUsed'] or '-')[:16]:<16}  {state}")
        return ExitCode.OK
    if not args.name:
        raise UsageError(f"sohoa token {args.action} {'TÊN' if args.action == 'create' else 'MÃ'}",
                         f"token {args.action} needs an argument")
    if args.action == "revoke":
        service.revoke_token(settings, args.name)
        print(f"Đã thu hồi mã truy cập {args.name}")
        return ExitCode.OK
    token_id, token = service.create_token(settings, args.name)
    if args.json:
        _print_json({"id": token_id, "user": args.name, "token": token})
    else:
        print(token)
        print(f"Mã truy cập {token_id} của {args.name}: chỉ hiện một lần, hãy lưu lại "
              f"(thu hồi: sohoa token revoke {token_id})", file=sys.stderr)
    return ExitCode.OK


def cmd_notices(args, settings: Settings) -> int:
    found = service.notices(settings, state=args.state, dossier=args.dossier, deliver=args.action == "deliver",
                            requeue=args.action == "requeue", limit=args.last)
    if args.json:
        _print_json(found)
        return ExitCode.OK
    states = {"pending": "chờ gửi", "sending": "đang gửi", "delivered": "đã gửi", "failed": "GỬI KHÔNG ĐƯỢC"}
    if found["requeued"]:
        print(f"Đã xếp lại {found['requeued']} thông báo để gửi lại")
    if found["delivered"] is not None:
        d = found["delivered"]
        print(f"Đã gửi {d['sent']}, hẹn gửi lại {d['retried']}, bỏ {d['failed']}")
    for n in found["notices"]:
        print(f"{n['id']:>6}  {n['event']:<16} {n['dossier']:<26} {states.get(n['state'], n['state']):<15} "
              f"lần {n['attempts']}" + (f"  ({n['last_error']})" if n.get("last_error") else ""))
    print("Tổng: " + ", ".join(f"{states.get(k, k)} {v}" for k, v in sorted(found["counts"].items())) if found["counts"]
          else "Chưa có thông báo nào", file=sys.stderr)
    return ExitCode.OK


def cmd_db(args, settings: Settings) -> int:
    before, after = service.db_upgrade(settings)
    if args.json:
        _print_json({"before": before, "after": after})
    elif before == after:
        print(f"Cơ sở dữ liệu đã ở phiên bản lược đồ mới nhất ({after}); không thay đổi gì")
    else:
        print(f"Đã nâng cấp cơ sở dữ liệu: lược đồ {before or '(trống)'} -> {after}")
    return ExitCode.OK


class BulkProgressLine:
    """Documents and pages done, pages per minute and time left, on one line."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.first_pages = None
        self.shown = False

    def __call__(self, docs_done: int, docs: int, pages_done: int, pages: int) -> None:
        elapsed = time.monotonic() - self.started
        line = f"Tài liệu {docs_done}/{docs}, trang {pages_done}/{pages}"
        if pages_done and elapsed > 1:
            rate = 60 * pages_done / elapsed
            line += f", {number_vi(rate, 1)} trang/phút"
            if pages > pages_done and docs_done < docs:
                left = (pages - pages_done) / (rate / 60)
                line += f", còn ít nhất {int(left // 60)}:{int(left % 60):02d}"
        self.stream.write("\r" + line.ljust(78))
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


class BulkProgressLog:
    """Without a terminal (a run from cron or a service, its output kept in a log): a line at the
    start, at most one a minute, and one at the end; and, with workers, a hint when no page has
    been done for a while (no worker running?)."""

    def __init__(self, workers: bool, every: float = 60.0, idle: float = 120.0, stream=None):
        self.stream, self.workers, self.every, self.idle = stream or sys.stderr, workers, every, idle
        self.started = self.last = time.monotonic()
        self.shown, self.hinted = None, False

    def __call__(self, docs_done: int, docs: int, pages_done: int, pages: int) -> None:
        now, state = time.monotonic(), (docs_done, docs, pages_done, pages)
        if state != self.shown and (self.shown is None or now - self.last >= self.every or docs_done == docs):
            print(f"{service.now_vn():%H:%M:%S} tài liệu {docs_done}/{docs}, trang {pages_done}/{pages}",
                  file=self.stream, flush=True)
            self.shown, self.last = state, now
        if self.workers and not self.hinted and not pages_done and now - self.started >= self.idle:
            print(f"{service.now_vn():%H:%M:%S} chưa có trang nào xong sau {int(self.idle)} giây: các worker có đang "
                  "chạy không? (sohoa worker; sohoa info cho biết hàng đợi)", file=self.stream, flush=True)
            self.hinted = True

    def close(self) -> None:
        pass


def cmd_watch(args, settings: Settings) -> int:
    def event(kind: str, hot, detail: str) -> None:
        if kind == "done":
            where, *notes = detail.split("; ")
            print(f"{service.now_vn():%H:%M:%S} đã số hóa {hot.path.name} -> {where}", flush=True)
            for note in notes:  # pages to look at again, a document already there
                print(f"           {note}", flush=True)
        elif kind == "failed":
            print(f"{service.now_vn():%H:%M:%S} LỖI {hot.path.name}: {detail.splitlines()[0]}", flush=True)
        else:  # changed while read, changed in done/, left where it is, the folder unreadable
            print(f"{service.now_vn():%H:%M:%S} CẢNH BÁO: {detail.splitlines()[0]}", flush=True)

    print(f"Đang theo dõi {args.folder} (tệp trong thư mục con mang mã hồ sơ, hoặc có mã QR phiếu tiếp nhận ở "
          f"trang đầu; Ctrl-C để dừng)", file=sys.stderr)
    taken = service.watch(settings, Path(args.folder), settle=args.settle, once=args.once, on_event=event)
    print(f"Đã nhận {taken} tệp", file=sys.stderr)
    return ExitCode.OK


BULK_STATUS_VI = {"done": "đã số hóa", "skipped": "đã có từ trước, bỏ qua", "held": "GIỮ LẠI", "failed": "LỖI",
                  "invalid": "không hợp lệ", "stopped": "chưa xong"}


def _say_stopping(signum, frame) -> None:
    """Ctrl-C in a bulk run: said at once, since recording what is settled takes seconds (review:
    the terminal showed nothing meanwhile); a second Ctrl-C stops as Python does."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # os.write: print from a signal handler may re-enter stderr's buffer mid-write (RuntimeError);
    # to stderr's own descriptor, and never at the price of the stop (closed, a broken pipe: review)
    try:
        os.write(sys.stderr.fileno(), "\nĐang dừng: ghi lại các trang đã xong và báo cáo, chờ vài giây… "
                 "(Ctrl-C lần nữa để dừng ngay)\n".encode("utf-8"))
    except (AttributeError, OSError, ValueError):
        pass
    raise KeyboardInterrupt


def cmd_bulk(args, settings: Settings) -> int:
    progress = (None if args.json else BulkProgressLine() if sys.stderr.isatty()
                else BulkProgressLog(workers=bool(settings.broker.url)))
    interrupted = signal.getsignal(signal.SIGINT)
    if interrupted is signal.default_int_handler:  # not when Ctrl-C is ignored, or handled by a host
        signal.signal(signal.SIGINT, _say_stopping)
    try:
        result = service.bulk(settings, Path(args.source), report=Path(args.report) if args.report else None,
                              progress=progress)
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
            progress = None
        if args.report:
            print(f"Báo cáo đến lúc dừng (tài liệu chưa xong ghi 'chưa xong'): {args.report} (.xlsx, .csv, .json)",
                  file=sys.stderr)
        raise
    except Exception as exc:  # an outage longer than the run waits: what to do once it is over (the chaos review)
        if describe(exc).exit_code in (ExitCode.STORAGE, ExitCode.DATABASE, ExitCode.BROKER) and \
                hasattr(exc, "message_vi"):
            exc.message_vi = (f"{exc.message_vi}. Chạy lại 'sohoa bulk {args.source}' khi kho, cơ sở dữ liệu và "
                              "hàng đợi hoạt động trở lại: tài liệu đã số hóa được bỏ qua, phần còn lại tiếp tục")
        raise
    finally:
        if signal.getsignal(signal.SIGINT) is _say_stopping:
            signal.signal(signal.SIGINT, interrupted)
        if progress is not None:
            progress.close()
    totals = result.totals
    if args.json:
        _print_json(result.to_json())
    else:
        for o in result.outcomes:
            if o.status in ("held", "failed", "invalid"):
                print(f"  {BULK_STATUS_VI[o.status]}: {o.source}: {o.error}")
        print(f"Đã xử lý {totals['documents']} tài liệu từ {result.source}: {totals['done']} đã số hóa, "
              f"{totals['skipped']} đã có từ trước (bỏ qua), {totals['failed']} lỗi, "
              + (f"{totals['held']} giữ lại chờ tài liệu lỗi trước nó, " if totals["held"] else "")
              + f"{totals['invalid']} không hợp lệ; {totals['pages']} trang")
        if result.report:
            print("Báo cáo: " + ", ".join(result.report))
    return ExitCode.CHECK_FAILED if totals["failed"] or totals["held"] or totals["invalid"] else ExitCode.OK


EXAMPLES = {
    "ingest": "sohoa ingest --dossier H23.50-261201-0001 --title \"Tờ khai đăng ký hộ kinh doanh\" trang1.jpg trang2.tif\n"
              "sohoa ingest --dossier H23.50-261201-0001 --title \"Bản sao CCCD\" --maintenance 06 cccd.pdf",
    "scan": "sohoa scan --dossier H23.50-261201-0001 --title \"Tờ khai đăng ký hộ kinh doanh\"\n"
            "sohoa scan --dossier H23.50-261201-0001 --title \"Giấy tờ hai mặt\" --source duplex --pages 4\n"
            "sohoa scan --dossier H23.50-261201-0001 --title \"Bản sao CCCD\" --source flatbed --device fujitsu:fi-7160:12345",
    "scanners": "sohoa scanners",
    "show": "sohoa show H23.50-261201-0001\nsohoa show H23.50-261201-0001 --json",
    "export": "sohoa export H23.50-261201-0001 --out /tmp/ho-so",
    "link": "sohoa link H23.50-261201-0001 H23.50-261201-0001.001 --expires 600",
    "audit": "sohoa audit --last 50\nsohoa audit verify\nsohoa audit anchor",
    "verify": "sohoa verify H23.50-261201-0001\nsohoa verify --all --json",
    "events": "sohoa events H23.50-261201-0001\nsohoa events H23.50-261201-0001 --json",
    "package": "sohoa package H23.50-261201-0001 --out /mnt/nop-luu\n"
               "sohoa package --bulk --closed-before 2026-01-01 --out /mnt/nop-luu",
    "import-package": "sohoa import-package /mnt/nop-luu/H23.50-261201-0001",
    "retention": "sohoa retention report\nsohoa retention report --due --as-of 2030-01-01\nsohoa retention relock --all",
    "hold": "sohoa hold H23.50-261201-0001 --reason \"Công văn 12/TA yêu cầu giữ hồ sơ\"\n"
            "sohoa hold H23.50-261201-0001 --release --reason \"Vụ việc đã kết thúc\"",
    "dispose": "sohoa dispose H23.50-261201-0001 --reason \"Quyết định hủy số 5/QĐ\" --approver-token-file token.txt",
    "replicate": "sohoa replicate\nsohoa replicate --check\nsohoa replicate --read",
    "restore": "sohoa restore\nsohoa restore H23.50-261201-0001",
    "fixity": "sohoa fixity\nsohoa fixity --status",
    "renew": "sohoa renew --all --days 90",
    "search": "sohoa search \"nghị định\"\nsohoa search nghi dinh --code-prefix H23.50",
    "info": "sohoa info",
    "cache": "sohoa cache --clear",
    "reindex": "sohoa reindex",
    "status": "sohoa status H23.50-261201-0001\nsohoa status 3f2a9c0e4b7d4e1f9a8b6c5d4e3f2a1b --json",
    "retry": "sohoa retry 3f2a9c0e4b7d4e1f9a8b6c5d4e3f2a1b",
    "discard": "sohoa discard 3f2a9c0e4b7d4e1f9a8b6c5d4e3f2a1b --reason \"Quét nhầm giấy tờ của hồ sơ khác\"",
    "beat": "SOHOA_BROKER_URL=redis://127.0.0.1:6379/0 sohoa beat",
    "worker": "SOHOA_BROKER_URL=redis://127.0.0.1:6379/0 sohoa worker --concurrency 2\n"
              "sohoa worker --queues sign.h15.50.05.13 --concurrency 1   (máy giữ token ký của cơ quan H15.50.05.13)",
    "db": "sohoa db upgrade",
    "notices": "sohoa notices --state failed\nsohoa notices requeue\nsohoa notices deliver",
    "serve": "sohoa serve --host 0.0.0.0 --port 8000",
    "user": "sohoa user add lan --role operator --agency H23.50\nsohoa user add thu --role archivist\nsohoa user list\n"
            "sohoa user disable lan",
    "token": "sohoa token create motcua\nsohoa token list motcua\nsohoa token revoke 3f9a2c41b7e0",
    "watch": "sohoa watch /srv/may-quet\n  (máy quét lưu vào /srv/may-quet/H23.50-261201-0001/don.pdf, "
             "hoặc vào /srv/may-quet/ nếu trang đầu có mã QR phiếu tiếp nhận)",
    "bulk": "sohoa bulk /mnt/kho-giay/2019 --report bao-cao-2019.csv\nsohoa bulk danh-sach.csv --report bao-cao",
}
ARGPARSE_VI = (("the following arguments are required", "thiếu tham số bắt buộc"),
               ("unrecognized arguments", "tham số không nhận ra"), ("invalid choice", "lựa chọn không hợp lệ"),
               ("choose from", "chọn một trong"), ("expected one argument", "cần một giá trị"),
               ("invalid int value", "không phải số nguyên"), ("argument ", "tham số "))


class VietnameseParser(argparse.ArgumentParser):
    """argparse with its own words in Vietnamese: headings, -h, and its error messages."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self._positionals.title = "tham số"
        self._optionals.title = "tùy chọn"
        self.add_argument("-h", "--help", action="help", help="in hướng dẫn này rồi thoát")

    def format_usage(self) -> str:
        return super().format_usage().replace("usage:", "Cách dùng:", 1)

    def format_help(self) -> str:
        return super().format_help().replace("usage:", "Cách dùng:", 1)

    def error(self, message: str):
        for english, vietnamese in ARGPARSE_VI:
            message = message.replace(english, vietnamese)
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"LỖI: {message}\n(gõ '{self.prog} -h' để xem hướng dẫn)\n")


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"số giây không hợp lệ: '{text}' (lớn hơn 0, tối đa 3600)")
    return value


def day(text: str) -> date:
    """A date as an archivist writes it (01/01/2040, as sohoa prints dates) or as ISO (2040-01-01)."""
    if (found := service.parse_day(text)) is not None:
        return found
    raise argparse.ArgumentTypeError(f"ngày không hợp lệ: '{text}' (viết 01/01/2040 hoặc 2040-01-01)")


def document_options(s: argparse.ArgumentParser) -> None:
    """What ``ingest`` and ``scan`` both ask of the document they add."""
    s.add_argument("--dossier", required=True, metavar="MÃ_HỒ_SƠ", help="mã hồ sơ trên giấy tiếp nhận")
    s.add_argument("--title", required=True, metavar="TÊN", help="tên tài liệu (không để trống, tối đa 1000 ký tự)")
    s.add_argument("--jobs", type=int, default=None, metavar="N", help="số trang xử lý song song (mặc định: mọi lõi)")
    s.add_argument("--json", action="store_true", help="in kết quả dạng JSON")
    s.add_argument("--maintenance", choices=MAINTENANCE_CODES, default=None,
                   help="thời hạn bảo quản theo TT 05/2025 (01 vĩnh viễn ... 06 10 năm, 07 khác); "
                        "quyết định thời hạn khóa ghi-một-lần trên S3")
    s.add_argument("--paper-file-code", default=None, metavar="MÃ",
                   help="mã hồ sơ giấy (paperFileCode), mặc định là mã hồ sơ")
    s.add_argument("--start-date", default=None, metavar="NGÀY",
                   help="ngày bắt đầu của hồ sơ giấy (31/12/2019 hoặc 2019-12-31), cùng --end-date; mặc định là ngày "
                        "số hóa")
    s.add_argument("--end-date", default=None, metavar="NGÀY",
                   help="ngày kết thúc của hồ sơ giấy: thời hạn bảo quản tính từ năm sau năm này (mặc định: ngày số "
                        "hóa tài liệu cuối)")
    s.add_argument("--change-recorded", action="store_true",
                   help="cho phép đổi mã hồ sơ giấy, thời hạn bảo quản hoặc thời gian hồ sơ giấy đã ghi; manifest "
                        "ghi lại thay đổi")
    s.add_argument("--unsigned", action="store_true",
                   help="lưu tài liệu KHÔNG ký số (chỉ khi cố ý; manifest ghi lại lựa chọn này, verify báo KHÔNG ĐẠT)")


JSON_HELP = "in kết quả dạng JSON"


def command(sub, name: str, help_vi: str, func, *, json: str | None = JSON_HELP) -> argparse.ArgumentParser:
    """A subcommand run by ``func``, whose help says what it does and shows its examples; with
    ``--json`` (help text ``json``) unless ``json`` is None."""
    parser = sub.add_parser(name, help=help_vi, description=help_vi,
                            epilog="Ví dụ:\n  " + EXAMPLES[name].replace("\n", "\n  "))
    if json is not None:
        parser.add_argument("--json", action="store_true", help=json)
    parser.set_defaults(func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:
    p = VietnameseParser(prog="sohoa", description="Số hóa hồ sơ giấy thành hồ sơ điện tử PDF/A có ký số.",
                         epilog="Ví dụ:\n  sohoa ingest --dossier H23.50-261201-0001 --title \"Đơn\" trang1.jpg\n"
                                "  sohoa search \"nghị định\"\n  sohoa verify --all\n"
                                "Mỗi lệnh có hướng dẫn riêng: sohoa LỆNH -h")
    p.add_argument("--version", action="version", version=f"sohoa {_version()}", help="in phiên bản rồi thoát")
    p.add_argument("--verbose", action="store_true", help="in cả nhật ký kỹ thuật của các thư viện (pyHanko, tesseract)")
    sub = p.add_subparsers(dest="command", required=True, title="lệnh", metavar="LỆNH", parser_class=VietnameseParser)

    s = command(sub, "ingest", "số hóa các trang quét thành một tài liệu của hồ sơ", cmd_ingest, json=None)
    document_options(s)
    s.add_argument("files", nargs="+", metavar="TỆP", help="các tệp JPEG, PNG, TIFF, PDF theo thứ tự trang")

    s = sub.add_parser("scan", help="quét tập giấy trên máy quét (khay nạp, hai mặt, mặt kính) thành một tài liệu của hồ sơ",
                       description="quét tập giấy trên máy quét của quầy qua SANE (khay nạp ADF, hai mặt hoặc mặt kính), "
                                   "đếm trang máy quét báo với số ảnh nhận được, rồi số hóa thành một tài liệu của hồ sơ",
                       epilog="Ví dụ:\n  " + EXAMPLES["scan"].replace("\n", "\n  "))
    document_options(s)
    s.add_argument("--device", default=None, metavar="MÁY_QUÉT",
                   help="tên máy quét SANE (xem: sohoa scanners); mặc định: máy quét duy nhất tìm thấy")
    s.add_argument("--source", default="adf", metavar="NGUỒN",
                   help="adf: khay nạp giấy (mặc định); duplex: khay nạp, quét hai mặt; flatbed: mặt kính, một trang; "
                        "hoặc tên nguồn riêng của máy quét")
    s.add_argument("--resolution", type=int, default=300, metavar="DPI", help="độ phân giải (mặc định 300 dpi)")
    s.add_argument("--mode", default="color", metavar="CHẾ_ĐỘ",
                   help="color: màu (mặc định); gray: thang xám; lineart: đen trắng; hoặc tên chế độ riêng của máy quét")
    s.add_argument("--pages", type=int, default=None, metavar="N",
                   help="số trang (số mặt khi quét hai mặt) phải quét; thiếu thì báo lỗi. Mặc định: quét đến khi khay hết giấy")
    s.add_argument("--max-pages", type=int, default=100, metavar="N",
                   help="giới hạn số trang một lần quét (mặc định 100); tập dài hơn bị từ chối, không bị cắt")
    s.set_defaults(func=cmd_scan)

    s = sub.add_parser("scanners", help="liệt kê các máy quét tìm thấy (USB, mạng)", description="liệt kê các máy quét SANE tìm thấy (USB, mạng)",
                       epilog="Ví dụ:\n  " + EXAMPLES["scanners"])
    s.add_argument("--json", action="store_true", help="in kết quả dạng JSON")
    s.set_defaults(func=cmd_scanners)

    s = command(sub, "show", "xem hồ sơ", cmd_show, json="in manifest của hồ sơ")
    s.add_argument("dossier", metavar="MÃ_HỒ_SƠ", help="mã hồ sơ trên giấy tiếp nhận")

    s = command(sub, "export", "xuất các tài liệu PDF/A và manifest", cmd_export)
    s.add_argument("dossier", metavar="MÃ_HỒ_SƠ", help="mã hồ sơ")
    s.add_argument("--out", required=True, metavar="THƯ_MỤC", help="thư mục nhận các tệp PDF/A và manifest.json")

    s = command(sub, "link", "liên kết tải xuống ngắn hạn của tài liệu (kho S3)", cmd_link)
    s.add_argument("dossier", metavar="MÃ_HỒ_SƠ", help="mã hồ sơ")
    s.add_argument("doc_id", nargs="?", default=None, help="mã tài liệu (mặc định: mọi tài liệu)")
    s.add_argument("--expires", type=int, default=900, help="hiệu lực tính bằng giây (mặc định 900, tối đa 7 ngày)")

    s = command(sub, "audit", "xem nhật ký truy cập, kiểm tra tính toàn vẹn của nó, neo nó vào kho lưu trữ", cmd_audit)
    s.add_argument("action", nargs="?", choices=["show", "verify", "anchor"], default="show",
                   help="show: in các dòng cuối (mặc định); verify: kiểm tra chuỗi băm và mọi lần neo; "
                        "anchor: neo đầu chuỗi vào kho lưu trữ (bất biến, có dấu thời gian khi có TSA)")
    s.add_argument("--last", type=int, default=20, help="số dòng cuối cần in (mặc định 20)")
    s.add_argument("--force", action="store_true", help="anchor: neo cả khi không có dòng mới")

    s = command(sub, "verify", "kiểm tra chữ ký số, PDF/A và mã băm SHA-256 của tài liệu", cmd_verify)
    s.add_argument("codes", nargs="*", metavar="MÃ_HỒ_SƠ", help="mã hồ sơ")
    s.add_argument("--all", action="store_true", help="mọi hồ sơ trong kho, và mọi đối tượng trong kho: thay đổi, thiếu, thừa")
    s.add_argument("--fixity-only", action="store_true",
                   help="chỉ đọc lại các đối tượng và so mã băm SHA-256 (thay đổi, thiếu, thừa), không kiểm tra chữ ký số: "
                        "nhanh, cho kho lớn")

    s = command(sub, "events", "các sự kiện bảo quản của hồ sơ (PREMIS): tiếp nhận, ký số, kiểm tra mã băm, sao lưu, đóng gói",
                cmd_events)
    s.add_argument("dossier", metavar="MÃ_HỒ_SƠ", help="mã hồ sơ")

    s = command(sub, "package", "đóng gói hồ sơ theo E-ARK (METS, PREMIS, SHA-256) để nộp lưu trữ", cmd_package)
    s.add_argument("dossier", nargs="?", metavar="MÃ_HỒ_SƠ", help="mã hồ sơ (hoặc --bulk)")
    s.add_argument("--out", required=True, metavar="THƯ_MỤC", help="thư mục nhận gói (mỗi hồ sơ một thư mục con)")
    s.add_argument("--bulk", action="store_true", help="đóng gói mọi hồ sơ đã đóng trước --closed-before")
    s.add_argument("--closed-before", type=day, default=None, metavar="NGÀY",
                   help="với --bulk: hồ sơ có tài liệu cuối cùng trước ngày này (YYYY-MM-DD)")

    s = command(sub, "import-package", "nhập hồ sơ từ gói E-ARK (kiểm tra mọi mã băm trước khi lưu)", cmd_import_package)
    s.add_argument("package", metavar="THƯ_MỤC_GÓI", help="thư mục gói do 'sohoa package' tạo")

    s = command(sub, "retention", "thời hạn bảo quản: hồ sơ nào đến hạn hủy, đang bị giữ, đã hủy", cmd_retention)
    s.add_argument("action", choices=["report", "relock"],
                   help="report: liệt kê mọi hồ sơ với hạn hủy và tình trạng; relock: khóa mọi đối tượng của hồ sơ "
                        "đến hạn hủy, ở kho chính và bản sao (một lần sau khi nâng cấp từ bản trước 0.3.1)")
    s.add_argument("codes", nargs="*", metavar="MÃ_HỒ_SƠ", help="với relock: các hồ sơ (hoặc --all)")
    s.add_argument("--all", action="store_true", help="với relock: mọi hồ sơ trong kho")
    s.add_argument("--due", action="store_true", help="chỉ các hồ sơ đến hạn hủy")
    s.add_argument("--as-of", type=day, default=None, metavar="NGÀY",
                   help="tính hạn theo ngày này (YYYY-MM-DD; mặc định hôm nay)")

    s = command(sub, "hold", "giữ hồ sơ theo yêu cầu pháp lý (không thể hủy hay xóa), hoặc gỡ lệnh giữ", cmd_hold)
    s.add_argument("dossier", metavar="MÃ_HỒ_SƠ", help="mã hồ sơ")
    s.add_argument("--reason", required=True, help="lý do (ví dụ số văn bản yêu cầu)")
    s.add_argument("--release", action="store_true", help="gỡ lệnh giữ")

    s = command(sub, "dispose", "hủy hồ sơ đã đến hạn, có phê duyệt của cán bộ lưu trữ; giữ biên bản hủy", cmd_dispose)
    s.add_argument("dossier", metavar="MÃ_HỒ_SƠ", help="mã hồ sơ")
    s.add_argument("--reason", required=True, help="lý do hủy (ví dụ số quyết định hủy tài liệu hết giá trị)")
    s.add_argument("--approver-token-file", required=True, metavar="TỆP",
                   help="tệp chứa mã truy cập API (sohoa token create) của cán bộ lưu trữ phê duyệt; '-': đọc từ stdin")

    s = command(sub, "replicate", "sao mọi đối tượng sang bản sao thứ hai (SOHOA_REPLICA_*), kiểm tra mã băm SHA-256",
                cmd_replicate)
    s.add_argument("codes", nargs="*", metavar="MÃ_HỒ_SƠ", help="chỉ các hồ sơ này (mặc định: mọi đối tượng)")
    s.add_argument("--check", action="store_true", help="chỉ đối chiếu: đối tượng thiếu, khác, thừa ở bản sao")
    s.add_argument("--read", action="store_true", help="đọc lại và băm lại cả bản sao; sửa bản sao hỏng")

    s = command(sub, "restore", "khôi phục kho chính (đã mất hoặc thiếu) từ bản sao thứ hai", cmd_restore)
    s.add_argument("codes", nargs="*", metavar="MÃ_HỒ_SƠ", help="chỉ các hồ sơ này (mặc định: mọi đối tượng)")
    # reads by default: a restore follows damage, and a changed byte under its recorded hash shows only when read
    s.add_argument("--no-read", dest="read", action="store_false",
                   help="không đọc lại những đối tượng kho chính đã có, chỉ so mã băm đã ghi (nhanh hơn với kho lớn)")
    s.add_argument("--read", dest="read", action="store_true", help=argparse.SUPPRESS)  # the default; kept for scripts
    s.set_defaults(read=True)

    s = command(sub, "fixity", "kiểm tra toàn vẹn định kỳ: đọc lại phần tiếp theo của kho (và bản sao)", cmd_fixity)
    s.add_argument("--status", action="store_true", help="chỉ xem tiến độ chu kỳ, không đọc gì")
    s.add_argument("--limit", type=int, default=None, help="đọc tối đa N đối tượng mỗi kho")

    s = command(sub, "renew", "gia hạn dấu thời gian tài liệu (B-LTA) trước khi chứng thư TSA hết hạn", cmd_renew)
    s.add_argument("codes", nargs="*", metavar="MÃ_HỒ_SƠ", help="mã hồ sơ")
    s.add_argument("--all", action="store_true", help="mọi hồ sơ trong kho")
    s.add_argument("--days", type=int, default=90, help="gia hạn khi chứng thư TSA hết hạn trong vòng N ngày")

    s = command(sub, "search", "tìm hồ sơ theo nội dung (có dấu hoặc không dấu)", cmd_search)
    s.add_argument("query", nargs="+", help='từ cần tìm; cụm từ chính xác đặt trong dấu ngoặc kép, ví dụ "nghị định"')
    s.add_argument("--code-prefix", default=None, help="chỉ tìm trong các hồ sơ có mã bắt đầu bằng chuỗi này")
    s.add_argument("--limit", type=int, default=20, help="số kết quả tối đa (mặc định 20)")
    s.add_argument("--offset", type=int, default=0, help="bỏ qua bấy nhiêu kết quả đầu: xem tiếp (mặc định 0)")

    s = command(sub, "info", "thư mục dữ liệu, kho lưu trữ, chỉ mục, khóa ký và phiên bản đang dùng", cmd_info)

    s = command(sub, "cache", "xem hoặc xóa bộ đệm trang (trang đã xử lý của lần số hóa bị lỗi)", cmd_cache)
    s.add_argument("--clear", action="store_true", help="xóa toàn bộ bộ đệm trang")

    s = command(sub, "reindex", "dựng lại chỉ mục tìm kiếm từ kho lưu trữ", cmd_reindex)

    s = command(sub, "bulk", "số hóa hàng loạt hồ sơ giấy từ một thư mục (mỗi hồ sơ một thư mục) hoặc tệp CSV", cmd_bulk)
    s.add_argument("source", help="thư mục nguồn hoặc tệp CSV (tệp, mã hồ sơ, tên tài liệu, thứ tự trang)")
    s.add_argument("--report", help="ghi báo cáo CSV và JSON (mỗi tài liệu một dòng, kết quả và lỗi)")

    s = command(sub, "status", "xem tiến độ một lượt xử lý, hoặc mọi lượt xử lý của một hồ sơ", cmd_status)
    s.add_argument("ref", metavar="JOB|MÃ_HỒ_SƠ", help="mã lượt xử lý hoặc mã hồ sơ")

    s = command(sub, "retry", "chạy lại một lượt xử lý bị lỗi (các trang đã xong không phải làm lại)", cmd_retry)
    s.add_argument("job", metavar="JOB", help="mã lượt xử lý (xem bằng sohoa status)")

    s = command(sub, "discard", "bỏ hẳn một lượt xử lý bị lỗi (không chạy lại; bản gốc vẫn được giữ cùng hồ sơ)",
                cmd_discard)
    s.add_argument("job", metavar="JOB", help="mã lượt xử lý (xem bằng sohoa status)")
    s.add_argument("--reason", required=True, help="lý do bỏ (ghi vào nhật ký truy cập; ít nhất 10 ký tự)")

    s = command(sub, "worker", "chạy một worker Celery nhận việc từ broker (SOHOA_BROKER_URL)", cmd_worker, json=None)
    s.add_argument("--queues", default="pages,finish",
                   help="các hàng đợi, cách nhau bởi dấu phẩy (mặc định pages,finish; ký riêng: sign.<mã cơ quan>)")
    s.add_argument("--concurrency", type=int, help="số tiến trình xử lý (mặc định: số lõi CPU)")

    s = command(sub, "beat", "gửi việc định kỳ tới các worker (kiểm tra toàn vẹn định kỳ); một beat cho cả hệ thống",
                cmd_beat, json=None)

    s = command(sub, "watch", "theo dõi thư mục máy quét: mỗi tệp mới là một tài liệu, xong chuyển vào done/, "
                              "lỗi chuyển vào failed/", cmd_watch, json=None)
    s.add_argument("folder", help="thư mục máy quét lưu tệp vào")
    s.add_argument("--settle", type=positive_seconds, default=5.0,
                   help="chỉ nhận tệp đã không đổi trong chừng này giây (mặc định 5)")
    s.add_argument("--once", action="store_true", help="nhận các tệp đang có rồi dừng (không theo dõi tiếp)")

    s = command(sub, "serve", "chạy API HTTP và giao diện web", cmd_serve, json=None)
    s.add_argument("--host", default="127.0.0.1", help="địa chỉ lắng nghe (mặc định 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="cổng (mặc định 8000)")
    s.add_argument("--forwarded-allow-ips", default="127.0.0.1",
                   help="địa chỉ reverse proxy được tin cho X-Forwarded-For (mặc định 127.0.0.1)")

    s = command(sub, "user", "quản lý người dùng của API và giao diện web", cmd_user)
    s.add_argument("action", choices=["add", "list", "disable", "enable"],
                   help="add: thêm người dùng; list: liệt kê; disable: khóa (mọi mã truy cập, phiên đăng nhập thôi "
                        "dùng được); enable: mở khóa")
    s.add_argument("name", nargs="?", metavar="TÊN", help="tên đăng nhập")
    s.add_argument("--role", choices=["operator", "officer", "archivist", "admin"],
                   help="operator: tiếp nhận; officer: xử lý, tra cứu; archivist: lưu trữ, báo cáo; admin: quản trị")
    s.add_argument("--agency", action="append", metavar="MÃ_CƠ_QUAN",
                   help="chỉ các hồ sơ có mã bắt đầu bằng mã cơ quan này (lặp lại được; bỏ trống: toàn hệ thống)")
    s.add_argument("--no-password", action="store_true", help="không mật khẩu: chỉ dùng mã truy cập (hệ thống khác)")

    s = command(sub, "token", "tạo, liệt kê hoặc thu hồi mã truy cập API (Bearer)", cmd_token)
    s.add_argument("action", choices=["create", "list", "revoke"],
                   help="create: tạo cho người dùng TÊN; list: liệt kê (của TÊN nếu có), lần dùng cuối; "
                        "revoke: thu hồi mã")
    s.add_argument("name", nargs="?", metavar="TÊN|MÃ",
                   help="tên người dùng (create, list) hoặc mã của mã truy cập (revoke)")

    s = command(sub, "notices", "thông báo gửi hệ thống một cửa (SOHOA_WEBHOOK_URL): xem, gửi lại", cmd_notices)
    s.add_argument("action", nargs="?", choices=["list", "deliver", "requeue"], default="list",
                   help="list: các thông báo mới nhất (mặc định); deliver: gửi ngay các thông báo đến hạn; "
                        "requeue: gửi lại các thông báo đã bỏ")
    s.add_argument("--state", choices=["pending", "sending", "delivered", "failed"], help="chỉ thông báo ở trạng thái này")
    s.add_argument("--dossier", metavar="MÃ_HỒ_SƠ", help="chỉ thông báo của hồ sơ này")
    s.add_argument("--last", type=int, default=50, help="số thông báo (mặc định 50)")

    s = command(sub, "db", "quản trị cơ sở dữ liệu dùng chung", cmd_db)
    s.add_argument("action", choices=["upgrade"], help="upgrade: nâng cấp lược đồ lên phiên bản của phần mềm")
    return p


def _version() -> str:
    try:
        return version("sohoa")
    except PackageNotFoundError:
        return "(chưa cài đặt)"


def main(argv: list[str] | None = None, *, settings: Settings | None = None) -> int:
    """Run one command; ``settings`` (tests, embedding) replaces reading the environment.

    Without ``argv`` this process is the command (the ``sohoa`` program): once it has run, the
    process ends at once (``end_process``)."""
    code = run_command(argv, settings=settings)
    if argv is None:
        end_process(code)
    return code


def end_process(code: int) -> None:
    """End the ``sohoa`` process with ``code`` once its command is done, without the interpreter's
    teardown: freeing ~1,000 modules and their objects one by one takes 0.2-0.4 s after every
    command (a one-page ingest: about 5 % of it) and does nothing the operating system does not do.
    What a normal exit does that matters still happens first: the database connections closed (an
    SQLite file takes its write-ahead log back), the atexit handlers run (logging, multiprocessing's
    finalizers, which remove the pages' copies of the originals), the standard streams flushed.
    Everything the command stored is already committed. While a thread that is not a daemon still
    runs, this returns and the process exits the usual way, which waits for it."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    service.close_connections()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def run_command(argv: list[str] | None = None, *, settings: Settings | None = None) -> int:
    # Pages run in parallel processes, so tesseract's OpenMP threads are limited to one each;
    # tesseract reads this from its environment, so it is set once, here, at start-up.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # -h, --version, or a usage error argparse has already explained
        return int(done.code or 0)
    # libraries' own logging (pyHanko, fontTools, alembic) is for developers, not the counter
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(name)s: %(message)s")
    try:
        settings = settings or config.load()
    except Exception as e:
        return report_error(e, None, argv)
    new_home = service.is_new_home(settings)
    try:
        return int(args.func(args, settings))
    except BrokenPipeError:  # `sohoa search … | head`: what was still to print is not wanted; no error
        _output_closed()
        return ExitCode.OUTPUT_CLOSED
    except (Exception, KeyboardInterrupt) as e:
        return report_error(e, settings, argv)
    finally:
        if new_home and args.command not in ("info", "user", "token", "serve", "audit", "db", "worker", "beat", "watch", "notices"):
            print(f"(Thư mục dữ liệu {settings.home} chưa có hồ sơ nào trước lệnh này; "
                  f"đặt SOHOA_HOME nếu hồ sơ ở nơi khác.)", file=sys.stderr)


def _output_closed() -> None:
    """Send what is still buffered for standard output nowhere: flushing it at exit would raise again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def report_error(error: BaseException, settings: Settings | None, argv) -> int:
    """The command line's one error handler."""
    report = describe(error)
    if report.expected:
        print(f"LỖI: {report.message_vi}", file=sys.stderr)
        if report.detail:
            print(f"  ({report.detail})", file=sys.stderr)
        return report.exit_code
    where = "SOHOA_HOME/logs/errors.log"
    if settings is not None:
        log = settings.home / "logs" / "errors.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8", errors="backslashreplace") as f:  # (a path not UTF-8)
            f.write(f"--- {datetime.now().astimezone().isoformat(timespec='seconds')} sohoa {' '.join(argv or sys.argv[1:])}\n"
                    f"{''.join(traceback.format_exception(error))}")
        where = str(log)
    print(f"LỖI không mong đợi: {report.detail}. {report.message_vi} Chi tiết: {where}", file=sys.stderr)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
