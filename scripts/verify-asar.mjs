#!/usr/bin/env node
// Checks a packaged app.asar: it holds only the built app (out/main, out/preload, out/renderer)
// and package.json — no node_modules, no sources, no source maps — and the entry points exist.
// Usage: node scripts/verify-asar.mjs path/to/app.asar   (exit 0 = fine; each problem on stderr)
import { extractFile, listPackage } from '@electron/asar';
import { statSync } from 'node:fs';

const ALLOWED = [/^\/package\.json$/, /^\/out$/, /^\/out\/(main|preload|renderer)(\/.*)?$/];
const REQUIRED = ['/package.json', '/out/main/main.js', '/out/preload/preload.js', '/out/renderer/index.html'];

export function checkAsar(archive) {
  const entries = listPackage(archive, { isPack: false });
  const problems = [];
  for (const e of entries) {
    if (!ALLOWED.some((re) => re.test(e))) problems.push(`unexpected entry ${e}`);
    else if (e.endsWith('.map')) problems.push(`source map shipped: ${e}`);
  }
  for (const r of REQUIRED) if (!entries.includes(r)) problems.push(`missing ${r}`);
  if (problems.length === 0) {
    const pkg = JSON.parse(extractFile(archive, 'package.json').toString('utf8'));
    if (pkg.main !== 'out/main/main.js') problems.push(`package.json "main" is ${JSON.stringify(pkg.main)}, expected "out/main/main.js"`);
    if (pkg.dependencies && Object.keys(pkg.dependencies).length > 0) problems.push(`package.json still lists dependencies: ${Object.keys(pkg.dependencies).join(', ')}`);
    if (pkg.devDependencies) problems.push('package.json still lists devDependencies');
  }
  return { entries, problems, bytes: statSync(archive).size };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const archive = process.argv[2];
  if (!archive) {
    console.error('usage: node scripts/verify-asar.mjs APP.asar');
    process.exit(2);
  }
  const { entries, problems, bytes } = checkAsar(archive);
  for (const p of problems) console.error(`asar: ${p}`);
  console.log(`asar: ${entries.length} entries, ${(bytes / 1024).toFixed(0)} KiB${problems.length ? `, ${problems.length} problem(s)` : ', only out/{main,preload,renderer} and package.json'}`);
  process.exit(problems.length ? 1 : 0);
}
