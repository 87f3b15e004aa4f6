// docs/backup-manifest.schema.json is generated from the manifest's schema (shared/contract/manifest.ts):
// this fails when someone changes one without the other. electron/engine/backup/manifest.test.ts
// checks that the runtime parser and the JSON Schema reject the same bad manifests.
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MANIFEST_SCHEMA_FILE, manifestJsonSchema } from '../scripts/gen-manifest-schema';

describe('docs/backup-manifest.schema.json', () => {
  it('is what scripts/gen-manifest-schema.ts generates (run it after changing the manifest schema)', () => {
    expect(fs.readFileSync(MANIFEST_SCHEMA_FILE, 'utf8')).toBe(manifestJsonSchema());
  });

  it('keeps the rules JSON Schema cannot infer from valibot: required fields, no extra fields, base only on incremental layers', () => {
    const schema = JSON.parse(manifestJsonSchema()) as { additionalProperties: boolean; required: string[]; $defs: { disk: { additionalProperties: boolean; allOf: unknown[] } } };
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(expect.arrayContaining(['format', 'version', 'id', 'disks']));
    expect(schema.$defs.disk.additionalProperties).toBe(false);
    expect(JSON.stringify(schema.$defs.disk.allOf)).toContain('"then":{"required":["since","base","backingFile"]}');
  });
});
