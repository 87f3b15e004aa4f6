// Test stand-in for the `tidemark` command in schedule.itest.ts, until backup-prune is a CLI
// command: `backup-prune` runs through the retention engine (prune-command.ts), every other
// command through the repository's real bin/tidemark.js, with the same arguments.
'use strict';

const path = require('path');

const root = path.join(__dirname, '..', '..', '..', '..');
const args = process.argv.slice(2);
if (args.includes('backup-prune')) {
  require('tsx/cjs');
  require(path.join(__dirname, 'prune-command.ts'))
    .main(args)
    .then((code) => process.exit(code));
} else {
  process.argv = [process.argv[0], path.join(root, 'bin', 'tidemark.js'), ...args];
  require(path.join(root, 'bin', 'tidemark.js'));
}
