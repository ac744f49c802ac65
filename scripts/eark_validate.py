"""Run the E-ARK reference validator (eark-validator 1.1.3) on package folders, offline.

    .venv/share/sohoa/eark-validator/bin/python scripts/eark_validate.py DIR [DIR ...]
    (normally through scripts/eark-validator.sh, which creates that environment)

Runs inside the validator's own virtual environment, never the project's (it pins lxml 5.1.0).
When imported, the validator reads four CSIP vocabularies with ``urllib.request.urlopen`` from
https://earkcsip.dilcis.eu/schema/; this launcher answers those four URLs from the copies in
pipeline/data/eark-vocabularies (CC BY 4.0, DILCIS Board) and refuses any other URL, so a run
needs no network and always uses the same vocabularies.

For each folder it prints one JSON object on a line: the validator's own report (structure,
METS schema, CSIP and SIP Schematron results; ``PackageValidator``, as its CLI uses it) and
sohoa's reading of it: ``errors``, every result of severity ERROR, and the schema validation of
every representation METS the root METS points to (the validator's ``MetsValidator`` on the
files its root validation collected; the reference CLI checks the root METS only). The exit
status is 1 when any package has an error (the reference CLI exits 0 even then), else 0.

One finding is waived, and reported under ``waived`` (``--strict`` counts it as an error): the
validator's SIP14, on the one note of the software CREATOR agent. Its rule requires every note
of every CREATOR agent to carry an unqualified ``NOTETYPE="IDENTIFICATIONCODE"``, while its own
CSIP15/CSIP16 require the software CREATOR agent (CSIP11-13) to have exactly one note, with
``csip:NOTETYPE="SOFTWARE VERSION"``, and the METS schema allows no unqualified attribute on a
note: no package valid against the METS schema can pass both (SIP 2.1 meant SIP13/SIP14 for the
archival creator organisation's note, ``csip:NOTETYPE="IDENTIFICATIONCODE"``). The waiver holds
only when the note the finding points to is exactly that software-version note.
"""
from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

VOCABULARIES = Path(__file__).resolve().parent.parent / "pipeline" / "data" / "eark-vocabularies"
VOCABULARY_BASE = "https://earkcsip.dilcis.eu/schema/"
SERVED = ("CSIPVocabularyContentCategory.xml", "CSIPVocabularyContentInformationType.xml",
          "CSIPVocabularyOAISPackageType.xml", "CSIPVocabularyStatus.xml")


def offline_urlopen(url, *args, **kwargs):
    """The four vocabularies from their local copy (a binary file: iterating it gives lines of
    bytes, as the HTTP response would); any other URL is refused."""
    address = url.full_url if isinstance(url, urllib.request.Request) else str(url)
    name = address[len(VOCABULARY_BASE):] if address.startswith(VOCABULARY_BASE) else None
    if name not in SERVED:
        raise urllib.error.URLError(f"offline: only the CSIP vocabularies are served, not {address}")
    return open(VOCABULARIES / name, "rb")


urllib.request.urlopen = offline_urlopen  # before the validator is imported: it binds urlopen then

from eark_validator.mets import MetsValidator  # noqa: E402
from eark_validator.model.validation_report import Severity  # noqa: E402
from eark_validator.packages import PackageValidator  # noqa: E402
from lxml import etree  # noqa: E402  (the validator's own lxml)

METS = "http://www.loc.gov/METS/"
CSIP = "https://DILCIS.eu/XML/METS/CSIPExtensionMETS"
SIP14_WAIVER = ("SIP14 contradicts CSIP15/CSIP16 and the METS schema on the software CREATOR agent's "
                "one note (csip:NOTETYPE='SOFTWARE VERSION'); see scripts/eark_validate.py")


def problems(report) -> list[dict]:
    """Every ERROR result of the report, in the order the validator gives them."""
    found = []
    groups = [("structure", report.structure.messages if report.structure else [])]
    if report.metadata is not None:
        groups += [("schema", report.metadata.schema_results.messages),
                   ("schematron", report.metadata.schematron_results.messages)]
    for where, messages in groups:
        found += [{"check": where, "rule": m.rule_id, "location": m.location, "message": m.message}
                  for m in messages if m.severity == Severity.ERROR]
    return found


def is_software_version_note(mets: etree._ElementTree, location: str) -> bool:
    """The element a Schematron finding points to (the XPath at the end of its location) is the
    one note of a CREATOR agent of TYPE OTHER, OTHERTYPE SOFTWARE, with csip:NOTETYPE
    'SOFTWARE VERSION': the note CSIP15/CSIP16 require."""
    at = location.find("/*[local-name()=")
    if at < 0:
        return False
    try:
        found = mets.xpath(location[at:])
    except etree.XPathError:
        return False
    if len(found) != 1 or not isinstance(found[0], etree._Element):
        return False
    note, agent = found[0], found[0].getparent()
    return (note.tag == f"{{{METS}}}note" and note.get(f"{{{CSIP}}}NOTETYPE") == "SOFTWARE VERSION"
            and agent is not None and agent.tag == f"{{{METS}}}agent" and agent.get("ROLE") == "CREATOR"
            and agent.get("TYPE") == "OTHER" and agent.get("OTHERTYPE") == "SOFTWARE"
            and len(agent.findall(f"{{{METS}}}note")) == 1)


def waivable(package: Path, error: dict) -> bool:
    if error["check"] != "schematron" or error["rule"] != "SIP14":
        return False
    try:
        mets = etree.parse(str(package / "METS.xml"))
    except (OSError, etree.XMLSyntaxError):
        return False
    return is_software_version_note(mets, error["location"] or "")


def representation_schema_errors(package: Path) -> list[dict]:
    """Schema validation (the validator's CSIP METS schema) of each representation METS."""
    root = MetsValidator(str(package))
    root.validate_mets("METS.xml")
    found = []
    for name in root.representations:
        href = root.get_mets_path(name)
        if not (package / href).is_file():
            found.append({"check": "representation", "rule": "CSIPSTR12", "location": href,
                          "message": f"representation METS {href} is missing"})
            continue
        rep = MetsValidator(str(package))
        rep.validate_mets(href)
        found += [{"check": "representation-schema", "rule": e.rule_id, "location": href, "message": e.message}
                  for e in rep.validation_errors if e.severity == Severity.ERROR]
    return found


def validate(package: Path, strict: bool = False) -> dict:
    report = PackageValidator(package).validation_report
    found = problems(report)
    if report.metadata is not None:
        found += representation_schema_errors(package)
    waived = [] if strict else [dict(e, reason=SIP14_WAIVER) for e in found if waivable(package, e)]
    errors = [e for e in found if strict or not waivable(package, e)]
    return {"package": str(package), "valid": not errors, "errors": errors, "waived": waived,
            "report": json.loads(report.model_dump_json())}


def main(argv: list[str]) -> int:
    strict = "--strict" in argv
    packages = [a for a in argv if a != "--strict"]
    if not packages:
        print("dùng: eark_validate.py [--strict] THƯ_MỤC_GÓI [...]", file=sys.stderr)
        return 2
    failed = False
    for arg in packages:
        result = validate(Path(arg), strict)
        failed |= not result["valid"]
        print(json.dumps(result, ensure_ascii=False))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
