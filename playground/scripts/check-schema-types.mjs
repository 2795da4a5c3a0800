// Fails when src/shared/graphql-env.d.ts (the schema's introspection that
// gql.tada types the documents from) is not what ../schema.graphql gives:
// regenerates it into a temporary directory and compares.
// Fix with `npm run generate:schema-types`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const committed = join(root, 'src', 'shared', 'graphql-env.d.ts');
const cli = join(root, 'node_modules', 'gql.tada', 'bin', 'cli.js');

const dir = mkdtempSync(join(tmpdir(), 'projectnil-schema-types-'));
try {
  const fresh = join(dir, 'graphql-env.d.ts');
  const run = spawnSync(process.execPath, [cli, 'generate-output', '--output', fresh], { cwd: root, encoding: 'utf8' });
  if (run.status !== 0) {
    process.stderr.write(run.stdout + run.stderr);
    console.error('check:schema-types: gql.tada generate-output failed.');
    process.exit(1);
  }
  let current = null;
  try {
    current = readFileSync(committed, 'utf8');
  } catch {
    // missing: reported below
  }
  if (current !== readFileSync(fresh, 'utf8')) {
    console.error(
      'check:schema-types: src/shared/graphql-env.d.ts does not match ../schema.graphql.\n' +
        'Run `npm run generate:schema-types` in playground/ and commit the result.',
    );
    process.exit(1);
  }
  console.log('check:schema-types: src/shared/graphql-env.d.ts matches ../schema.graphql.');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
