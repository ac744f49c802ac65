"""The ``sohoa`` command line. Messages for operators are in Vietnamese."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import audit, config, dossier
from .errors import NotFound, SohoaError

MAINTENANCE_CODES = ["01", "02", "03", "04", "05", "06", "07"]
FLAG_VI = {"blank": "trang trắng", "blurry": "mờ", "cut_off": "có thể bị cắt mất nội dung",
           "low_confidence": "độ tin cậy OCR thấp"}


def _store(settings):
    from storage import open_store

    return open_store(settings)


def _index(settings):
    """The search index updater; opened lazily so an index outage never blocks an ingest."""
    from storage import index

    return lambda manifest, texts: index.index_dossier(index.engine_for(settings), manifest, texts)


def cmd_ingest(args, settings) -> int:
    from .ingest import ingest
    from .sign import load_signer

    dossier.validate(args.dossier)  # before a token login or a development-key warning
    signer = load_signer(settings)
    result = ingest(settings, _store(settings), args.dossier, args.files, args.title, signer=signer,
                    jobs=args.jobs, index=_index(settings), maintenance=args.maintenance,
                    paper_file_code=args.paper_file_code)
    for warning in result.get("warnings", []):
        print(f"CẢNH BÁO: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    verb = "đã có sẵn (không tạo bản trùng)" if result["duplicate"] else "đã số hóa"
    print(f"Tài liệu {result['docId']} {verb}: {len(result['pages'])} trang, "
          f"PDF/A-2b {result['pdf']['size']:,} byte, SHA-256 {result['pdf']['sha256']}")
    for p in result["pages"]:
        flags = ", ".join(FLAG_VI.get(f, f) for f in p["flags"])
        print(f"  Trang {p['number']} ({p['file']} tr.{p['page']}): xoay {p['orientation']}°, "
              f"nghiêng {p['skew_deg']:+.2f}°, tin cậy OCR {p['ocrConfidence']:.0f}%"
              + (f"  CẢNH BÁO: {flags}" if flags else ""))
    return 0


def cmd_show(args, settings) -> int:
    from .ingest import require_manifest

    code = dossier.validate(args.dossier)
    manifest = require_manifest(_store(settings), code)
    audit.record(settings.home, "show", dossier=code)
    if args.json:
        print(json.dumps(manifest, ensure_ascii=False, indent=1))
        return 0
    print(f"Hồ sơ {code}: {manifest['title']}")
    print(f"  {manifest['totalDoc']} tài liệu, {manifest['numberOfPage']} trang, cập nhật {manifest['updated']}")
    for d in manifest["documents"]:
        sig = d.get("signature") or {}
        signed = ("ký thử nghiệm" if sig.get("testSignature") else f"ký số {sig.get('level')}") if sig else "chưa ký"
        flagged = [p for p in d["pages"] if p["flags"]]
        print(f"  - {d['docId']}: {d['title']} ({d['numberOfPage']} trang, {signed}"
              + (f", {len(flagged)} trang cần kiểm tra" if flagged else "") + ")")
        for p in flagged:
            print(f"      trang {p['number']} ({p['source']['file']} tr.{p['source']['page']}): "
                  + ", ".join(FLAG_VI.get(f, f) for f in p["flags"]))
    return 0


def cmd_export(args, settings) -> int:
    from . import manifest as mf
    from .ingest import require_manifest

    code = dossier.validate(args.dossier)
    store = _store(settings)
    manifest = require_manifest(store, code)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for d in manifest["documents"]:
        data = store.get(d["pdf"]["key"], sha256=d["pdf"]["sha256"])  # fixity checked on every read
        (out / f"{d['docId']}.pdf").write_bytes(data)
    (out / "manifest.json").write_bytes(mf.dumps(manifest))  # the very manifest the files came from
    audit.record(settings.home, "export", dossier=code, out=str(out))
    print(f"Đã xuất {len(manifest['documents'])} tài liệu của hồ sơ {code} vào {out}")
    return 0


def cmd_link(args, settings) -> int:
    """A short-lived download link for a document of a private S3 bucket."""
    from .ingest import require_manifest

    code = dossier.validate(args.dossier)
    store = _store(settings)
    if not hasattr(store, "presigned_url"):
        raise SohoaError("Liên kết tải xuống chỉ có với kho S3 (SOHOA_STORAGE=s3); "
                         "với kho cục bộ hãy dùng 'sohoa export'")
    manifest = require_manifest(store, code)
    docs = [d for d in manifest["documents"] if args.doc_id in (None, d["docId"])]
    if not docs:
        raise NotFound(f"Hồ sơ {code} không có tài liệu {args.doc_id}")
    for d in docs:
        store.get(d["pdf"]["key"], sha256=d["pdf"]["sha256"])  # never hand out a link to altered bytes
        print(f"{d['docId']}\t{store.presigned_url(d['pdf']['key'], args.expires)}")
    audit.record(settings.home, "link", dossier=code, docIds=[d["docId"] for d in docs], expires=args.expires)
    return 0


def cmd_audit(args, settings) -> int:
    intact, count = audit.verify_chain(settings.home)
    if not intact:
        print(f"LỖI: chuỗi băm của nhật ký kiểm tra đứt tại dòng {count}: dòng này hoặc dòng trước nó đã bị "
              f"sửa, hoặc có dòng bị xóa (audit log hash chain broken at line {count})", file=sys.stderr)
        return 1
    lines = audit.tail(settings.home, args.last)
    for event in lines:
        print(json.dumps(event, ensure_ascii=False))
    print(f"Nhật ký kiểm tra nguyên vẹn: {count} dòng (audit log intact: {count} lines)", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sohoa", description="Số hóa hồ sơ giấy thành hồ sơ điện tử PDF/A có ký số.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("ingest", help="số hóa các trang quét thành một tài liệu của hồ sơ")
    s.add_argument("--dossier", required=True, help="mã hồ sơ trên giấy tiếp nhận")
    s.add_argument("--title", required=True, help="tên tài liệu")
    s.add_argument("--jobs", type=int, default=None, help="số trang xử lý song song (mặc định: mọi lõi)")
    s.add_argument("--json", action="store_true", help="in kết quả dạng JSON")
    s.add_argument("--maintenance", choices=MAINTENANCE_CODES, default=None,
                   help="thời hạn bảo quản theo TT 05/2025 (01 vĩnh viễn ... 06 10 năm, 07 khác); "
                        "quyết định thời hạn khóa ghi-một-lần trên S3")
    s.add_argument("--paper-file-code", default=None, help="mã hồ sơ giấy (paperFileCode), mặc định là mã hồ sơ")
    s.add_argument("files", nargs="+", help="các tệp JPEG, PNG, TIFF, PDF theo thứ tự trang")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("show", help="xem hồ sơ")
    s.add_argument("dossier")
    s.add_argument("--json", action="store_true", help="in manifest của hồ sơ")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("export", help="xuất các tài liệu PDF/A và manifest")
    s.add_argument("dossier")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("link", help="liên kết tải xuống ngắn hạn của tài liệu (kho S3)")
    s.add_argument("dossier")
    s.add_argument("doc_id", nargs="?", default=None, help="mã tài liệu (mặc định: mọi tài liệu)")
    s.add_argument("--expires", type=int, default=900, help="hiệu lực tính bằng giây (mặc định 900, tối đa 7 ngày)")
    s.set_defaults(func=cmd_link)

    s = sub.add_parser("audit", help="xem nhật ký kiểm tra và kiểm tra tính toàn vẹn của nó")
    s.add_argument("--last", type=int, default=20, help="số dòng cuối cần in (mặc định 20)")
    s.set_defaults(func=cmd_audit)

    from . import search, verify

    s = sub.add_parser("verify", help="kiểm tra chữ ký số, PDF/A và mã băm SHA-256 của tài liệu")
    s.add_argument("codes", nargs="*", metavar="CODE", help="mã hồ sơ")
    s.add_argument("--all", action="store_true", help="mọi hồ sơ trong kho")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=verify.cli_verify)

    s = sub.add_parser("renew", help="gia hạn dấu thời gian tài liệu (B-LTA) trước khi chứng thư TSA hết hạn")
    s.add_argument("codes", nargs="*", metavar="CODE")
    s.add_argument("--all", action="store_true")
    s.add_argument("--days", type=int, default=90, help="gia hạn khi chứng thư TSA hết hạn trong vòng N ngày")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=verify.cli_renew)

    search.add_search_parser(sub)
    search.add_reindex_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    args = build_parser().parse_args(argv)
    try:
        settings = config.load()
    except (ValueError, OSError) as e:
        print(f"LỖI cấu hình SOHOA_*: {e}", file=sys.stderr)
        return 2
    try:
        return args.func(args, settings)
    except SohoaError as e:
        print(f"LỖI: {e}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # an operator gets a sentence, the log gets the traceback
        import traceback

        log = settings.home / "logs" / "errors.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"--- {audit.now_vn().isoformat()} sohoa {' '.join(argv or sys.argv[1:])}\n{traceback.format_exc()}")
        print(f"LỖI không mong đợi: {type(e).__name__}: {e}. Chưa có gì bị thay đổi trong hồ sơ; "
              f"có thể chạy lại lệnh. Chi tiết: {log}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Đã dừng theo yêu cầu.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
