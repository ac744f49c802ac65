"""Issue 16 item 2: the parsers of untrusted bytes under a coverage-guided fuzzer (atheris).

``test_bounded_fuzzing_run_is_clean`` runs each target of ``tests/fuzz`` in its own process for
a few seconds from a seed corpus generated here, with a per-input time limit and memory limits:
an exception other than the documented ones, a hang or a memory blow-up leaves a crash file and
fails the test (``test_the_runner_reports`` shows that it would). Every finding of these runs and
of the longer ones (``scripts/fuzz.sh``) is a regression test below, with its minimal input
built in code, and a row of the ``fuzzing`` table of docs/robustness.md."""
from __future__ import annotations

import json

import pytest

from pipeline.errors import ExitCode
from tests.doc_tables import check_table
from tests.fuzz import TARGETS, run, target

# target -> (seconds of the bounded run, -max_len, executions it must at least reach: more than its
# seeds, so the fuzzer did mutate; kept low, since a loaded CI machine may be slow to start it)
BOUNDED = {"inputs": (8, 8192, 30), "manifest": (5, 16384, 200), "codes": (3, 256, 300)}

# (target, what was found, found by, the regression test); the fix is in the test's docstring
FINDINGS = [
    ("inputs", "TypeError (pikepdf _MetadataTypeError) from read_source on a PDF image whose /Height is a string "
     "('sohoa ingest' exit 70)", "scripts/fuzz.sh, about 3 300 executions", "test_finding_pdf_values_of_the_wrong_type"),
    ("inputs", "the same TypeError for a page /Rotate or an image /Width of the wrong type",
     "review while writing the property", "test_finding_pdf_values_of_the_wrong_type"),
    ("inputs", "TypeError from Pillow decoding a TIFF whose StripOffsets tag is of type RATIONAL "
     "('sohoa ingest' exit 70)", "scripts/fuzz.sh, 9 972 executions", "test_finding_tiff_strip_offsets_of_type_rational"),
    ("inputs", "QpdfRuntimeError ('/Count is wrong after flattening pages tree') from pikepdf.open, not a "
     "PdfError ('sohoa ingest' exit 70)", "the suite's bounded run, 764 executions",
     "test_finding_pdf_pages_tree_count_qpdf_cannot_flatten"),
    ("manifest", "KeyError in find_document for a document without inputSha256 (optional in the schema)",
     "atheris, first 40 s run: 11 232 executions", "test_finding_document_without_input_digest"),
    ("manifest", "a dossierCode with '..' accepted by loads (no safe key segment)",
     "scripts/fuzz.sh, 49 107 executions", "test_finding_manifest_values_the_writer_never_writes"),
    ("manifest", "RecursionError from loads on deeply nested JSON ('sohoa show' exit 70)",
     "review while writing the property", "test_finding_deeply_nested_manifest"),
    ("manifest", "code, docId, key or SHA-256 with a trailing newline accepted by loads (schema '$')",
     "review while writing the property", "test_finding_manifest_values_the_writer_never_writes"),
]


@pytest.mark.parametrize("name", TARGETS)
def test_bounded_fuzzing_run_is_clean(name, tmp_path):
    seconds, max_len, minimum = BOUNDED[name]
    result = run(name, tmp_path, max_total_time=seconds, max_len=max_len, timeout=10, wall_limit=seconds + 120)
    print(f"fuzz {name}: {result.executions} executions in {result.seconds} s")
    assert result.clean, (f"fuzz target {name} found {[p.name for p in result.artifacts]} (exit {result.returncode}); "
                          f"replay: python -m tests.fuzz {name} FILE\n{result.output[-4000:]}")
    assert result.executions >= minimum, result.output[-2000:]


