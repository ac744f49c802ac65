#!/usr/bin/env bash
# The E-ARK reference validator (PyPI eark-validator 1.1.3) on information packages, offline.
#
#   bash scripts/eark-validator.sh DIR [DIR ...]   # validate each package folder; JSON report on stdout
#   bash scripts/eark-validator.sh --install       # only create its virtual environment (scripts/setup.sh)
#
# The validator pins lxml==5.1.0, so it lives in a virtual environment of its own,
# .venv/share/sohoa/eark-validator, created here when missing (python3 -m venv, then pip from
# PyPI), never in the project's .venv. scripts/eark_validate.py runs it with the four CSIP
# vocabularies it would download served from pipeline/data/eark-vocabularies.
# Exit status: 0 when no package has an error, 1 when one has, 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv/share/sohoa/eark-validator
VERSION=1.1.3

say() { printf '\033[1m[eark-validator]\033[0m %s\n' "$*" >&2; }

install() {
    mkdir -p "$(dirname "$VENV")"
    exec 9>"$(dirname "$VENV")/.eark-validator.lock"
    flock 9  # two callers at once: one installs, the other waits and finds it done
    if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$VERSION" ]; then
        say "cài trình kiểm tra E-ARK eark-validator==$VERSION vào $VENV"
        rm -rf "$VENV"
        "${PYTHON:-python3}" -m venv "$VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check "eark-validator==$VERSION"
        echo "$VERSION" > "$VENV/.installed"
    fi
    flock -u 9
}

if [ "$#" -eq 0 ]; then
    echo "dùng: bash scripts/eark-validator.sh THƯ_MỤC_GÓI [...] | --install" >&2
    exit 2
fi
install
if [ "$1" = "--install" ]; then
    exit 0
fi
exec "$VENV/bin/python" "$ROOT/scripts/eark_validate.py" "$@"
