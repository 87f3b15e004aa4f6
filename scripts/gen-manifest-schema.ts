// Writes docs/backup-manifest.schema.json from the manifest's only definition, the valibot schema in
// shared/contract/manifest.ts. test/manifest-schema.test.ts fails when the committed file is stale.
// Run: npx tsx scripts/gen-manifest-schema.ts
import * as fs from 'node:fs';
import * as path from 'node:path';
import { toJsonSchema } from '@valibot/to-json-schema';
import { backupDiskSchema, backupIdSchema, backupRecordSchema } from '../shared/contract/manifest';

export const MANIFEST_SCHEMA_FILE = path.join(__dirname, '..', 'docs', 'backup-manifest.schema.json');

/** The JSON Schema text (draft-07, as ajv 6 reads it), ending in a newline. */
export function manifestJsonSchema(): string {
  const schema = toJsonSchema(backupRecordSchema, {
    target: 'draft-07',
    // record() puts a plain-object guard before each object schema: describe the object, not the guard.
    typeMode: 'output',
    // JSON has only finite numbers; the cross-field checks are spelled out for JSON Schema in v.metadata beside them.
    ignoreActions: ['finite', 'check'],
    definitions: { backupId: backupIdSchema, disk: backupDiskSchema },
  });
  const { $schema, $id, title, description, ...rest } = schema;
  return `${JSON.stringify({ $schema, $id, title, description, ...rest }, null, 2)}\n`;
}

if (require.main === module) {
  fs.writeFileSync(MANIFEST_SCHEMA_FILE, manifestJsonSchema());
  console.log(`wrote ${path.relative(process.cwd(), MANIFEST_SCHEMA_FILE)}`);
}
