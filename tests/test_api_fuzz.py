"""The HTTP API fuzzed from its own OpenAPI description (schemathesis): whatever a client sends
that the description allows, or nearly allows, with an admin's token, no answer is a server
error. The deployment holds a real converted dossier, so paths and searches reach real data."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from api.http import create_app
from pipeline import config, service
from tests.conftest import save_page

CODE = "H23.50-261201-0301"


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, rendered):
    home = tmp_path_factory.mktemp("fuzz") / "home"
    s = config.load({"SOHOA_HOME": str(home), "SOHOA_API_MAX_UPLOAD_MB": "2"})
    service.add_user(s, "adm", "admin", (), "mat-khau-dai-du")
    token = service.create_token(s, "adm")[1]
    from pipeline.models import IngestRequest

    page = save_page(rendered("fuzz", layout="text", seed=51, dpi=150), home.parent / "p.png")
    service.ingest(s, IngestRequest(CODE, (str(page),), "Đơn"))
    # uploads are accepted but not converted here: the fuzzer would otherwise spend its time in OCR
    app = create_app(s, background=False)
    return {"app": app, "headers": {"Authorization": f"Bearer {token}"}}


def test_no_request_makes_a_server_error(fuzzed):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed["app"])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13
    failures = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def fuzz(case):
            case.call_and_validate(headers=fuzzed["headers"], checks=[not_a_server_error])

        try:
            fuzz()
        except Exception as failure:  # every operation is fuzzed; all failures are reported together
            failures.append(f"{operation.label}: {failure}")
    assert not failures, "\n\n".join(failures)
