import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { WEFT_VERSION } from './version.js';

it('WEFT_VERSION is package.json\'s version', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(WEFT_VERSION, pkg.version);
});
