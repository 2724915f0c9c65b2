import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareVersions, resultFamily, SUPPORTED_VERSIONS, versionAtLeast } from './version.js';

describe('versions', () => {
  it('orders numerically, not lexically', () => {
    assert.ok(compareVersions('0.10.0', '0.4.0') > 0);
    assert.ok(compareVersions('1.0.0', '0.4.0') > 0);
    assert.equal(compareVersions('1.1.0', '1.1.0'), 0);
    assert.ok(compareVersions('abc', '0.1.0') < 0);
  });

  it('lists supported versions oldest first, ending at 1.1.0', () => {
    assert.deepEqual([...SUPPORTED_VERSIONS].sort(compareVersions), [...SUPPORTED_VERSIONS]);
    assert.equal(SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1], '1.1.0');
  });

  it('groups result schemas into families', () => {
    assert.equal(resultFamily('0.2.0'), 'legacy');
    assert.equal(resultFamily('0.3.0'), 'v04');
    assert.equal(resultFamily('0.4.0'), 'v04');
    assert.equal(resultFamily('1.1.0'), 'v1');
    assert.ok(versionAtLeast('1.1.0', '0.4.0'));
  });
});
