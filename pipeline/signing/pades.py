"""PAdES signing of sohoa's PDF/A-2b documents, and B-LTA document timestamps.

One signature per document, made last, as an incremental update (the PDF/A bytes before
it are kept byte for byte), at the ``Signer``'s level (see ``certificates``), with the
visible stamp of ``appearance``. The signed file must still be PDF/A-2b
(``pdfa_signed.pdfa_check``), or nothing is returned.
"""
from __future__ import annotations

import io
from datetime import datetime
from typing import TYPE_CHECKING

from pipeline.errors import PdfaError, SigningError, SohoaError

from .appearance import TextMeasure, _stamp_style, font_path, page_one_box, stamp_box, stamp_lines
from .certificates import DEFAULT_COPY_TYPE, PADES_SUBFILTER, TEST_MARK, algorithm_name, certificate_sha256, \
    check_certificate, vietnam_now
from .glue import fetcher_backend, run_async, validation_context
from .pdfa_signed import pdfa_check
from .status import SignatureRecord

if TYPE_CHECKING:
    from .keys import Signer

FIELD_PREFIX = "SohoaSignature"


def _pades_signer_class():
    from pyhanko.sign.signers import PdfSigner, constants

    class PadesPdfA2Signer(PdfSigner):
        """pyHanko's PdfSigner with a fixed signing time and PDF 1.7 kept.

        pyHanko declares the ISO 32002 extension (PDF 2.0) for ECDSA keys; PDF/A-2 forbids
        versions above 1.7 and PAdES itself needs only the ESIC extension."""

        def __init__(self, *args, system_time: datetime, **kwargs):
            super().__init__(*args, **kwargs)
            self._system_time = system_time

        def init_signing_session(self, pdf_out, existing_fields_only=False):
            session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
            session.system_time = self._system_time
            return session

        def register_extensions(self, pdf_out, *, md_algorithm):
            pdf_out.ensure_output_version((1, 7))
            pdf_out.register_extension(constants.ESIC_EXTENSION_1)

    return PadesPdfA2Signer


def _field_name(reader) -> str:
    form = reader.root.get("/AcroForm")
    existing = {str(f.get_object().get("/T")) for f in form.get("/Fields", [])} if form else set()
    n = 1
    while f"{FIELD_PREFIX}{n}" in existing:
        n += 1
    return f"{FIELD_PREFIX}{n}"


def sign_pdf(pdf: bytes, signer: Signer, *, copy_type: str = DEFAULT_COPY_TYPE,
             organisation: str | None = None, visible: bool = True) -> tuple[bytes, SignatureRecord]:
    """Sign PDF/A-2b bytes as a PAdES signature in an incremental update.

    Returns the signed bytes and the manifest's ``signature`` record. Refuses input that
    is not PDF/A-2b and output that would not stay PDF/A-2b (see pdfa_signed.pdfa_check)."""
    from pipeline.pdfa import validate

    if not validate(pdf)[0]:
        raise PdfaError("Tệp đưa vào ký không phải PDF/A-2b hợp lệ; không ký", "input is not valid PDF/A-2b")
    check_certificate(signer.certificate)
    signed_at = vietnam_now()
    job = _sign_async(pdf, signer, signed_at, copy_type, organisation or signer.agency_name, visible)
    if signer.source == "pkcs11":
        with signer.token_lock:
            signed = run_async(job)
    else:
        signed = run_async(job)
    verdict = pdfa_check(signed)
    if not verdict.ok:
        raise PdfaError("Tệp sau khi ký không còn là PDF/A-2b (signed file is not PDF/A-2b): "
                        + "; ".join(verdict.findings))
    return signed, SignatureRecord(
        subfilter=PADES_SUBFILTER,
        level=signer.level,
        signer=signer.signer_name,
        certificate_sha256=certificate_sha256(signer.certificate),
        signed_at=signed_at,
        test_signature=signer.test,
        algorithm=algorithm_name(signer.certificate),
    )


async def _sign_async(pdf, signer: Signer, signed_at, copy_type, organisation, visible) -> bytes:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.fields import SigSeedSubFilter
    from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
    from pyhanko.sign.timestamps import HTTPTimeStamper

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    name = _field_name(writer.prev)
    stamp, box = None, None
    if visible:
        font = font_path()
        measure = TextMeasure(font).width
        lines, box = stamp_box(page_one_box(pdf),
                               stamp_lines(copy_type, organisation, signed_at, signer.test), measure)
        stamp = _stamp_style(lines, font)
    long_term = signer.level in ("B-LT", "B-LTA")
    backend = fetcher_backend() if long_term else None
    try:
        meta = signers.PdfSignatureMetadata(
            field_name=name,
            subfilter=SigSeedSubFilter.PADES,
            md_algorithm="sha256",
            reason=(f"{copy_type} - {TEST_MARK}" if signer.test else copy_type),
            location=organisation,
            embed_validation_info=long_term,
            use_pades_lta=signer.level == "B-LTA",
            validation_context=(validation_context(signer.trust_roots, signer.chain, signer.revocation_mode,
                                                   backend) if long_term else None),
            # B-LT in the signature's own revision: any validator, incremental-update aware or
            # not, then sees one revision covering the whole file.
            dss_settings=DSSContentSettings(placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE,
                                            include_vri=False),
        )
        pdf_signer = _pades_signer_class()(
            meta, signer.cms_signer, system_time=signed_at,
            timestamper=HTTPTimeStamper(signer.tsa_url, timeout=30) if signer.level != "B-B" else None,
            stamp_style=stamp,
            new_field_spec=fields.SigFieldSpec(name, on_page=0, box=box) if visible
            else fields.SigFieldSpec(name, on_page=0),
        )
        out = await pdf_signer.async_sign_pdf(writer)
        return out.getvalue()
    except SohoaError:
        raise
    except Exception as exc:
        raise SigningError(f"Ký số thất bại (signing failed): {type(exc).__name__}: {exc}") from exc
    finally:
        if backend is not None:
            await backend.close()


def add_document_timestamp(pdf: bytes, tsa_url: str, trust_roots, *, revocation_mode="hard-fail") -> bytes:
    """B-LTA renewal: validation data for the last timestamp plus a fresh document timestamp,
    in an incremental update."""
    return run_async(_timestamp_async(pdf, tsa_url, trust_roots, revocation_mode))


async def _timestamp_async(pdf, tsa_url, trust_roots, revocation_mode) -> bytes:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.signers import PdfTimeStamper
    from pyhanko.sign.signers.pdf_signer import TimestampDSSContentSettings
    from pyhanko.sign.timestamps import HTTPTimeStamper

    class SingleRevisionTimeStamper(PdfTimeStamper):
        """Validation data for the new timestamp goes into the timestamp's own revision, so
        the new document timestamp is the last revision and covers the whole file."""

        async def async_timestamp_pdf(self, *args, **kwargs):
            kwargs["dss_settings"] = TimestampDSSContentSettings(update_before_ts=True, include_vri=False)
            return await super().async_timestamp_pdf(*args, **kwargs)

    backend = fetcher_backend()
    try:
        stamper = SingleRevisionTimeStamper(HTTPTimeStamper(tsa_url, timeout=30))
        out = io.BytesIO(pdf)
        await stamper.async_update_archival_timestamp_chain(
            PdfFileReader(out), validation_context(trust_roots, (), revocation_mode, backend), in_place=True)
        return out.getvalue()
    except Exception as exc:
        raise SigningError(f"Gia hạn dấu thời gian thất bại (timestamp renewal failed): "
                           f"{type(exc).__name__}: {exc}") from exc
    finally:
        await backend.close()
