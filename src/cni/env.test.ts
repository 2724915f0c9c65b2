import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CniError } from './errors.js';
import { parseEnv, validateIfName } from './env.js';

const base = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 't1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };

function codeOf(fn: () => unknown): { code: number; msg: string; details: string | undefined } {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CniError, `expected a CniError, got ${String(err)}`);
    return { code: err.code, msg: err.message, details: err.details };
  }
  assert.fail('expected an error');
}

describe('parseEnv', () => {
  it('reads a complete ADD environment', () => {
    const env = parseEnv(base);
    assert.deepEqual(env, { command: 'ADD', containerId: 't1', netns: '/run/netns/x', ifName: 'eth0', args: '', path: ['/opt/cni/bin'] });
  });

  it('returns undefined without CNI_COMMAND (the about banner case), set-but-empty included', () => {
    assert.equal(parseEnv({}), undefined);
    assert.equal(parseEnv({ CNI_COMMAND: '' }), undefined);
  });

  it('lists every missing variable in one error, in the reference order', () => {
    const e = codeOf(() => parseEnv({ CNI_COMMAND: 'ADD' }));
    assert.equal(e.code, 4);
    assert.equal(e.msg, 'required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing');
  });

  it('treats set-but-empty exactly like unset', () => {
    const e = codeOf(() => parseEnv({ ...base, CNI_NETNS: '' }));
    assert.equal(e.msg, 'required env variables [CNI_NETNS] missing');
  });

  it('DEL needs no netns; CHECK does', () => {
    assert.equal(parseEnv({ ...base, CNI_COMMAND: 'DEL', CNI_NETNS: '' })?.netns, '');
    assert.equal(codeOf(() => parseEnv({ ...base, CNI_COMMAND: 'CHECK', CNI_NETNS: '' })).code, 4);
  });

  it('GC needs only CNI_PATH, STATUS nothing', () => {
    assert.equal(parseEnv({ CNI_COMMAND: 'GC', CNI_PATH: '/x' })?.command, 'GC');
    assert.equal(codeOf(() => parseEnv({ CNI_COMMAND: 'GC' })).msg, 'required env variables [CNI_PATH] missing');
    assert.equal(parseEnv({ CNI_COMMAND: 'STATUS' })?.command, 'STATUS');
  });

  it('rejects unknown and lower-case commands with code 4 naming them', () => {
    for (const c of ['FOO', 'add', 'version']) {
      const e = codeOf(() => parseEnv({ ...base, CNI_COMMAND: c }));
      assert.equal(e.code, 4);
      assert.equal(e.msg, `unknown CNI_COMMAND: ${c}`);
    }
  });

  it('rejects bad container ids with the id in details', () => {
    for (const id of ['bad id!', '-abc', 'a/b', '.x']) {
      const e = codeOf(() => parseEnv({ ...base, CNI_CONTAINERID: id }));
      assert.equal(e.code, 4);
      assert.equal(e.details, id);
    }
    assert.equal(parseEnv({ ...base, CNI_CONTAINERID: 'a_b.c-D9' })?.containerId, 'a_b.c-D9');
  });

  it('splits CNI_PATH on ":" and drops empty parts', () => {
    assert.deepEqual(parseEnv({ ...base, CNI_PATH: '/a::/b:' })?.path, ['/a', '/b']);
  });
});

describe('validateIfName', () => {
  it('accepts 15 bytes and rejects 16', () => {
    validateIfName('abcdefghijklmno');
    const e = codeOf(() => validateIfName('abcdefghijklmnop'));
    assert.equal(e.code, 4);
    assert.equal(e.msg, 'interface name is too long');
  });

  it('counts bytes, not characters', () => {
    assert.equal(codeOf(() => validateIfName('ééééééééé')).msg, 'interface name is too long');
  });

  it('rejects ., .., /, :, whitespace', () => {
    assert.equal(codeOf(() => validateIfName('.')).msg, 'interface name is . or ..');
    assert.equal(codeOf(() => validateIfName('..')).msg, 'interface name is . or ..');
    for (const n of ['et/h0', 'eth 0', 'eth0:1', 'eth\t0']) {
      assert.equal(codeOf(() => validateIfName(n)).msg, 'interface name contains / or : or whitespace characters');
    }
  });

  it('rejects what ip -batch would read as syntax: #, quotes, backslashes, control characters (code 4)', () => {
    for (const n of ['eth0#x', 'e"0', "e'0", 'e\\0', 'e\u00000', 'e\u001b']) {
      const e = codeOf(() => validateIfName(n));
      assert.equal(e.code, 4);
      assert.equal(e.msg, 'interface name contains #, a quote, a backslash or a control character');
    }
  });
});