@pytest.mark.parametrize("planted, artifact, shown", [
    (b"RAISE", "crash-", "KeyError: 'planted'"),
    (b"HANG", "timeout-", "ALARM: working on the last Unit"),
    (b"BLOAT", "crash-", "MemoryError"),
])
def test_the_runner_reports(planted, artifact, shown, tmp_path):
    """A clean run means something: an exception, a hang past the per-input limit and an
    allocation past the address-space limit each end the run with a file to replay."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "input").write_bytes(planted + b"!")
    result = run("selftest", tmp_path, max_total_time=20, timeout=1, wall_limit=120)
    assert not result.clean
    assert [p.name[:len(artifact)] for p in result.artifacts] == [artifact]
    assert result.artifacts[0].read_bytes() == planted + b"!"
    assert shown in result.output


def test_fuzzing_table():
    """One row per finding (a target without one has a row saying so): the property the target
    checks, its generated seeds, what was found and by what, and the test that keeps it fixed."""
    rows = []
    for name in TARGETS:
        module = target(name)
        found = [(f"{what} ({by})", test) for t, what, by, test in FINDINGS if t == name] or [("none", "")]
        for n, (what, test) in enumerate(found):
            rows.append([name, module.ENTRY_POINTS if n == 0 else "", module.PROPERTY if n == 0 else "",
                         f"{len(module.seeds())} generated" if n == 0 else "", what, test])
    for *_, test in FINDINGS:
        assert callable(globals().get(test)), f"no regression test {test}"
    check_table("fuzzing", ["target", "entry points", "property", "seeds", "finding (found by)", "regression test"],
                rows)


# --------------------------------------------------------------------------- regression tests

def _seed(name: str) -> dict:
    from tests.fuzz import manifest as harness

    return json.loads(harness.seeds()[name])


def _store_manifest(home, manifest: dict, code: str | None = None) -> str:
    code = code or manifest["dossierCode"].strip()
    path = home / "store" / "dossiers" / code / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps(manifest, ensure_ascii=False).encode())
    return code


def test_finding_document_without_input_digest(cli, home):
    """Fix: find_document reads inputSha256 with .get. A document without it (the schema makes
    it optional) is never "the same input again", and finding a duplicate no longer fails."""
    from pipeline import manifest as mf
    from tests.fuzz import manifest as harness

    manifest = _seed("ordinary.json")
    del manifest["documents"][0]["inputSha256"]
    data = json.dumps(manifest).encode()
    harness.test_one_input(data)
    loaded = mf.loads(data)
    second = loaded["documents"][1]
    assert mf.find_document(loaded, second["inputSha256"])["docId"] == second["docId"]
    assert mf.find_document(loaded, "0" * 64) is None
    code = _store_manifest(home, manifest)
    status, out, err = cli("show", code)
    assert status == 0, err
    assert manifest["documents"][0]["docId"] in out


def test_finding_deeply_nested_manifest(cli, home):
    """Fix: loads turns RecursionError into ValueError, so a manifest.json of 5 000 nested
    brackets is reported as a damaged manifest (exit 6), not as an unexpected error (exit 70)."""
    from tests.fuzz import manifest as harness

    data = b"[" * 5000 + b"]" * 5000
    harness.test_one_input(data)
    path = home / "store" / "dossiers" / "H23.50-261201-0097" / "manifest.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    status, _, err = cli("show", "H23.50-261201-0097")
    assert status == ExitCode.INTEGRITY, err
    assert "Manifest của hồ sơ H23.50-261201-0097 bị hỏng" in err and "Lỗi không mong đợi" not in err


def _with(seed: str, change):
    manifest = _seed(seed)
    change(manifest)
    return manifest


VARIANTS = {
    "code with ..": ("empty.json", lambda m: m.update(dossierCode="H15.50..05.13-261008-0975")),
    "code with a newline": ("empty.json", lambda m: m.update(dossierCode=m["dossierCode"] + "\n")),
    "key with a newline": ("ordinary.json", lambda m: m["documents"][0]["pdf"].update(key=m["documents"][0]["pdf"]["key"] + "\n")),
    "sha256 with a newline": ("ordinary.json", lambda m: m["documents"][0]["text"].update(sha256=m["documents"][0]["text"]["sha256"] + "\n")),
    "docId with a newline": ("central.json", lambda m: m["documents"][0].update(docId=m["documents"][0]["docId"] + "\n")),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_finding_manifest_values_the_writer_never_writes(variant, cli, home):
    """Fix: loads checks the dossier code with the store's key rule (no '..', no newline) and
    each docId, key and SHA-256 in full, since the schema's '$' matches before a final newline.
    Such a manifest is reported as damaged (exit 6), before any of its values reaches a key."""
    from tests.fuzz import manifest as harness

    seed, change = VARIANTS[variant]
    manifest = _with(seed, change)
    folder = _seed(seed)["dossierCode"]
    harness.test_one_input(json.dumps(manifest).encode())
    _store_manifest(home, manifest, folder)
    status, _, err = cli("show", folder)
    assert status == ExitCode.INTEGRITY, err
    assert f"Manifest của hồ sơ {folder} bị hỏng" in err


def _pdf(change) -> bytes:
    import io

    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    change(pdf, pdf.pages[0])
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


def _rotate_name(pdf, page):
    page.obj.Rotate = __import__("pikepdf").Name.X


def _width_name(pdf, page):
    import pikepdf

    image = pikepdf.Stream(pdf, b"\x80" * 16)
    image.Type, image.Subtype, image.Width, image.Height = pikepdf.Name.XObject, pikepdf.Name.Image, pikepdf.Name.W, 4
    image.BitsPerComponent, image.ColorSpace = 8, pikepdf.Name.DeviceGray
    page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))


def _height_string(pdf, page):
    _width_name(pdf, page)
    image = page.obj.Resources.XObject.Im0
    image.Width, image.Height = 4, __import__("pikepdf").String("16lter")  # as the fuzzer wrote it


@pytest.mark.parametrize("change", [_height_string, _rotate_name, _width_name],
                         ids=["image height (string)", "rotate /X", "image width /W"])
def test_finding_pdf_values_of_the_wrong_type(change, cli, home, tmp_path):
    """Fix: read_source turns the TypeError (or pikepdf's metadata type error) of a page or image
    dictionary into an InputError naming the file and the page: 'sohoa ingest' refuses the file
    (exit 3) before anything is stored, instead of an unexpected error (exit 70)."""
    from tests.conftest import stored_keys
    from tests.fuzz import inputs as harness

    data = _pdf(change)
    harness.test_one_input(data)
    path = tmp_path / "to-khai.pdf"
    path.write_bytes(data)
    status, _, err = cli("ingest", "--dossier", "H23.50-261201-0096", "--title", "Tờ khai", path)
    assert status == ExitCode.INPUT, err
    assert f"{path}, trang 1: PDF hỏng: từ điển trang có giá trị sai kiểu" in err
    assert stored_keys(home) == []


def test_finding_tiff_strip_offsets_of_type_rational(cli, home, tmp_path):
    """Fix: decoded_frame turns the other exceptions Pillow's plugins raise on damaged files
    (TypeError, KeyError, IndexError, struct.error, ZeroDivisionError) into an InputError: the
    file is refused with its page named (exit 3) before anything is stored."""
    import io
    import struct

    from PIL import Image

    from tests.conftest import stored_keys
    from tests.fuzz import inputs as harness

    buf = io.BytesIO()
    Image.new("L", (48, 36), 255).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    entries = [ifd + 2 + 12 * i for i in range(struct.unpack_from("<H", data, ifd)[0])]
    strip_offsets = next(at for at in entries if struct.unpack_from("<H", data, at)[0] == 0x111)
    struct.pack_into("<H", data, strip_offsets + 2, 5)  # type LONG -> RATIONAL, as the fuzzer flipped it
    harness.test_one_input(bytes(data))
    path = tmp_path / "trang1.tif"
    path.write_bytes(bytes(data))
    status, _, err = cli("ingest", "--dossier", "H23.50-261201-0095", "--title", "Tờ khai", path)
    assert status == ExitCode.INPUT, err
    assert f"{path}, trang 1: ảnh bị cắt cụt hoặc hỏng" in err
    assert stored_keys(home) == []


# the fuzzer's input as it wrote it (zlib, base64): a PDF whose page tree qpdf refuses to flatten
_COUNT_WRONG = (
    "eNrVVn1QE9cWv0sSkiw4GgQqKcjyEUFKSbL5ICg2kgQUKJoAFgv1YUhWjAUWk+WzdSq0fvWDtmq1dVp8oNinTusHoLa2b8T6VTsO"
    "olIKTEesbcUyTkFRasHc3g0RWuyrr++PN+1J7p2z555z9p7fPXvOlRgNSY/LY5S4hLDYKTNDWYm8CsJoKyigywi0RljttlLKjqsI"
    "GUHnrYiPx6WZFcUUIdWbGXMBnY9LjeZ8ykGo0Xo6/sQTVJEVqeHq36p/fd6lhUv1dEkRQ5C4NNVmdRA5hJw1IxSuecm4eezEty0u"
    "f9cyApOTo0A0BkAbZH9O2AGcaAagE42/Lre9atfqDYdOXWzx8BecnM/ZAcNywNX0ycfejR+8uvRStckr6fFpzePM+sWA7myrH1hv"
    "xW509Q8K6wlxwL9rqqqqVp75f+yWxZRFF8J2E3RxQgAwDkCwAxkamJsPR8PDzQvQ4Lh53moAPF38UDH4elCQluf3ymkkB8mJCwwf"
    "6oBLSYRxxwz9f+XwEbc8HE2BGGdh3grKwuDSjJI8xpUGyYUojXBpls3KLCeUGlw6n7LlL2cIhRqXJtkKGMpOSA36TANloa1IT2dj"
    "HEbKrqcLi+kiCiWehs3AAtqeUWy2IHcGqtRmodLn6XDpk1RRPvIpl5MalIYOBn0LhTj8CvaAKSlJyUkobHbnaILdQA8Enp58T56A"
    "z+cLhQLc23eSt5eXd4DP1Mm+QeLg6UHiwEAiPCaCCI0OCwyMjJ0ZLZMrlcrgiLg5GjI+RqEkWSeYUCj09vKeNmnSNDIkMIR8gB56"
    "VORDCB4DIgHCVcbBQoGHCOOIMHgCBKNAeJiL2GMBnF6AeXC4PE++QIh7IYXmKezBcjy4HB6Py0Xaq9A64Ip4PiHyBM+pJjM/dKUv"
    "WfVmnSBMd6DFL72tP1yRZ68W4v6PTAsQS2ZERM6MUqrUsZq4WXpDYtK8+ckpGZmLnspa/HS2xUoty19uW+FgSkrLyisqX3xpzdp1"
    "6ze8vHHT5re2bH37nW31O3Y27Hr/X7v3HGxsaj50+MhHHx//7MTJU6fPfH72wsVL7V92fNXZdeWbq99+9/213us/DNy8NXj7ztBP"
    "d39m48JQDt6n0TRjaUJsIhSbB5fL4fLZ2DCPMlZBxOWFyD19Ekx888qpoWSVwFf3Zt2BFmGYIr3fL8/ehvuHK69IBtjwXNH9d8FV"
    "/0/RjQU3HlsX8OZg6AA5IqAFt49+ca6y72RW5T+2VuzqSniWoovPlVhvNTbtI3sK3wFAN3v6rp3Dwa9qe2fXQdCzjXam1Lc6U6Y3"
    "QrB07+R7j5Yt4QEHBJaBdff4jHZkahoEn2euev1U8GDQeQj602IhkGQlJD6gsyjove8/ffabvWnSzE8uFvV8fPDIkaeaD5YHiCPW"
    "FJc92VM9Y866hCUSx9D2m8ZBepiXC0FvdwqIhuDbuj7tHXw/BG2HS85nRTh2z9tR3mc6crT50jav18hzoRs7FtR+lxp+WFIlDwNz"
    "GY3mh6hrIzOyc0d+7tv+U+inEFxVYudNz0AwQfjCcaoBgtYPP4Kg+rHLTsXcIN6Et2uvkBcguNaBbFv8foQgYE9p1+bK1pqmvldS"
    "lyQvPXxR6vN0TNP1G5sVXxRkcqIiw19yVNWuXR0bw+TkHF1bm0y3dweIclvF/fLje1drMSMEx2dTEMy5rR0RI58DZyMbzh4VR7X7"
    "HNw0/JlT1C29++NuBPmFaxDUmCAQ3Ng6MnQJYWpDWJ6OrN8a/dzk7nZn/tC6kbBDubcuZ6BtNbRCELj7g6acnNQ1tXF0Z4fG53Jr"
    "6E352cY3XhAl+t7NMs9qFzduGm6FnTjqje665O6S8vEumU456BK7BTVi9slopy0ZFIP6q5Rt4aNlU48arHTxaEl1adlYKRHrbtzs"
    "X5pGWW1mHV2OLGXop1DGqNQEqYqJI1ljPV3EoCrqIEiXjbs1G10l2Wi2swXWfQ3IRvg3TEw73yxtz8K7EbViCPYv2ud8OXticpgS"
    "HU4uBBsrruwb5rlc7Kk89d7zzpBaZ8snCYXhWwZyztzxPHE6qq40Y8PNYy8+VnP5yz33Np3QDk5BmXprJzoS31V/9Oh3odff9n75"
    "cwv21zzK1oZUJnVL0htRk/55QJe5EcRX3rme+3s4K/4Uzrrfx1nzBziPIjyK9q9xVj4M5/v3JeX4Dt2NTKkab2MrR18gQzR+rGNP"
    "lkLCvUUDTZjwB8OPG3euZ6+INrrIgC6KRKRhFikj1XI0yRQqDRmXPRNFRlv/4+LYdsvt1DJcRshluGyMCLVKpVATywi3DHVMlGau"
    "laIxmVqmnCgjVSr0HfwNitgymoi7nwMOxmxnXCiQGo0Gl0gSFyb9AqMYhrE="
)


def test_finding_pdf_pages_tree_count_qpdf_cannot_flatten(cli, home, tmp_path):
    """Fix: read_source also turns qpdf's run-time errors (QpdfRuntimeError is a RuntimeError, not
    a pikepdf.PdfError) into an InputError: the file is refused (exit 3) before anything is stored."""
    import base64
    import zlib

    from tests.conftest import stored_keys
    from tests.fuzz import inputs as harness

    data = zlib.decompress(base64.b64decode("".join(_COUNT_WRONG)))
    harness.test_one_input(data)
    path = tmp_path / "ho-so.pdf"
    path.write_bytes(data)
    status, _, err = cli("ingest", "--dossier", "H23.50-261201-0097", "--title", "Hồ sơ", path)
    assert status == ExitCode.INPUT, err
    assert f"{path}" in err and "PDF hỏng hoặc không đọc được" in err
    assert stored_keys(home) == []

