#!/usr/bin/env bash
# Install tesseract's best_int Vietnamese model (LSTM "best" weights as integers) into a folder
# the project owns, idempotently:
#   DEST/vie.traineddata   from the npm registry's @tesseract.js-data/vie (file
#                          4.0.0_best_int/vie.traineddata.gz, Apache-2.0, tesseract-ocr/tessdata_best),
#                          checked against its SHA-256
#   DEST/osd.traineddata   a link to Debian's orientation model (tesseract-ocr-osd), so that the
#                          folder is a complete tessdata directory on its own
# Use it with SOHOA_TESSDATA=DEST (ocr.recognise.TesseractEngine reads a language's model from
# there when the folder holds it). The default configuration does not change.
#
#   bash scripts/fetch-models.sh [DEST]      # DEST: .venv/share/sohoa/tessdata-best
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=${1:-.venv/share/sohoa/tessdata-best}
PACKAGE=@tesseract.js-data/vie@1.0.0
MEMBER=package/4.0.0_best_int/vie.traineddata.gz
SHA256=112f6fd1d04ab4cb0208cad9cada8de214ae33a1e4db3750ffcda69262aef0a8
DEBIAN_TESSDATA=/usr/share/tesseract-ocr/5/tessdata

say() { printf '\033[1m[models]\033[0m %s\n' "$*"; }

mkdir -p "$DEST"
if [ -f "$DEBIAN_TESSDATA/osd.traineddata" ] && [ ! -e "$DEST/osd.traineddata" ]; then
    ln -s "$DEBIAN_TESSDATA/osd.traineddata" "$DEST/osd.traineddata"
fi
if [ -f "$DEST/vie.traineddata" ] && echo "$SHA256  $DEST/vie.traineddata" | sha256sum -c --status; then
    exit 0
fi
command -v npm >/dev/null || { echo "npm is needed to fetch $PACKAGE" >&2; exit 1; }
say "tải mô hình tesseract best_int tiếng Việt ($PACKAGE)"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent --no-fund --no-audit "$PACKAGE" >/dev/null)
tar -xzf "$WORK"/*.tgz -C "$WORK" "$MEMBER"
gunzip -c "$WORK/$MEMBER" > "$WORK/vie.traineddata"
if ! echo "$SHA256  $WORK/vie.traineddata" | sha256sum -c --status; then
    echo "$PACKAGE: vie.traineddata does not have the expected SHA-256 $SHA256" >&2
    exit 1
fi
mv -f "$WORK/vie.traineddata" "$DEST/vie.traineddata"
say "xong: SOHOA_TESSDATA=$PWD/$DEST"
