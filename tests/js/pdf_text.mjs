// Text of a PDF as pdf.js (the viewer in Firefox and many web apps) extracts it: one line per
// text line, items joined as pdf.js reports them (hasEOL ends a line). Usage: node pdf_text.mjs FILE
import { readFileSync } from "node:fs";

// pdf.js warns on stdout that it cannot render without a canvas; text needs none: keep stdout for the text
console.log = (...args) => process.stderr.write(args.join(" ") + "\n");
const { getDocument } = await import("pdfjs-dist/legacy/build/pdf.mjs");

const data = new Uint8Array(readFileSync(process.argv[2]));
const pdf = await getDocument({ data, useSystemFonts: false, disableFontFace: true, verbosity: 0 }).promise;
const out = [];
for (let n = 1; n <= pdf.numPages; n++) {
  const page = await pdf.getPage(n);
  const content = await page.getTextContent();
  let line = "";
  for (const item of content.items) {
    line += item.str;
    if (item.hasEOL) { out.push(line); line = ""; }
  }
  if (line) out.push(line);
}
process.stdout.write(out.join("\n") + "\n");
