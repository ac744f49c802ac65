"""sohoa pipeline: scanned pages in, signed PDF/A e-dossier out.

The doors (``api``) call ``pipeline.service`` only. Below it, one module a job:

    service ─► ingest (orchestrator, one screen) ─► inputs ─► executor/pages (ocr.page) ─► pdfa
            │                                     ─► signing.pades ─► storage + manifest ─► index
            ├► checks (verify a stored dossier: fixity, signing.validation)
            └► renewal (B-LTA timestamps)          repository (manifests under a lock), audit

``models`` holds the frozen data at the seams, ``errors`` every error and exit code,
``config`` the typed settings read once from SOHOA_*.
"""
