"""PAdES signing of sohoa's PDF/A-2b documents, and B-LTA document timestamps.

One signature per document, made last, as an incremental update (the PDF/A bytes before
it are kept byte for byte), at the ``Signer``'s level (see ``certificates``), with the
visible stamp of ``appearance``, placed on free paper at the top right of page 1 (or, when
the top of the page has none, in a white band the signing revision adds above the scan).
The signed file must still be PDF/A-2b (``pdfa_signed.pdfa_check``), or nothing is returned.
``sign_pdf`` signs bytes; ``sign_pdf_file`` signs a file into another, reading and writing
it as it goes, for documents too large to hold several copies of in memory.
"""
from __future__ import annotations

import io
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pipeline.errors import PdfaError, SigningError, SohoaError

from .appearance import StampPlacement, TextMeasure, _stamp_style, font_path, place_stamp, read_page_one, \
    stamp_box, stamp_lines
from .certificates import DEFAULT_COPY_TYPE, PADES_SUBFILTER, TEST_MARK, algorithm_name, certificate_sha256, \
    check_certificate, vietnam_now
from .glue import fetcher_backend, run_async, validation_context
from .pdfa_signed import is_signed, pdfa_check
from .status import SignatureRecord

log = logging.getLogger(__name__)

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
    form = reader.root["/AcroForm"] if "/AcroForm" in reader.root else None  # [] dereferences, get() does not
    fields = form["/Fields"] if form is not None and "/Fields" in form else []
    existing = {str(f.get_object().get("/T")) for f in fields}
    n = 1
    while f"{FIELD_PREFIX}{n}" in existing:
        n += 1
    return f"{FIELD_PREFIX}{n}"


def sign_pdf(pdf: bytes, signer: Signer, *, copy_type: str = DEFAULT_COPY_TYPE,
             organisation: str | None = None, visible: bool = True) -> tuple[bytes, SignatureRecord]:
    """Sign PDF/A-2b bytes as a PAdES signature in an incremental update.

    Returns the signed bytes and the manifest's ``signature`` record, whose ``stamp`` says
    where the visible stamp went (None for an invisible signature). Refuses input that is
    not PDF/A-2b (an already signed PDF/A-2b is judged as a signed file) and output that
    would not stay PDF/A-2b (see pdfa_signed.pdfa_check)."""
    out = io.BytesIO()
    record = _sign(pdf, io.BytesIO(pdf), out, signer, copy_type, organisation, visible)
    signed = out.getvalue()
    _require_pdfa(signed)
    return signed, record


def sign_pdf_file(source: Path, target: Path, signer: Signer, *, copy_type: str = DEFAULT_COPY_TYPE,
                  organisation: str | None = None, visible: bool = True) -> SignatureRecord:
    """``sign_pdf`` from the file ``source`` into the file ``target``; returns the record."""
    source, target = Path(source), Path(target)
    with open(source, "rb") as read, open(target, "w+b") as write:
        record = _sign(source, read, write, signer, copy_type, organisation, visible)
    _require_pdfa(target)
    return record


def _sign(pdf: bytes | Path, read: BinaryIO, write: BinaryIO, signer: Signer, copy_type: str,
          organisation: str | None, visible: bool) -> SignatureRecord:
    from pipeline.pdfa import validate

    if not (validate(pdf)[0] or (is_signed(pdf) and pdfa_check(pdf).ok)):
        raise PdfaError("Tệp đưa vào ký không phải PDF/A-2b hợp lệ; không ký", "input is not valid PDF/A-2b")
    check_certificate(signer.certificate)
    signed_at = vietnam_now()
    organisation = organisation or signer.agency_name
    layout = stamp_layout(pdf, stamp_lines(copy_type, organisation, signed_at, signer.test)) if visible else None
    job = _sign_async(read, write, signer, signed_at, copy_type, organisation, layout)
    if signer.source == "pkcs11":
        with signer.token_lock:
            run_async(job)
    else:
        run_async(job)
    return SignatureRecord(
        subfilter=PADES_SUBFILTER,
        level=signer.level,
        signer=signer.signer_name,
        certificate_sha256=certificate_sha256(signer.certificate),
        signed_at=signed_at,
        test_signature=signer.test,
        algorithm=algorithm_name(signer.certificate),
        stamp=layout[1].to_json() if layout is not None else None,
        issuer_sha256=certificate_sha256(signer.issuer) if signer.issuer is not None else None,
    )


