import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compareText } from './compare-text.js';

describe('compareText', () => {
  it('orders by code units, not by a locale: upper case before lower case, "Z" before "a"', () => {
    assert.deepEqual(['b', 'a', 'Z', 'B', 'a-1', 'a/1'].sort(compareText), ['B', 'Z', 'a', 'a-1', 'a/1', 'b']);
  });

  it('is a total order: antisymmetric, zero only for equal strings, transitive', () => {
    fc.assert(fc.property(fc.string(), fc.string(), fc.string(), (a, b, c) => {
      assert.equal(Math.sign(compareText(a, b)) + Math.sign(compareText(b, a)), 0);
      assert.equal(compareText(a, b) === 0, a === b);
      if (compareText(a, b) <= 0 && compareText(b, c) <= 0) assert.ok(compareText(a, c) <= 0);
    }));
  });
});
