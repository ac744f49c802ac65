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
    s = config.load({"SOHOA_HOME": str(home), "SOHOA_API_MAX_UPLOAD_MB": "2", "SOHOA_OCR_ENGINE": "tesseract"})
    service.add_user(s, "adm", "admin", (), "mat-khau-dai-du")
    token = service.create_token(s, "adm")[1]
    from pipeline.models import IngestRequest

    # a small page of three lines: what is fuzzed is the API, not the OCR
    page = save_page(rendered("fuzz-small", layout="text", seed=51, dpi=100, max_body_lines=3, degradation=0,
                              color="gray"), home.parent / "p.png")
    service.ingest(s, IngestRequest(CODE, (str(page),), "Đơn"))
    # uploads are accepted but not converted here: the fuzzer would otherwise spend its time in OCR
    app = create_app(s, background=False)
    return {"app": app, "headers": {"Authorization": f"Bearer {token}"}}


# the web pages' API twins: what the counter, the back office and the archive do in the browser
TWINS = {"POST /api/v1/dossiers/{code}/documents", "GET /api/v1/search", "GET /api/v1/dossiers/{code}",
         "GET /api/v1/dossiers/{code}/documents/{doc_id}/pdf", "GET /api/v1/dossiers/{code}/verify",
         "GET /api/v1/jobs", "GET /api/v1/jobs/{job_id}", "POST /api/v1/jobs/{job_id}/retry",
         "GET /api/v1/reports/digitisation", "GET /api/v1/dossiers/{code}/checklist",
         "PUT /api/v1/dossiers/{code}/checklist"}
PUBLIC = {"GET /healthz", "GET /readyz"}


def fuzz_all(fuzzed, headers: dict, examples: int, check) -> list[str]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed["app"])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert TWINS | PUBLIC <= {op.label for op in operations}
    failures = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def fuzz(case):
            response = case.call(headers=headers)
            case.validate_response(response, checks=[not_a_server_error])
            check(operation.label, response)

        try:
            fuzz()
        except Exception as failure:  # every operation is fuzzed; all failures are reported together
            failures.append(f"{operation.label}: {failure}")
    return failures


def test_no_request_makes_a_server_error(fuzzed):
    failures = fuzz_all(fuzzed, fuzzed["headers"], 25, lambda label, response: None)
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("credentials", [{}, {"Authorization": "Bearer sohoa_000000000000_not-a-token"}],
                         ids=["no-token", "invalid-token"])
def test_without_valid_credentials_no_request_gets_data_or_a_server_error(fuzzed, credentials):
    def no_data(label: str, response) -> None:
        if label not in PUBLIC:
            assert response.status_code >= 400, (label, response.status_code, response.text[:200])

    failures = fuzz_all(fuzzed, credentials, 6, no_data)
    assert not failures, "\n\n".join(failures)