def _require_pdfa(signed: bytes | Path) -> None:
    verdict = pdfa_check(signed)
    if not verdict.ok:
        raise PdfaError("Tệp sau khi ký không còn là PDF/A-2b (signed file is not PDF/A-2b): "
                        + "; ".join(verdict.findings))


def stamp_layout(pdf: bytes | Path, lines: list[str], measure=None) -> tuple[list[str], StampPlacement]:
    """The stamp's wrapped lines and its placement on page 1 of ``pdf``: free paper at the top
    right, away from the scan's ink and from earlier signatures' widgets, or a band."""
    measure = measure or TextMeasure(font_path()).width
    page = read_page_one(pdf)
    lines, (x0, y0, x1, y1) = stamp_box(page.box, lines, measure)
    # A band changes page 1's MediaBox, which after an earlier signature is a modification
    # that pyHanko and Acrobat count against that signature: a signed file gets no band.
    placement = place_stamp(page.ink, page.scale, page.box, (x1 - x0, y1 - y0), page.annotations,
                            band=not page.signed)
    if placement is None:
        raise SigningError("Trang 1 của tệp đã ký không còn chỗ trống để đặt dấu chữ ký số mà không che nội dung "
                           "hoặc chữ ký trước; thêm dải trắng sẽ làm chữ ký trước bị coi là đã sửa",
                           "page 1 of the already signed file has no free place for the visible stamp, and a "
                           "band would count as a modification against the earlier signature")
    return lines, placement


def _add_band(writer, band_pt: float) -> None:
    """Page 1 grows upward by ``band_pt`` (MediaBox, and CropBox when it has one) in the
    revision being written; the scan stays where it is and the band above it is blank."""
    from pyhanko.pdf_utils import generic

    page_ref, _ = writer.find_page_for_modification(0)
    page = page_ref.get_object()

    def inherited(key):
        node = page
        while node is not None and key not in node:
            node = node.get("/Parent")
            node = node.get_object() if node is not None else None
        return [float(v) for v in node[key]] if node is not None else None

    def grown(box, top):
        x0, y0, x1 = min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2])
        return generic.ArrayObject(generic.FloatObject(round(v, 4)) for v in (x0, y0, x1, top))

    media, crop = inherited("/MediaBox"), inherited("/CropBox")
    visible_top = max(crop[1], crop[3]) if crop else max(media[1], media[3])
    page["/MediaBox"] = grown(media, max(max(media[1], media[3]), visible_top + band_pt))
    if crop:
        page["/CropBox"] = grown(crop, visible_top + band_pt)
    writer.mark_update(page_ref)


