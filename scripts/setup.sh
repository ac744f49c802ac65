#!/usr/bin/env bash
# Set up everything sohoa needs on a fresh Debian machine, idempotently:
#   system packages (packages/debian.txt, what sohoa runs on, and packages/debian-test.txt, what only
#   the tests and development need), the Python virtual environment (.venv) with sohoa and its test tools,
#   and PostgreSQL, Redis and RabbitMQ, which the tests use, if installed but stopped
#   (the S3 server, Ceph RGW, is started by the test suite itself).
# Re-running it is cheap: each step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. System packages: the run-time list (the production image, Dockerfile, installs exactly
#    this one) and the test-only list (never in the image). Both, always: the tests need both.
PKG_LISTS=(packages/debian.txt packages/debian-test.txt)
mapfile -t PKGS < <(grep -hvE '^\s*(#|$)' "${PKG_LISTS[@]}")
MISSING=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || MISSING+=("$p")
done
if ((${#MISSING[@]})); then
    say "cài gói hệ thống: ${MISSING[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${MISSING[@]}"
fi

# 2. Python virtual environment with sohoa installed (editable) and test tools.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    say "tạo môi trường Python .venv"
    "$PY" -m venv .venv
fi
STAMP=.venv/.sohoa-installed
WANT=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    say "cài gói Python (pip install -e .[test])"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e ".[test]"
    echo "$WANT" > "$STAMP"
fi

# 3. pdf.js (npm registry, pinned by tests/js/package-lock.json) for the text-layer tests.
if ! command -v node >/dev/null; then
    say "cài Node.js"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends nodejs npm
fi
if [ ! -f tests/js/node_modules/pdfjs-dist/package.json ]; then
    say "cài pdf.js cho kiểm thử lớp chữ (npm ci)"
    (cd tests/js && npm ci --no-audit --no-fund --omit=optional --loglevel=error)
fi

# 4. Tesseract's best_int Vietnamese model (npm registry) in .venv/share/sohoa/tessdata-best, for
#    SOHOA_TESSDATA and the real-scan benchmark (bench/realscans.py); not the default model.
bash scripts/fetch-models.sh .venv/share/sohoa/tessdata-best

# 4b. The E-ARK reference validator (PyPI eark-validator, its own environment: it pins lxml) for
#     checking the archive packages of `sohoa package` (tests/test_package.py).
bash scripts/eark-validator.sh --install

# 5. The services the tests use for real: PostgreSQL (index, journal), Redis (result backend,
#    broker) and RabbitMQ (broker). This machine kind starts them; a fresh one may not.
if command -v pg_ctlcluster >/dev/null && ! pg_isready -q -h 127.0.0.1 2>/dev/null; then
    say "khởi động PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if command -v redis-server >/dev/null && ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    say "khởi động Redis"
    redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes || true
fi
if command -v rabbitmq-server >/dev/null && ! rabbitmqctl -q status >/dev/null 2>&1; then
    say "khởi động RabbitMQ"
    rabbitmq-server -detached || true
    for _ in $(seq 60); do rabbitmqctl -q await_startup >/dev/null 2>&1 && break; sleep 1; done
fi
say "xong: $ROOT/.venv/bin/sohoa"
