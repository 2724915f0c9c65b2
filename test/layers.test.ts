import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './helpers/env.js';

/**
 * docs/architecture.md's layer table is whole and true: every source file is named in its
 * folder's row, and every import points to its own folder or to a row below.
 */
const rows = readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8')
  .split('\n')
  .map((l) => /^\| `src\/([a-z]+)\/` \|(.*)$/.exec(l))
  .filter((m): m is RegExpExecArray => m !== null)
  .map((m) => ({ folder: m[1] as string, text: m[2] as string }));
const rank = new Map(rows.map((r, i) => [r.folder, i]));
const sources = (folder: string): string[] => readdirSync(join(ROOT, 'src', folder)).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.contract.ts'));

describe('the layer table in docs/architecture.md', () => {
  it('has a row for every folder of src/, and names every file in its row', () => {
    const folders = readdirSync(join(ROOT, 'src')).sort();
    assert.deepEqual([...rank.keys()].sort(), folders);
    const missing = rows.flatMap((r) => sources(r.folder).filter((f) => !r.text.includes(`\`${f}\``)).map((f) => `src/${r.folder}/${f}`));
    assert.deepEqual(missing, [], 'files the table does not name');
  });

  it('is true: imports point to the same folder or down', () => {
    const up: string[] = [];
    for (const r of rows) {
      for (const f of sources(r.folder)) {
        for (const m of readFileSync(join(ROOT, 'src', r.folder, f), 'utf8').matchAll(/from '\.\.\/([a-z]+)\//g)) {
          const to = m[1] as string;
          if ((rank.get(to) ?? -1) < (rank.get(r.folder) as number)) up.push(`src/${r.folder}/${f} imports src/${to}/`);
        }
      }
    }
    assert.deepEqual([...new Set(up)], []);
  });
});
