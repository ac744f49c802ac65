"""Machines of one deployment share the object store and the database, and nothing else:
what one machine stored, signed or logged, another reads, verifies and sees."""
from __future__ import annotations

from pipeline import config, service
from pipeline.models import IngestRequest
from storage import keys
from tests.conftest import save_page

CODE = "H23.50-261201-0031"


def _machine(tmp_path, name: str, s3: dict, pg_url: str):
    return config.load({"SOHOA_HOME": str(tmp_path / name), "SOHOA_STORAGE": "s3",
                        "SOHOA_S3_ENDPOINT": s3["endpoint"], "SOHOA_S3_ACCESS_KEY": s3["access_key"],
                        "SOHOA_S3_SECRET_KEY": s3["secret_key"], "SOHOA_S3_BUCKET": s3["bucket"],
                        "SOHOA_DATABASE_URL": pg_url, "SOHOA_JOBS": "1"})


def test_one_development_key_per_deployment_kept_in_the_store(tmp_path, rendered, s3_settings, pg_url, pg_engine):
    first, second = (_machine(tmp_path, name, s3_settings, pg_url) for name in ("may-1", "may-2"))
    a = save_page(rendered("shared-a", layout="text", seed=701, dpi=150), tmp_path / "a.png")
    b = save_page(rendered("shared-b", layout="text", seed=702, dpi=150), tmp_path / "b.png")

    one = service.ingest(first, IngestRequest(CODE, (str(a),), "Đơn"))
    two = service.ingest(second, IngestRequest(CODE, (str(b),), "Bản sao"))
    assert (one.doc_id, two.doc_id) == (f"{CODE}.001", f"{CODE}.002")  # one dossier, numbered across machines
    assert one.signature["certificateSha256"] == two.signature["certificateSha256"]  # the same key signed both
    assert service.open_store(first).exists(keys.system("dev-signing.json"))

    third = _machine(tmp_path, "may-3", s3_settings, pg_url)  # never signed anything
    verdicts = service.verify_dossier(third, CODE)
    assert [v.ok for v in verdicts] == [True, True], [v.message_en for v in verdicts]
    log = service.audit_log(third, last=50)
    assert log.intact and {e["action"] for e in log.events} >= {"ingest", "verify"}


def test_a_shared_database_is_migrated_only_by_db_upgrade(tmp_path, capsys):
    """Many workers must never race to migrate on first use: on PostgreSQL every command refuses
    an outdated schema (exit 15, saying what to run) until `sohoa db upgrade` has run."""
    from api.cli import main as sohoa
    from tests.services import throwaway_pg_database

    with throwaway_pg_database("sohoa_upgrade") as url:
        settings = config.load({"SOHOA_HOME": str(tmp_path / "home"), "SOHOA_DATABASE_URL": url})
        assert sohoa(["search", "nghị định"], settings=settings) == 15
        assert "sohoa db upgrade" in capsys.readouterr().err
        assert sohoa(["db", "upgrade"], settings=settings) == 0
        assert "Đã nâng cấp cơ sở dữ liệu" in capsys.readouterr().out
        assert sohoa(["db", "upgrade"], settings=settings) == 0
        assert "không thay đổi gì" in capsys.readouterr().out
        assert sohoa(["search", "nghị định"], settings=settings) == 0
