#!/usr/bin/env bash
# Regenerate ocr/data/vie-words.txt: the words of the word dawg in Debian's tesseract vie model
# (tesseract-ocr-vie, from github.com/tesseract-ocr/tessdata_fast, Apache-2.0).
# Needs tesseract-ocr (combine_tessdata, dawg2wordlist) and tesseract-ocr-vie.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
model="${1:-/usr/share/tesseract-ocr/5/tessdata/vie.traineddata}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
combine_tessdata -u "$model" "$work/vie." >/dev/null
dawg2wordlist "$work/vie.lstm-unicharset" "$work/vie.lstm-word-dawg" "$work/words.txt" >/dev/null 2>&1
out="$here/ocr/data/vie-words.txt"
{
  echo "# Vietnamese words of tesseract's vie model (lstm word dawg of $(basename "$model"), tessdata_fast); licence: Apache-2.0, github.com/tesseract-ocr/tessdata_fast; extracted by scripts/make-wordlist.sh"
  LC_ALL=C.UTF-8 sort -u "$work/words.txt"
} > "$out"
echo "$(($(wc -l < "$out") - 1)) words -> $out"
