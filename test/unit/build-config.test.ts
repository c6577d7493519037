/**
 * The production build (`npm run build`, tsconfig.build.json) compiles product code only: no
 * test, bench or simulator file may end up in dist/ and the image. Product code pulling in the
 * simulator (or a test helper) through an import would put it there; this catches that.
 */
import { execFileSync } from 'node:child_process';
import { relative, resolve } from 'node:path';
import { expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

it('the production build compiles src/ only, without the simulator', () => {
  const listed = execFileSync(process.execPath, [resolve(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--listFilesOnly'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const ours = listed
    .split('\n')
    .filter((f) => f && !f.includes('/node_modules/'))
    .map((f) => relative(ROOT, f));
  expect(ours).toContain('src/main.ts');
  expect(ours.filter((f) => !f.startsWith('src/') || f.startsWith('src/simulator/'))).toEqual([]);
}, 60_000);
