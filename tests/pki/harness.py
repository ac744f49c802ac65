"""A real test PKI for the signing tests, built once per test process.

- certomancer (tests/pki/certomancer.yml) with keys generated here, its Animator WSGI app
  served by werkzeug on a free 127.0.0.1 port: CA certificates, CRLs, OCSP and an
  RFC 3161 timestamp authority over real HTTP;
- a SoftHSM2 token in a temporary directory holding the RSA signer's key and certificate;
- an NSS database trusting the test root, for poppler's pdfsig;
- helpers for the independent checks (pdfsig, openssl cms) and a minimal PDF/A-2b input.
"""
from __future__ import annotations

import atexit
import functools
import io
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARCH = "sohoa-test"
P12_PASSWORD = "mật-khẩu thử 123"
TOKEN_LABEL = "sohoa-test-token"
TOKEN_PIN = "246810"
SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
REQUIRED_TOOLS = {
    "softhsm2-util": "softhsm2", "pkcs11-tool": "opensc", "pdfsig": "poppler-utils",
    "pdftotext": "poppler-utils", "certutil": "libnss3-tools", "openssl": "openssl",
}
KEY_SPECS = {
    "root": ("rsa", 2048), "interm": ("rsa", 2048), "tsa": ("rsa", 2048), "ocsp": ("rsa", 2048),
    "signer-rsa": ("rsa", 3072), "signer-ec": ("ec", 256), "signer-expired": ("ec", 256),
    "signer-noku": ("ec", 256), "signer-weak": ("rsa", 1024),
}


def missing_tools() -> list[str]:
    missing = [f"{tool} (Debian: {pkg})" for tool, pkg in REQUIRED_TOOLS.items() if not shutil.which(tool)]
    if not any(os.path.isfile(m) for m in SOFTHSM_MODULES):
        missing.append("libsofthsm2.so (Debian: softhsm2)")
    return missing


def generate_keys(directory: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    directory.mkdir(parents=True, exist_ok=True)
    for label, (kind, size) in KEY_SPECS.items():
        key = (rsa.generate_private_key(65537, size) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1()))
        (directory / f"{label}.key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


@dataclass
class TestPki:
    workdir: Path
    arch: object
    base_url: str
    tsa_url: str
    root_pem: Path
    nss_dir: Path
    softhsm_module: str
    server: object

    def cert_pem(self, label: str) -> bytes:
        from asn1crypto import pem

        return pem.armor("CERTIFICATE", self.arch.get_cert(label).dump())

    def p12(self, label: str) -> Path:
        path = self.workdir / f"{label}.p12"
        if not path.exists():
            path.write_bytes(self.arch.package_pkcs12(label, password=P12_PASSWORD.encode()))
        return path


def _serve(workdir: Path):
    from certomancer.integrations.animator import Animator, AnimatorArchStore
    from certomancer.registry import CertomancerConfig
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, lambda environ, start: [], threaded=True)
    base_url = f"http://127.0.0.1:{server.server_port}"
    config = CertomancerConfig.from_file(str(HERE / "certomancer.yml"), key_search_dir=str(workdir),
                                         external_url_prefix=base_url)
    server.app = Animator(AnimatorArchStore(config.pki_archs), with_web_ui=False)
    threading.Thread(target=server.serve_forever, daemon=True, name="certomancer").start()
    return server, base_url, config.get_pki_arch(ARCH)


def _softhsm_token(workdir: Path, arch, module: str) -> None:
    """A SoftHSM2 token with the RSA signer's key, its certificate and the issuing CA."""
    tokens = workdir / "softhsm-tokens"
    tokens.mkdir()
    conf = workdir / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read by softhsm2-util and by the module loaded in-process
    run = functools.partial(subprocess.run, check=True, capture_output=True, text=True)
    run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", TOKEN_PIN, "--so-pin", "13579"])
    run(["softhsm2-util", "--import", str(workdir / "keys" / "signer-rsa.key.pem"), "--token", TOKEN_LABEL,
         "--label", "signer", "--id", "01", "--pin", TOKEN_PIN])
    for label, obj_id, cert in (("signer", "01", "signer-rsa"), ("issuing-ca", "02", "interm")):
        der = workdir / f"{cert}.der"
        der.write_bytes(arch.get_cert(cert).dump())
        run(["pkcs11-tool", "--module", module, "--token-label", TOKEN_LABEL, "--login", "--pin", TOKEN_PIN,
             "--write-object", str(der), "--type", "cert", "--id", obj_id, "--label", label])


