#!/usr/bin/env bash
# First command of README: set up, then digitise the bundled sample pages into one
# e-dossier on the embedded default (local storage, SQLite, no broker) and show it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export SOHOA_HOME=${SOHOA_HOME:-$PWD/sohoa-data}
SOHOA=.venv/bin/sohoa
CODE=H23.50-261201-0001
echo
echo "== sohoa ingest: 3 trang mẫu (một trang nghiêng, một trang xoay ngang, một bảng) =="
$SOHOA ingest --dossier "$CODE" --title "Tờ khai đăng ký hộ kinh doanh" samples/*.jpg
echo
echo "== sohoa show =="
$SOHOA show "$CODE"
echo
echo "== sohoa export =="
rm -rf out/demo
$SOHOA export "$CODE" --out out/demo
ls -l out/demo
PDF=$(ls out/demo/*.pdf | head -1)
echo
echo "== pdftotext (lớp chữ ẩn của trang 1), 12 dòng đầu =="
pdftotext -f 1 -l 1 "$PDF" - | grep -v '^\s*$' | head -12
