"""Periodic integrity at scale: `sohoa verify --all --fixity-only` and `sohoa reindex` over a
store of 10,000 documents, with a few objects changed, removed and added.

    .venv/bin/python -m bench.integrity                       # 1,000 dossiers x 10 documents
    .venv/bin/python -m bench.integrity --dossiers 200 --docs 10

The store is made from one template dossier of one document: by default small objects (a
few hundred bytes: original, PDF, OCR text and words) stored through ``LocalStore.put`` and
``save_manifest``; with ``--real``, a one-page document really ingested by `sohoa ingest`
(OCR, PDF/A, signed with the development key; ~100 KB a document). Its objects are copied
under every dossier code and document id as hard links (object and sidecar: the same bytes
under another key), and each dossier gets its own manifest from the repository
(``save_manifest``: history version 1, then manifest.json), with fsync turned off while
building (durability is not what is measured; a put with fsync costs ~30 ms on this shared
machine). Then ``damage`` changes three objects, removes two and adds three, and the
commands run as an archivist runs them. Printed: build time, the check's time and what it
found, the reindex time and its peak Python memory (tracemalloc).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEMPLATE = "H23.50-261130-0001"


def code_for(n: int) -> str:
    """The n-th dossier code (0-based): H23.50-2612DD-NNNN, 9,000 a day."""
    return f"H23.50-2612{1 + n // 9000:02d}-{n % 9000 + 1:04d}"


@contextlib.contextmanager
def no_fsync():
    """Building a test store only: the store's puts without waiting for the disk."""
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def ingest_template(home: Path) -> tuple[dict, Path]:
    """One real dossier (one one-page document), ingested by the CLI into ``home``: its
    manifest and the store's folder."""
    from api.cli import main
    from pipeline import config
    from tests.pagegen import PageSpec, render_page

    page = render_page(PageSpec(layout="text", seed=4242, dpi=150, degradation=0, max_body_lines=6))
    path = home.parent / "template-page.png"
    page.image.save(path, dpi=page.dpi)
    settings = config.load({"SOHOA_HOME": str(home)})
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["ingest", "--dossier", TEMPLATE, "--title", "Tờ khai đăng ký hộ kinh doanh", str(path)],
                    settings=settings)
    if code != 0:
        raise RuntimeError(f"template ingest failed: exit {code}")
    return json.loads((home / "store" / "dossiers" / TEMPLATE / "manifest.json").read_bytes()), home / "store"


def small_template(root: Path) -> tuple[dict, Path]:
    """A dossier of one document with small objects (a few hundred bytes each), stored through
    ``LocalStore.put`` and ``save_manifest``: the shape ingest writes, at a size a test of
    10,000 documents can read in seconds. Returns its manifest and the store's folder."""
    from pipeline import manifest as mf
    from pipeline.repository import save_manifest
    from storage import keys
    from storage.local import LocalStore

    store = LocalStore(root)
    now = datetime.now(timezone.utc)
    doc_id = f"{TEMPLATE}.001"
    original = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2
    from storage.base import sha256

    put = lambda key, data, retain=True: store.put(key, data, "application/octet-stream", {"dossier": TEMPLATE},
                                                   retain=retain).to_json()
    pdf = put(keys.document_pdf(TEMPLATE, doc_id), b"%PDF-1.7\n% sohoa integrity bench\n" + b"0" * 600 + b"\n%%EOF\n")
    text = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập - Tự do - Hạnh phúc\nTỜ KHAI ĐĂNG KÝ HỘ KINH DOANH\n"
    doc = {"docId": doc_id, "sequence": 1, "title": "Tờ khai đăng ký hộ kinh doanh", "numberOfPage": 1,
           "created": now.isoformat(), "inputSha256": sha256(original),
           "originals": [{**put(keys.original(TEMPLATE, sha256(original), "png"), original), "filename": "p1.png"}],
           "pdf": pdf, "pdfVersions": [{**pdf, "at": now.isoformat(), "reason": "signed"}],
           "text": put(keys.document_text(TEMPLATE, doc_id), text.encode(), retain=False),
           "words": put(keys.document_words(TEMPLATE, doc_id), b'[[{"t": "TO", "b": [1, 2, 3, 4]}]]', retain=False),
           "signature": {"subfilter": "ETSI.CAdES.detached", "level": "B-T"}, "pages": []}
    stored = save_manifest(store, TEMPLATE, mf.with_document(mf.new(TEMPLATE, doc["title"], now), doc, now))
    return stored, root


def _renamed(value, old: str, new: str):
    return json.loads(json.dumps(value, ensure_ascii=False).replace(old, new))


def _link(source: Path, target: Path) -> None:
    """A copy of a stored object (and its sidecar) under another key, as a hard link: the same
    bytes read through another path, made in two system calls."""
    if target.exists():
        return  # an original shared by two documents of one dossier
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, target)
    os.link(source.with_name(source.name + ".meta.json"), target.with_name(target.name + ".meta.json"))


