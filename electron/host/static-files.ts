// Static files of the built renderer, for both the web host (http://127.0.0.1) and Electron's
// app:// protocol: a URL path maps to a file under the root or to a refusal with a status code.
// Paths that climb out ("..", encoded or not), NUL bytes, backslashes and symlinks leading
// outside the root are refused.

import * as fs from 'node:fs';
import * as path from 'node:path';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

export function contentTypeFor(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * Maps a request path to a file under `root`, or explains why not. Pure except for realpath,
 * which catches symlinks that point outside the root.
 */
export function resolveStaticPath(root: string, urlPath: string): { file: string } | { status: number; reason: string } {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return { status: 400, reason: 'bad percent-encoding in path' };
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return { status: 400, reason: 'path contains a NUL byte or a backslash' };
  if (!decoded.startsWith('/')) return { status: 400, reason: 'path must start with /' };
  if (decoded.split('/').some((seg) => seg === '..')) return { status: 403, reason: 'path contains ".."' };
  const rel = decoded.endsWith('/') ? `${decoded}index.html` : decoded;
  const rootAbs = path.resolve(root);
  const file = path.resolve(rootAbs, `.${rel}`);
  if (file !== rootAbs && !file.startsWith(rootAbs + path.sep)) return { status: 403, reason: 'path escapes the renderer directory' };
  let real: string;
  let realRoot: string;
  try {
    real = fs.realpathSync(file);
    realRoot = fs.realpathSync(rootAbs);
  } catch {
    return { status: 404, reason: 'not found' };
  }
  if (!real.startsWith(realRoot + path.sep)) return { status: 403, reason: 'path escapes the renderer directory' };
  if (!fs.statSync(real).isFile()) return { status: 404, reason: 'not found' };
  return { file: real };
}
