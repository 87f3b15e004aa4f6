#!/usr/bin/env node
// Draws Tidemark's icon (a tide mark: waves under a high-water line, on a rounded square) and
// writes build/icon.png (512 px) and build/icons/NxN.png for the Linux packages. No image
// libraries: a small rasteriser and a PNG encoder over zlib. Run: node scripts/make-icons.js
const { Buffer } = require('node:buffer');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

const SIZES = [16, 24, 32, 48, 64, 128, 256, 512];

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
/** RGBA pixels (Uint8Array, width*height*4) → PNG bytes. */
function encodePng(width, height, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // colour type RGBA
  const raw = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 4 + 1)] = 0; // filter: none
    Buffer.from(rgba.buffer, y * width * 4, width * 4).copy(raw, y * (width * 4 + 1) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Colour of the icon at (u, v) in [0,1]², or null for transparent. */
function shade(u, v) {
  // rounded square
  const r = 0.18;
  const dx = Math.max(Math.abs(u - 0.5) - (0.5 - r), 0);
  const dy = Math.max(Math.abs(v - 0.5) - (0.5 - r), 0);
  if (dx * dx + dy * dy > r * r) return null;
  const wave = (phase, amp) => 0.5 + amp * Math.sin((u * 2.2 + phase) * Math.PI * 2);
  if (Math.abs(v - 0.30) < 0.035 && u > 0.16 && u < 0.84) return [247, 181, 41]; // the high-water mark
  if (v > wave(0, 0.045) + 0.06) return v > wave(0.35, 0.04) + 0.2 ? [16, 74, 140] : [33, 118, 204]; // two waves
  return [18, 32, 52]; // background
}

function render(size) {
  const px = new Uint8Array(size * size * 4);
  const ss = 4; // 4×4 supersampling for smooth edges
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let r = 0, g = 0, b = 0, a = 0;
      for (let sy = 0; sy < ss; sy++) {
        for (let sx = 0; sx < ss; sx++) {
          const c = shade((x + (sx + 0.5) / ss) / size, (y + (sy + 0.5) / ss) / size);
          if (!c) continue;
          r += c[0]; g += c[1]; b += c[2]; a += 1;
        }
      }
      const i = (y * size + x) * 4;
      if (a > 0) {
        px[i] = Math.round(r / a);
        px[i + 1] = Math.round(g / a);
        px[i + 2] = Math.round(b / a);
      }
      px[i + 3] = Math.round((255 * a) / (ss * ss));
    }
  }
  return encodePng(size, size, px);
}

function main() {
  const build = path.join(__dirname, '..', 'build');
  fs.mkdirSync(path.join(build, 'icons'), { recursive: true });
  for (const size of SIZES) fs.writeFileSync(path.join(build, 'icons', `${size}x${size}.png`), render(size));
  fs.copyFileSync(path.join(build, 'icons', '512x512.png'), path.join(build, 'icon.png'));
  console.log(`wrote build/icon.png and build/icons/{${SIZES.map((s) => `${s}x${s}`).join(',')}}.png`);
}

if (require.main === module) main();
module.exports = { encodePng, render, SIZES };