def build_store(store, template: dict, source: Path, dossiers: int, docs: int, *,
                text_for=None, start: int = 0) -> list[str]:
    """``dossiers`` dossiers of ``docs`` documents each, copied from the template dossier (its
    objects in the local store at ``source``, hard-linked under each new key in a local store,
    put in any other); each manifest
    written by ``save_manifest``. ``text_for(code, doc_id)`` (optional) gives each document
    its own OCR text, stored by ``put``."""
    from pipeline import manifest as mf
    from pipeline.repository import save_manifest

    tdoc = template["documents"][0]
    tid = tdoc["docId"]
    now = datetime.now(timezone.utc)
    codes = []
    with no_fsync():
        for n in range(start, start + dossiers):
            code = code_for(n)
            manifest = mf.new(code, template.get("title") or "", now)
            for i in range(1, docs + 1):
                doc_id = f"{code}.{i:03d}"
                doc = _renamed(_renamed(copy.deepcopy(tdoc), tid, doc_id), TEMPLATE, code)
                doc["sequence"] = i
                refs = [*doc.get("originals", []), doc["pdf"], doc["words"]]
                sources = [*tdoc.get("originals", []), tdoc["pdf"], tdoc["words"]]
                if text_for is None:
                    refs, sources = refs + [doc["text"]], sources + [tdoc["text"]]
                else:
                    data = text_for(code, doc_id).encode("utf-8")
                    doc["text"] = store.put(doc["text"]["key"], data, "text/plain; charset=utf-8",
                                            {"dossier": code, "doc-id": doc_id, "kind": "text"}).to_json()
                for ref, src in zip(refs, sources):
                    if hasattr(store, "root"):
                        _link(source / src["key"], store.root / ref["key"])
                    else:  # another backend (S3): stored by put
                        store.put(ref["key"], (source / src["key"]).read_bytes(), "application/octet-stream",
                                  {"dossier": code, "doc-id": doc_id})
                for version in doc.get("pdfVersions") or []:
                    version.update(sha256=doc["pdf"]["sha256"], size=doc["pdf"]["size"])
                manifest = mf.with_document(manifest, doc, now)
            save_manifest(store, code, manifest)
            codes.append(code)
    return codes


def damage(root: Path, codes: list[str], docs: int = 10) -> dict[str, set[str]]:
    """Change three objects, remove two, add three (one a dossier folder with no manifest), in
    dossiers spread over the store; returns the keys expected in each outcome."""
    from storage import keys
    from storage.local import LocalStore

    store = LocalStore(root)
    a, b, c, d, e = (codes[int(len(codes) * f)] for f in (0.1, 0.3, 0.5, 0.7, 0.9))

    def doc(code: str, n: int) -> str:
        return f"{code}.{(n - 1) % docs + 1:03d}"

    changed = {keys.document_pdf(a, doc(a, 3)), keys.document_text(b, doc(b, 7)),
               json.loads(store.get(keys.manifest(c)))["documents"][0]["originals"][0]["key"]}
    for key in sorted(changed):
        path = root / key
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x20  # one bit: what bit rot or a careless edit does
        path.unlink()  # the copies are hard links: this one alone changes
        path.write_bytes(bytes(data))
    missing = {keys.document_words(d, doc(d, 5)), keys.document_pdf(e, doc(e, 10))}
    for key in sorted(missing):
        (root / key).unlink()
        (root / (key + ".meta.json")).unlink()
    stray = "H23.50-261231-0999"
    extra = {f"{keys.dossier_prefix(a)}documents/{a}.{docs + 1:03d}.pdf",          # a PDF no manifest lists
             keys.manifest_version(b, 2),                                  # a history version after the current one
             f"{keys.dossier_prefix(stray)}originals/{'0' * 64}.png"}      # a dossier folder with no manifest
    for key in sorted(extra):
        store.put(key, b"%PDF-1.7 not listed anywhere\n")
    return {"mismatch": changed, "missing": missing, "extra": extra}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=1000)
    parser.add_argument("--docs", type=int, default=10)
    parser.add_argument("--real", action="store_true",
                        help="copy a really ingested dossier (OCR, signed PDF/A ~100 KB) rather than small objects")
    parser.add_argument("--keep", action="store_true", help="keep the store (its path is printed)")
    args = parser.parse_args(argv)

    from api.cli import main as sohoa
    from pipeline import config
    from storage.local import LocalStore

    work = Path(tempfile.mkdtemp(prefix="sohoa-integrity-"))
    template, source = (ingest_template(work / "template") if args.real
                        else small_template(work / "template" / "store"))
    home = work / "home"
    settings = config.load({"SOHOA_HOME": str(home)})
    started = time.monotonic()
    codes = build_store(LocalStore(home / "store"), template, source, args.dossiers, args.docs)
    built = time.monotonic() - started
    expected = damage(home / "store", codes, args.docs)
    print(f"store: {len(codes)} dossiers x {args.docs} documents = {len(codes) * args.docs} documents, "
          f"built in {built:.1f} s ({home / 'store'})")

    started = time.monotonic()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = sohoa(["verify", "--all", "--fixity-only", "--json"], settings=settings)
    seconds = time.monotonic() - started
    found = json.loads(out.getvalue())["objects"]
    got = {o: {p["key"] for p in found["problems"] if p["outcome"] == o} for o in expected}
    print(f"verify --all --fixity-only: exit {code}, {seconds:.1f} s; {found['objects']} objects, "
          f"{found['bytesRead']} bytes read; changed {found['changed']}, missing {found['missing']}, "
          f"extra {found['extra']}; exactly the damage: {got == expected}")

    from pipeline import service

    tracemalloc.start()
    started = time.monotonic()
    result = service.reindex(settings)
    seconds = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"reindex: {result.dossiers} dossiers, {result.documents} documents, {result.pages} pages, "
          f"{len(result.errors)} errors, {seconds:.1f} s, peak Python memory {peak / 1e6:.1f} MB")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if got == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
