"""A dossier's preservation events (PREMIS): what its manifest records, and the fixity checks and
signature validations an archivist's verification stores with it, failures included."""
from __future__ import annotations

import json
import os

import pytest

from pipeline import events, service
from storage import keys
from storage.errors import RetentionError
from tests.test_verify import CODE, settings, signed_document, store_dossier


@pytest.fixture
def dossier(home, pki):
    pdf, record = signed_document("B-T")
    store, doc_id = store_dossier(home, pdf, record)
    manifest = json.loads(store.get(keys.manifest(CODE)))
    manifest["events"] = [{"at": record.signed_at.isoformat(), "type": "ingest", "docId": doc_id,
                           "outcome": "success", "detail": "2 trang"}]
    store.put(keys.manifest(CODE), json.dumps(manifest, ensure_ascii=False).encode())
    return settings(home, pki, "B-T"), store, doc_id


def test_an_archivists_verification_is_stored_with_the_dossier_as_its_events(dossier, cli):
    conf, store, doc_id = dossier
    assert not service.verify(conf, [CODE]).failed
    kinds = [(e["type"], e["outcome"]) for e in service.dossier_events(conf, CODE)]
    assert kinds == [("ingestion", "success"), ("digital signature generation", "success"),
                     ("fixity check", "success"), ("digital signature validation", "success")]
    stored = events.recorded(store, CODE)
    assert all(e["agent"]["software"].startswith("sohoa") and e["agent"]["actor"] for e in stored)
    # an officer's view of the dossier is an access (audit log), not a preservation event
    service.verify_dossier(conf, CODE)
    assert len(events.recorded(store, CODE)) == 2

    # one byte of the stored PDF changes on disk: the next check fails, and says so in its event
    path = home_path(conf) / keys.document_pdf(CODE, doc_id)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    assert service.verify(conf, [CODE]).failed
    fixity = [e for e in events.recorded(store, CODE) if e["type"] == "fixity check"]
    assert [e["outcome"] for e in fixity] == ["success", "failure"]
    assert "SHA-256" in fixity[-1]["outcomeDetail"] and doc_id in fixity[-1]["outcomeDetail"]

    code, out, _ = cli("events", CODE)
    assert code == 0 and "kiểm tra mã băm (fixity check): KHÔNG ĐẠT" in out and "tiếp nhận (ingestion): đạt" in out
    # its details in Vietnamese too (they read "SHA-256 and size of 1 stored PDF(s) against the manifest")
    assert "mã băm SHA-256 và kích thước của 1 tệp PDF đã lưu, đối chiếu với manifest" in out
    assert "stored PDF(s)" not in out and "document(s)" not in out


def test_stored_events_are_write_once_and_a_dossier_that_cannot_be_read_still_gets_its_failed_check(dossier):
    conf, store, _ = dossier
    first = events.record(store, CODE, "replication", "success", detail="to the replica")
    key = store.list(keys.dossier_events(CODE))[0]
    with pytest.raises(RetentionError):
        store.put(key, b"{}")
    assert events.recorded(store, CODE) == [first]
    # a manifest that no longer parses: verification fails, and a failed fixity check is stored first
    store.put(keys.manifest(CODE), b"{not json")
    service.verify(conf, [CODE])
    last = events.recorded(store, CODE)[-1]
    assert (last["type"], last["outcome"]) == ("fixity check", "failure") and last["outcomeDetail"]


def home_path(conf):
    return conf.home / "store"
