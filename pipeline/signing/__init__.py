"""PAdES signing and validation of sohoa's PDF/A-2b documents, split by job.

Modules in rows, lowest first; a module imports only modules of lower rows, never one of
its own row or a higher one, so imports go one way:

1. ``certificates``: TT 15/2025 certificate policy, PAdES levels, constants;
   ``glue``: pyHanko/asyncio glue (event loop, fetcher backend, validation context);
   ``status``: the frozen result types (signature record, verdicts);
2. ``devpki``: the development CA and signer under ``SOHOA_HOME/dev-signing``;
3. ``appearance``: the visible stamp (NĐ 30/2020 text, geometry, font);
   ``pdfa_signed``: PDF/A-2b of a signed file;
4. ``keys``: the key sources (PKCS#12, PKCS#11, development key), ``Signer``, trust roots;
5. ``pades``: signing and B-LTA document timestamps;
   ``validation``: verdicts on signed files.

As in pyHanko, validation never imports the signers: ``validation`` uses only
``certificates``, ``glue``, ``status`` and ``pdfa_signed``, so verifying a file never loads a
key source, the stamp or the development PKI. Outside ``pipeline.errors``,
``pipeline.config`` (types) and ``pipeline.pdfa``, nothing here imports the rest of sohoa:
no storage, no service, no door. This package re-exports nothing; import from the module
that does the job.
"""
