import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CniError } from '../cni/errors.js';
import { buildPluginConfig, chooseVersion, parseConfList, parseLegacyConf, type NetworkConfigList, type PluginEntry } from './conflist.js';

const first = (l: NetworkConfigList): PluginEntry => {
  const p = l.plugins[0];
  assert.ok(p);
  return p;
};
const list = (o: Record<string, unknown>): Buffer => Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'net', plugins: [{ type: 'weft' }], ...o }));

describe('conflist', () => {
  it('picks the highest version of cniVersion ∪ cniVersions this runtime supports', () => {
    assert.equal(chooseVersion('1.0.0', ['1.0.0', '1.1.0']), '1.1.0');
    assert.equal(chooseVersion('1.0.0', ['1.0.0', '1.1.0', '2.0.0']), '1.1.0');
    assert.equal(chooseVersion('0.4.0', []), '0.4.0');
    assert.throws(() => chooseVersion('1.0.0', ['x']), CniError);
    assert.throws(() => chooseVersion('9.0.0', []), (e: unknown) => e instanceof CniError && e.code === 1);
  });

  it('reads flags, also as strings', () => {
    const l = parseConfList(list({ disableCheck: 'true', disableGC: true }));
    assert.equal(l.disableCheck, true);
    assert.equal(l.disableGC, true);
  });

  it('refuses an empty plugin list, a plugin without type, and a type with a path', () => {
    assert.throws(() => parseConfList(list({ plugins: [] })), /no plugins/);
    assert.throws(() => parseConfList(list({ plugins: [{}] })), /no "type"/);
    assert.throws(() => parseConfList(list({ plugins: [{ type: '../x' }] })), /invalid "type"/);
  });

  it('wraps a legacy single config', () => {
    const l = parseLegacyConf(Buffer.from('{"cniVersion":"0.3.1","name":"old","type":"weft","mtu":1400}'));
    assert.equal(l.plugins[0]?.raw['mtu'], 1400);
    assert.equal(l.cniVersion, '0.3.1');
  });

  it('builds per-plugin config as libcni does: name/version forced, runtimeConfig only for declared capabilities', () => {
    const l = parseConfList(list({ plugins: [{ type: 'weft', name: 'other', cniVersion: '0.1.0', capabilities: { ips: true, mac: false }, extra: 1 }] }));
    const out = JSON.parse(
      buildPluginConfig(l, first(l), {
        command: 'ADD',
        prevResult: { cniVersion: '1.0.0' },
        capabilityArgs: { ips: ['10.0.0.9'], mac: '02:00:00:00:00:09', portMappings: [] },
      }).toString(),
    ) as Record<string, unknown>;
    assert.equal(out['name'], 'net');
    assert.equal(out['cniVersion'], '1.0.0');
    assert.equal(out['extra'], 1);
    assert.deepEqual(out['runtimeConfig'], { ips: ['10.0.0.9'] });
    assert.deepEqual(out['prevResult'], { cniVersion: '1.0.0' });
    const none = JSON.parse(buildPluginConfig(l, first(l), { command: 'ADD', capabilityArgs: {} }).toString()) as Record<string, unknown>;
    assert.equal('runtimeConfig' in none, false);
  });

  it('GC carries the valid list under both keys and no prevResult/runtimeConfig', () => {
    const l = parseConfList(list({ cniVersion: '1.1.0' }));
    const out = JSON.parse(buildPluginConfig(l, first(l), { command: 'GC', prevResult: {}, validAttachments: [{ containerID: 'a', ifname: 'eth0' }] }).toString()) as Record<string, unknown>;
    assert.deepEqual(out['cni.dev/valid-attachments'], [{ containerID: 'a', ifname: 'eth0' }]);
    assert.deepEqual(out['cni.dev/attachments'], out['cni.dev/valid-attachments']);
    assert.equal('prevResult' in out, false);
  });
});
