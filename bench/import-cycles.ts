// What the import-cycle check costs: the graph walk of test/import-cycles.test.ts (TypeScript's
// module resolution + Tarjan) against eslint-plugin-import-x's no-cycle rule over the same tree.
// import-x is not a dependency; to compare: npm i --no-save eslint-plugin-import-x@4.18.1
// Figures only. Run: npx tsx bench/import-cycles.ts
import { ESLint } from 'eslint';
import { median } from './measure';
import { importCycles, importGraph, ROOT, SOURCE_DIRS } from '../test/import-graph';

async function lintRuleMs(rule: string, extra?: object): Promise<{ ruleMs: number; totalMs: number; problems: number }> {
  const eslint = new ESLint({ cwd: ROOT, stats: true, ...(extra ? { overrideConfig: extra } : {}) });
  const t0 = performance.now();
  const results = await eslint.lintFiles(SOURCE_DIRS);
  const totalMs = performance.now() - t0;
  let ruleMs = 0;
  for (const r of results) for (const pass of r.stats?.times.passes ?? []) ruleMs += pass.rules?.[rule]?.total ?? 0;
  const problems = results.reduce((n, r) => n + r.messages.filter((m) => m.ruleId === rule).length, 0);
  return { ruleMs, totalMs, problems };
}

async function main(): Promise<void> {
  const walk: number[] = [];
  let cycles = 0;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    cycles = importCycles(importGraph()).length;
    walk.push(performance.now() - t0);
  }
  console.log(`graph walk (test/import-graph.ts): ${median(walk).toFixed(0)} ms median of 5, ${cycles} cycle(s)`);

  const base = await lintRuleMs('tidemark/layers');
  console.log(`eslint over ${SOURCE_DIRS.join(', ')}: ${base.totalMs.toFixed(0)} ms; the layering rule's share ${base.ruleMs.toFixed(0)} ms`);

  // Not a dependency, so not typed: the few parts used here.
  interface ImportX {
    default: { flatConfigs: { typescript: { settings: object } } };
    createNodeResolver(options: { extensions: string[] }): unknown;
  }
  let importX: ImportX;
  try {
    const name = 'eslint-plugin-import-x';
    importX = (await import(name)) as ImportX;
  } catch {
    console.log('eslint-plugin-import-x is not installed: npm i --no-save eslint-plugin-import-x@4.18.1 to compare');
    return;
  }
  const plugin = importX.default;
  const withCycle = await lintRuleMs('import-x/no-cycle', {
    files: ['**/*.ts', '**/*.tsx'],
    plugins: { 'import-x': plugin },
    settings: { ...plugin.flatConfigs.typescript.settings, 'import-x/resolver-next': [importX.createNodeResolver({ extensions: ['.ts', '.tsx', '.js'] })] },
    rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
  });
  console.log(`eslint with import-x/no-cycle: ${withCycle.totalMs.toFixed(0)} ms; the rule's share ${withCycle.ruleMs.toFixed(0)} ms, ${withCycle.problems} report(s)`);
}

if (require.main === module) void main();
