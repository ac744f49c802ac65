"""Fuzz target ``codes``: dossier codes and archive file codes (``pipeline.dossier.parse``,
``parse_key``) and the object keys made of them (``storage.keys``).

Property: a code is either refused with DossierCodeError (a Vietnamese message) or accepted as
itself; an accepted code is a safe key segment, and every key made of it (manifest, manifest
version, original, document PDF and its renewals, text, words, events) passes the store's key
check, is already normalised (no '.', '..', '//') and lies under ``dossiers/<code>/`` and
``code_of`` gives the code back. Any string at all given to ``keys.dossier_prefix`` is refused
with UnsafeKey or gives such a prefix."""
from __future__ import annotations

import posixpath
from datetime import datetime, timezone
from pathlib import Path

from tests.fuzz import Finding

PROPERTY = ("only DossierCodeError; an accepted code makes only safe, normalised keys under "
            "dossiers/CODE/; any string to dossier_prefix: UnsafeKey or such a prefix")
ENTRY_POINTS = "pipeline.dossier.parse, parse_key; storage.keys.dossier_prefix and every key of a dossier"
DICTIONARY = ["-", ".", "..", "/", "\\", "%2e", "%2f", "\x00", "\n", " ", "\t", "\u00a0", "\u200b", "M01.001.01",
              "H23.50", "000.00.12.H15", "261201", "260229", "2019", "1944", "0000", "DV", "\u0130", "\u00df",
              "\ufb01", "\uff11", "\u0661", "\u2024", "\uff0e", "\u2215", "manifest.json"]
INSTRUMENT = ("pipeline.dossier", "storage.keys")
SEEDS = ["H23.50-261201-0001", "H15.50.05.13-261008-0975", "M01.001.01-260201-DV0001", "000.00.12.H15-2019-0123",
         "H15.50.05.13-2019-7", "h23.50-261201-0001", " H23.50-261201-0001", "000.00.12.H15.2019.0123",
         "H23.50_261201_0001", "H23.50-260230-0001", "../H23.50-261201-0001", "A" * 40 + "-261201-0001"]


def instrumented_imports() -> None:
    import pipeline.dossier  # noqa: F401
    import storage.keys  # noqa: F401


def _check_keys(code: str) -> None:
    from storage import keys
    from storage.base import check_key
    from storage.errors import UnsafeKey

    try:
        prefix = keys.dossier_prefix(code)
    except UnsafeKey:
        return
    if prefix != f"dossiers/{code}/" or "/" in code or code in (".", ".."):
        raise Finding(f"dossier_prefix({code!r}) = {prefix!r}")
    at = datetime(2026, 12, 1, 12, 30, tzinfo=timezone.utc)
    made = [keys.manifest(code), keys.manifest_version(code, 7), keys.original(code, "a" * 64, ".JPG"),
            keys.original(code, "b" * 64, "../../x"), keys.document_text(code, f"{code}.001"),
            keys.document_words(code, f"{code}.001"), keys.dossier_event(code, at, "fixity", "0123abcd")]
    made += [keys.document_pdf(code, f"{code}.{n:03d}", v) for n in (1, 12, 1000) for v in (1, 2)]
    for key in made:
        try:
            check_key(key)
        except UnsafeKey:
            raise Finding(f"code {code!r} makes a key the store refuses: {key!r}") from None
        if not key.startswith(prefix) or posixpath.normpath(key) != key or keys.code_of(key) != code:
            raise Finding(f"code {code!r} makes a key outside its dossier: {key!r}")


def test_one_input(data: bytes) -> None:
    from pipeline import dossier
    from pipeline.errors import DossierCodeError

    text = data.decode("utf-8", errors="replace")
    _check_keys(text)  # whatever a caller might pass, validated or not
    for parse in (dossier.parse, dossier.parse_key):
        try:
            parts = parse(text)
        except DossierCodeError as e:
            if not e.message_vi.startswith(("Mã hồ sơ", "Mã cơ quan", "Ngày tiếp nhận", "Năm hình thành", "Số hồ sơ")):
                raise Finding(f"{parse.__name__}: unexpected message {e.message_vi!r}") from None
            continue
        if parts["code"] != text:
            raise Finding(f"{parse.__name__}({text!r}) accepted as {parts['code']!r}")
        from storage import keys
        from storage.errors import UnsafeKey

        try:
            keys.dossier_prefix(text)
        except UnsafeKey:
            raise Finding(f"{parse.__name__} accepts {text!r}, which is no key segment") from None


def seeds() -> dict[str, bytes]:
    return {f"seed-{n:02d}": code.encode() for n, code in enumerate(SEEDS)}


def write_seeds(directory: Path) -> int:
    for name, data in seeds().items():
        (directory / name).write_bytes(data)
    return len(SEEDS)
