"""CLI handlers for ``sohoa search`` and ``sohoa reindex`` (wired in pipeline.cli).

    sohoa search QUERY... [--json] [--code-prefix P] [--limit N]
    sohoa reindex [--json]
"""
from __future__ import annotations

import argparse
import json

from . import audit
from .errors import SohoaError


def add_search_parser(sub) -> argparse.ArgumentParser:
    s = sub.add_parser("search", help="tìm hồ sơ theo nội dung (có dấu hoặc không dấu)")
    s.add_argument("query", nargs="+", help='từ cần tìm; cụm từ chính xác đặt trong dấu ngoặc kép, ví dụ "nghị định"')
    s.add_argument("--code-prefix", default=None, help="chỉ tìm trong các hồ sơ có mã bắt đầu bằng chuỗi này")
    s.add_argument("--limit", type=int, default=20, help="số kết quả tối đa (mặc định 20)")
    s.add_argument("--json", action="store_true", help="in kết quả dạng JSON")
    s.set_defaults(func=cli_search)
    return s


def add_reindex_parser(sub) -> argparse.ArgumentParser:
    s = sub.add_parser("reindex", help="dựng lại chỉ mục tìm kiếm từ kho lưu trữ")
    s.add_argument("--json", action="store_true", help="in kết quả dạng JSON")
    s.set_defaults(func=cli_reindex)
    return s


def format_hits(query: str, hits: list[dict]) -> str:
    if not hits:
        return f"Không tìm thấy kết quả nào cho «{query}»."
    lines = [f"Tìm thấy {len(hits)} kết quả cho «{query}»:"]
    for n, hit in enumerate(hits, start=1):
        exact = ", khớp đúng dấu" if hit["exact"] else ""
        lines.append(f"{n:>3}. {hit['dossierCode']}  tài liệu {hit['docId']}, trang {hit['page']}"
                     f" (điểm {hit['score']:.3f}{exact})")
        lines.append(f"     {hit['snippet']}")
    return "\n".join(lines)


def cli_search(args, settings) -> int:
    from storage import index

    query = " ".join(args.query) if isinstance(args.query, (list, tuple)) else args.query
    limit = getattr(args, "limit", 20) or 20
    if limit < 1:
        raise SohoaError("--limit phải lớn hơn 0")
    hits = index.search(index.engine_for(settings), query, code_prefix=getattr(args, "code_prefix", None), limit=limit)
    audit.record(settings.home, "search", query=query, code_prefix=getattr(args, "code_prefix", None), hits=len(hits))
    if getattr(args, "json", False):
        print(json.dumps({"query": query, "hits": hits}, ensure_ascii=False, indent=1))
    else:
        print(format_hits(query, hits))
    return 0


def cli_reindex(args, settings) -> int:
    from storage import index, open_store

    totals = index.reindex(open_store(settings), index.engine_for(settings))
    outcome = "success" if not totals["errors"] else "partial"
    audit.record(settings.home, "reindex", outcome, dossiers=totals["dossiers"], documents=totals["documents"],
                 pages=totals["pages"], errors=len(totals["errors"]))
    if getattr(args, "json", False):
        print(json.dumps(totals, ensure_ascii=False, indent=1))
    else:
        print(f"Đã dựng lại chỉ mục từ kho lưu trữ: {totals['dossiers']} hồ sơ, "
              f"{totals['documents']} tài liệu, {totals['pages']} trang.")
        for failure in totals["errors"]:
            print(f"  LỖI hồ sơ {failure['dossierCode']}: {failure['error']}")
    return 0 if not totals["errors"] else 1