async def _sign_async(read: BinaryIO, write: BinaryIO, signer: Signer, signed_at, copy_type, organisation,
                      layout) -> None:
    """The signed file from ``read`` into ``write`` (readable and seekable: pyHanko hashes
    what it wrote from there)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.fields import SigSeedSubFilter
    from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
    from pyhanko.sign.timestamps import HTTPTimeStamper

    writer = IncrementalPdfFileWriter(read)
    name = _field_name(writer.prev)
    visible = layout is not None
    stamp, box = None, None
    if visible:
        lines, placement = layout
        box = placement.box
        stamp = _stamp_style(lines, font_path())
        if placement.band_pt:
            _add_band(writer, placement.band_pt)
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
        await pdf_signer.async_sign_pdf(writer, output=write)
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
    from pyhanko.sign.validation import async_add_validation_info

    class SingleRevisionTimeStamper(PdfTimeStamper):
        """Validation data for the new timestamp goes into the timestamp's own revision, so
        the new document timestamp is the last revision and covers the whole file."""

        async def async_timestamp_pdf(self, *args, **kwargs):
            kwargs["dss_settings"] = TimestampDSSContentSettings(update_before_ts=True, include_vri=False)
            return await super().async_timestamp_pdf(*args, **kwargs)

    backend = fetcher_backend()
    try:
        stamper = SingleRevisionTimeStamper(HTTPTimeStamper(tsa_url, timeout=30))
        context = validation_context(trust_roots, (), revocation_mode, backend)
        out = io.BytesIO(pdf)
        reader = PdfFileReader(out)
        if not reader.embedded_timestamp_signatures and reader.embedded_regular_signatures:
            # B-T: no document timestamp yet, and none of the signer's validation data. Without
            # it the renewed file, judged offline from what it embeds, failed where the B-T file
            # passed (found by the archive review): it is embedded first, as signing at B-LT does,
            # as of the signature's timestamp (the signer's certificate usually ends before the
            # TSA's). When it cannot be had, the document timestamp is added alone, as before.
            signature = reader.embedded_regular_signatures[-1]
            try:
                at = _timestamp_time(signature)
                await async_add_validation_info(signature, context if at is None else validation_context(
                    trust_roots, (), revocation_mode, backend, moment=at, retroactive_revinfo=True), in_place=True)
            except Exception as exc:  # noqa: BLE001 - the renewal still protects what the file holds
                log.warning("renewal: the signer's validation data could not be embedded (%s: %s); "
                            "the document timestamp is added alone", type(exc).__name__, exc)
            reader = PdfFileReader(out)
        await stamper.async_update_archival_timestamp_chain(reader, context, in_place=True)
        return out.getvalue()
    except Exception as exc:
        raise SigningError(f"Gia hạn dấu thời gian thất bại: {renewal_failure_vi(exc)}",
                           f"timestamp renewal failed: {type(exc).__name__}: {exc}") from exc
    finally:
        await backend.close()


def _timestamp_time(signature) -> datetime | None:
    """When the signature's own timestamp (B-T) says it was made, or None."""
    attributes = signature.signer_info["unsigned_attrs"]
    for attribute in attributes if attributes.native else ():
        if attribute["type"].native == "signature_time_stamp_token":
            token = attribute["values"][0]["content"]
            return token["encap_content_info"]["content"].parsed["gen_time"].native
    return None


def renewal_failure_vi(exc: BaseException) -> str:
    """Why a renewal failed, for an archivist (the library's words stay in the English detail)."""
    from pyhanko.sign.timestamps import TimestampRequestError
    from pyhanko_certvalidator.errors import ExpiredError, RevokedError, StaleRevinfoError

    if isinstance(exc, TimestampRequestError):
        return "máy chủ dấu thời gian (SOHOA_TSA_URL) không trả lời hoặc trả lời sai; thử lại khi nó hoạt động"
    if isinstance(exc, ExpiredError):
        return ("một chứng thư trong chuỗi (của người ký hoặc của TSA) đã hết hạn: quá muộn để gia hạn tệp này; "
                "tệp cần được gia hạn trước khi chứng thư TSA hết hạn")
    if isinstance(exc, RevokedError):
        return "một chứng thư trong chuỗi đã bị thu hồi"
    if isinstance(exc, StaleRevinfoError):
        return ("dữ liệu thu hồi (CRL/OCSP) lấy được đã cũ, không đủ mới để chứng minh chứng thư còn hiệu lực; "
                "kiểm tra nơi phát hành CRL/OCSP rồi thử lại")
    return "không lấy được hoặc không kiểm tra được dữ liệu cần cho dấu thời gian (chi tiết ở dòng tiếng Anh)"
