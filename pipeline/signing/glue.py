"""pyHanko and asyncio glue shared by signing and validation.

pyHanko's synchronous wrappers start a new event loop per call while its HTTP clients
(aiohttp) are bound to one loop, so each operation runs in a single event loop
(``run_async``, in a helper thread when the caller already runs one) with its own fetcher
backend, closed at the end.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor


def run_async(coro):
    """Run a coroutine to completion from synchronous code, also under a running loop
    (an async web handler), where ``asyncio.run`` is not allowed."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def fetcher_backend():
    """An aiohttp fetcher backend for OCSP/CRL/certificate fetching; the caller closes it
    (``await backend.close()``) in the same event loop."""
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

    return AIOHttpFetcherBackend(per_request_timeout=15)


def validation_context(trust_roots, other_certs=(), revocation_mode="hard-fail", fetcher_backend=None, **kw):
    from pyhanko_certvalidator import ValidationContext

    return ValidationContext(trust_roots=list(trust_roots), other_certs=list(other_certs),
                             allow_fetching=fetcher_backend is not None, fetcher_backend=fetcher_backend,
                             revocation_mode=revocation_mode, **kw)
