// The libvirt layer's two rules, checked on the source: it imports only downwards (shared/, os/,
// Node, saxes), and no product code reaches QEMU behind libvirt's back (qemu-monitor-command and
// friends, or the test harness that uses them).
import { builtinModules } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const HERE = __dirname;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (/\.tsx?$/.test(e.name) && !/\.(test|itest)\.tsx?$/.test(e.name)) out.push(p);
  }
  return out;
}

function imports(file: string): string[] {
  const src = fs.readFileSync(file, 'utf8');
  return [...src.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm), ...src.matchAll(/require\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!);
}

/** True when `spec` imported from `file` is allowed for the libvirt layer. */
export function allowedLibvirtImport(file: string, spec: string): boolean {
  if (builtinModules.includes(spec.replace(/^node:/, ''))) return true;
  if (spec === 'saxes') return true;
  if (!spec.startsWith('.')) return false;
  const target = path.resolve(path.dirname(file), spec);
  return [HERE, path.join(ROOT, 'electron/os'), path.join(ROOT, 'shared')].some((ok) => target === ok || target.startsWith(ok + path.sep));
}

describe('electron/libvirt layering', () => {
  it('the rule can fail', () => {
    const f = path.join(HERE, 'x.ts');
    expect(allowedLibvirtImport(f, '../engine/checkpoints/xml')).toBe(false);
    expect(allowedLibvirtImport(f, '../host/service')).toBe(false);
    expect(allowedLibvirtImport(f, '../../test/libvirt/lab')).toBe(false);
    expect(allowedLibvirtImport(f, 'electron')).toBe(false);
    expect(allowedLibvirtImport(f, '../os/atomic-file')).toBe(true);
    expect(allowedLibvirtImport(f, '../../shared/domain')).toBe(true);
    expect(allowedLibvirtImport(f, 'node:fs')).toBe(true);
  });

  it('imports only shared/, electron/os/, Node built-ins and saxes', () => {
    const bad: string[] = [];
    for (const f of sourceFiles(HERE)) for (const s of imports(f)) if (!allowedLibvirtImport(f, s)) bad.push(`${path.relative(ROOT, f)}: ${s}`);
    expect(bad).toEqual([]);
  });

  it('no product code runs QEMU monitor or agent commands, or imports the test harness', () => {
    const offenders: string[] = [];
    for (const f of sourceFiles(path.join(ROOT, 'electron'))) {
      const rel = path.relative(ROOT, f);
      const src = fs.readFileSync(f, 'utf8');
      // connection.ts names them once: in the set of commands it refuses.
      if (rel !== 'electron/libvirt/connection.ts' && /qemu-(monitor|agent)-command|qemu-monitor-event/.test(src)) offenders.push(`${rel}: names a QEMU monitor/agent command`);
      if (/allowMonitorCommands\s*:\s*true/.test(src)) offenders.push(`${rel}: opens a connection with allowMonitorCommands`);
      for (const s of imports(f)) if (s.includes('test/libvirt')) offenders.push(`${rel}: imports ${s}`);
    }
    expect(offenders).toEqual([]);
  });
});
