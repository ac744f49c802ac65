"""The object-store contract (storage/base.py), run against LocalStore and S3Store alike."""
from __future__ import annotations

import pytest

from storage.errors import IntegrityError, NotFound
from storage.base import sha256

CODE = "H23.50-261201-0001"
KEY = f"dossiers/{CODE}/text/{CODE}.001.txt"


def test_put_returns_own_sha256_and_get_returns_the_bytes(any_store):
    data = "Căn cứ Nghị định số 15/2020/NĐ-CP\fTrang hai".encode()
    info = any_store.put(KEY, data, "text/plain; charset=utf-8", {"dossier": CODE, "doc-id": f"{CODE}.001", "kind": "text"})
    assert (info.key, info.sha256, info.size) == (KEY, sha256(data), len(data))
    assert any_store.get(KEY) == data
    assert any_store.get(KEY, sha256=sha256(data)) == data


def test_stat_gives_size_sha256_and_metadata(any_store):
    meta = {"dossier": CODE, "doc-id": f"{CODE}.001", "kind": "original", "filename": "Tờ khai số 1.jpg"}
    any_store.put(KEY, b"abc", metadata=meta)
    info = any_store.stat(KEY)
    assert (info.sha256, info.size) == (sha256(b"abc"), 3)
    assert info.metadata == meta
    assert any_store.exists(KEY)


def test_missing_object(any_store):
    assert any_store.stat(KEY) is None
    assert not any_store.exists(KEY)
    with pytest.raises(NotFound):
        any_store.get(KEY)


def test_sha256_mismatch_raises_integrity_error(any_store):
    any_store.put(KEY, b"original bytes")
    with pytest.raises(IntegrityError):
        any_store.get(KEY, sha256=sha256(b"other bytes"))


def test_an_object_is_copied_to_a_file_checked_and_nothing_is_left_when_it_does_not_match(any_store, tmp_path):
    data = bytes(range(256)) * 9000  # more than one chunk of the copy
    any_store.put(KEY, data)
    any_store.get_file(KEY, tmp_path / "copy", sha256=sha256(data))
    assert (tmp_path / "copy").read_bytes() == data
    with pytest.raises(IntegrityError):
        any_store.get_file(KEY, tmp_path / "bad", sha256=sha256(b"other bytes"))
    assert not (tmp_path / "bad").exists()
    with pytest.raises(NotFound):
        any_store.get_file(KEY + ".missing", tmp_path / "missing")


def test_same_bytes_again_is_a_no_op(any_store):
    first = any_store.put(KEY, b"same", metadata={"kind": "text"})
    again = any_store.put(KEY, b"same", metadata={"kind": "text"})
    assert (again.sha256, again.size) == (first.sha256, first.size)
    assert any_store.list(f"dossiers/{CODE}/") == [KEY]
    if any_store.name == "s3":
        assert len(any_store.versions(KEY)) == 1  # no duplicate version either


def test_other_bytes_replace_the_object(any_store):
    any_store.put(KEY, b"v1")
    any_store.put(KEY, b"v2")
    assert any_store.get(KEY) == b"v2"
    assert any_store.stat(KEY).sha256 == sha256(b"v2")


def test_list_is_sorted_and_limited_to_the_prefix(any_store):
    keys = [f"dossiers/{CODE}/originals/{sha256(bytes([i]))}.jpg" for i in range(3)]
    for k in reversed(keys):
        any_store.put(k, b"x")
    any_store.put("dossiers/H23.50-261201-0002/manifest.json", b"{}")
    assert any_store.list(f"dossiers/{CODE}/") == sorted(keys)
    assert any_store.list("dossiers/") == sorted(keys + ["dossiers/H23.50-261201-0002/manifest.json"])
    assert any_store.list("nothing/") == []


def test_delete(any_store):
    any_store.put(KEY, b"x")
    any_store.delete(KEY)
    assert any_store.stat(KEY) is None
    with pytest.raises(NotFound):
        any_store.get(KEY)
    any_store.delete(KEY)  # deleting what is not there is not an error


@pytest.mark.parametrize("key", ["../escape", "dossiers/../../etc/passwd", "/absolute", "a//b", "a/./b",
                                 "dossiers/Hồ sơ", "a\\b", "", "a/b/"])
def test_unsafe_keys_are_refused(any_store, key):
    for call in (lambda: any_store.put(key, b"x"), lambda: any_store.get(key),
                 lambda: any_store.stat(key), lambda: any_store.delete(key)):
        with pytest.raises(ValueError):
            call()
