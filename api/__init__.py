"""The doors: the command line (``api.cli``) today, the HTTP API and web UI next.

A door parses a request, calls one function of ``pipeline.service``, and shows its result or
its error (``pipeline.errors.describe``); it holds no logic of its own.
"""
