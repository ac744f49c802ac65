"""sohoa pipeline: scanned pages in, signed PDF/A e-dossier out.

The doors (``api``) call ``pipeline.service`` only. Below it, one module a job:

    service ─► ingest (orchestrator, one screen) ─► inputs ─► executor/pages (ocr.page) ─► pdfa
            │                                     ─► signing.pades ─► storage + manifest ─► index
            ├► checks (verify a stored dossier: fixity, signing.validation)
            └► renewal (B-LTA timestamps)          repository (manifests under a lock), audit

``models`` holds the frozen data at the seams, ``errors`` every error and exit code,
``config`` the typed settings read once from SOHOA_*.
"""

import warnings as _warnings

# cryptography (51 here) warns that DSA is deprecated whenever pyHanko imports its DSA key class
# (to recognise such keys): printed on the standard error of every command that signs or verifies,
# about keys sohoa never makes or accepts (TT 15/2025: RSA and ECDSA)
_warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"pyhanko\.")
