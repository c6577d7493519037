/**
 * The production build (`npm run build`, tsconfig.build.json) compiles product code only: no
 * test or bench file may end up in dist/ and the image. The WhatsApp simulator ships, because
 * `wa-sip-bridge simulate` (src/cli/) runs it against a real PBX, but the bridge itself never
 * imports it: only src/cli/ may.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

it('the production build compiles src/ only; only the CLI imports the simulator', () => {
  const listed = execFileSync(process.execPath, [resolve(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--listFilesOnly'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const ours = listed
    .split('\n')
    .filter((f) => f && !f.includes('/node_modules/'))
    .map((f) => relative(ROOT, f));
  expect(ours).toContain('src/main.ts');
  expect(ours.filter((f) => !f.startsWith('src/'))).toEqual([]);
  const importsSimulator = (f: string) => /from '(\.\.?\/)+(simulator\/|\.\.\/simulator\/)/.test(readFileSync(resolve(ROOT, f), 'utf8'));
  const bridgeSide = ours.filter((f) => !f.startsWith('src/cli/') && !f.startsWith('src/simulator/'));
  expect(bridgeSide.filter(importsSimulator)).toEqual([]);
  // The check itself sees an import where there is one.
  expect(ours.filter((f) => f.startsWith('src/cli/')).some(importsSimulator)).toBe(true);
}, 60_000);
