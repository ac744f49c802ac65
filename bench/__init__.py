"""sohoa's OCR benchmark: ``python -m bench.run --quick`` (see bench/README.md)."""
