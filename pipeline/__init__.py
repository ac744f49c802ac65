"""sohoa pipeline: scanned pages in, signed PDF/A e-dossier out.

Data flow (one screen in ``pipeline.ingest``):
inputs -> pages (rasters) -> ocr.page stages -> pdfa -> sign -> storage + manifest -> index.
"""