@functools.cache
def test_pki() -> TestPki:
    missing = missing_tools()
    if missing:
        raise RuntimeError("Thiếu công cụ cần cho kiểm thử ký số / signing tests need: " + ", ".join(missing))
    workdir = Path(tempfile.mkdtemp(prefix="sohoa-pki-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    generate_keys(workdir / "keys")
    server, base_url, arch = _serve(workdir)
    atexit.register(server.shutdown)
    root_pem = workdir / "root.pem"
    from asn1crypto import pem

    root_pem.write_bytes(pem.armor("CERTIFICATE", arch.get_cert("root").dump()))
    nss = workdir / "nss"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "sohoa-test-root", "-t", "C,C,C", "-i",
                    str(root_pem)], check=True, capture_output=True)
    module = next(m for m in SOFTHSM_MODULES if os.path.isfile(m))
    _softhsm_token(workdir, arch, module)
    tsa_url = arch.service_registry.get_tsa_info("tsa").url
    return TestPki(workdir, arch, base_url, tsa_url, root_pem, nss, module, server)


# --------------------------------------------------------------------------- inputs and checks

def minimal_pdfa(pages: int = 1, size=(595, 842), names: tuple[str, str] | None = None) -> bytes:
    """A PDF/A-2b with one image per page, written by pikepdf.pdfa.save; ``names``: the dossier code
    and document id its metadata names, as sohoa writes them (``sohoa verify`` compares them)."""
    import pikepdf
    import pikepdf.pdfa
    from PIL import Image, ImageDraw

    pdf = pikepdf.new()
    for n in range(pages):
        img = Image.new("RGB", (300, 424), (236, 228, 210))
        ImageDraw.Draw(img).rectangle((30, 30, 270, 60 + 20 * n), fill=(180, 40, 40))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        page = pdf.add_blank_page(page_size=size)
        image = pikepdf.Stream(pdf, buf.getvalue())
        image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
        image.Width, image.Height, image.BitsPerComponent = 300, 424, 8
        image.ColorSpace, image.Filter = pikepdf.Name.DeviceRGB, pikepdf.Name.DCTDecode
        page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
        page.Contents = pdf.make_stream(b"q %d 0 0 %d 0 0 cm /Im0 Do Q" % size)
    if names:
        with pdf.open_metadata(set_pikepdf_as_editor=False) as xmp:
            xmp["dc:source"], xmp["dc:identifier"] = names
    out = io.BytesIO()
    pikepdf.pdfa.save(pdf, out, "2b")
    return out.getvalue()


def pdfsig(pki: TestPki, data: bytes) -> str:
    with tempfile.NamedTemporaryFile(suffix=".pdf", dir=pki.workdir) as f:
        f.write(data)
        f.flush()
        run = subprocess.run(["pdfsig", "-nssdir", f"sql:{pki.nss_dir}", f.name], capture_output=True, text=True)
    return run.stdout + run.stderr


def pdfsig_blocks(output: str) -> list[str]:
    """pdfsig's report split per signature ("Signature #n:")."""
    return re.split(r"(?m)^Signature #\d+:", output)[1:]


def openssl_cms_verify(pki: TestPki, data: bytes, index: int = 0) -> subprocess.CompletedProcess:
    """Cut the signed byte ranges and the CMS blob of signature ``index`` out of the file
    and let OpenSSL verify them against the test root."""
    ranges = [tuple(map(int, m.groups())) for m in
              re.finditer(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", data)]
    a, b, c, d = sorted(ranges)[index]
    signed = data[a:a + b] + data[c:c + d]
    contents = data[a + b:c].strip()
    assert contents[:1] == b"<" and contents[-1:] == b">", "Contents is not a hex string"
    from asn1crypto import cms as asn1_cms

    # the hex string is zero-padded; cut it to the DER object's own length (stripping zero
    # bytes would also strip a signature value that happens to end in zeros)
    cms = asn1_cms.ContentInfo.load(bytes.fromhex(contents[1:-1].decode()), strict=False).dump()
    work = Path(tempfile.mkdtemp(dir=pki.workdir))
    (work / "signed.bin").write_bytes(signed)
    (work / "sig.der").write_bytes(cms)
    return subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(work / "sig.der"),
                           "-content", str(work / "signed.bin"), "-CAfile", str(pki.root_pem), "-purpose", "any",
                           "-out", os.devnull], capture_output=True, text=True)


def pdftotext_words(data: bytes) -> tuple[float, float, list[tuple[float, float, float, float, str]]]:
    """Page-1 size and words with boxes (top-left origin) from poppler's pdftotext -bbox."""
    import html

    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        f.write(data)
        f.flush()
        out = subprocess.run(["pdftotext", "-f", "1", "-l", "1", "-bbox", f.name, "-"],
                             capture_output=True, text=True, check=True).stdout
    page = re.search(r'<page width="([\d.]+)" height="([\d.]+)"', out)
    words = [(float(m[1]), float(m[2]), float(m[3]), float(m[4]), html.unescape(m[5])) for m in re.finditer(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>', out)]
    return float(page[1]), float(page[2]), words
