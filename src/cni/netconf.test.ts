import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CniError } from './errors.js';
import { argsCniIps, argsCniLabels, getCaseInsensitive, parseNetConf } from './netconf.js';

function err(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CniError);
    return e;
  }
  assert.fail('expected an error');
}

const conf = (o: Record<string, unknown>): string => JSON.stringify({ cniVersion: '1.0.0', name: 'net', type: 'weft', ...o });

describe('parseNetConf', () => {
  it('maps bad JSON, an empty stdin and a non-object to code 6', () => {
    assert.equal(err(() => parseNetConf('{"cniVersion":', 'ADD')).code, 6);
    assert.equal(err(() => parseNetConf('', 'ADD')).code, 6);
    assert.equal(err(() => parseNetConf('[1]', 'DEL')).code, 6);
    assert.match(err(() => parseNetConf('', 'ADD')).message, /stdin is empty/);
  });

  it('checks the name: missing 7, bad characters 7 with the name in details', () => {
    assert.equal(err(() => parseNetConf('{"cniVersion":"1.0.0"}', 'ADD')).message, 'missing network name');
    const e = err(() => parseNetConf(conf({ name: 'bad/name' }), 'ADD'));
    assert.equal(e.code, 7);
    assert.equal(e.details, 'bad/name');
    assert.equal(err(() => parseNetConf(conf({ name: '.hidden' }), 'ADD')).code, 7);
  });

  it('checks cniVersion: a number is 6, unsupported is 1 naming both', () => {
    assert.equal(err(() => parseNetConf(conf({ cniVersion: 100 }), 'ADD')).code, 6);
    for (const v of ['9.9.9', 'abc', '1.2.0']) {
      const e = err(() => parseNetConf(conf({ cniVersion: v }), 'ADD'));
      assert.equal(e.code, 1);
      assert.match(e.details ?? '', new RegExp(`config is "${v.replace(/\./g, '\\.')}"`));
      assert.match(e.details ?? '', /"1\.1\.0"/);
    }
  });

  it('takes an absent cniVersion as 0.1.0', () => {
    assert.equal(parseNetConf('{"name":"n"}', 'ADD').cniVersion, '0.1.0');
  });

  it('gates CHECK below 0.4.0 and GC/STATUS below 1.1.0 with code 1', () => {
    assert.equal(err(() => parseNetConf(conf({ cniVersion: '0.3.1' }), 'CHECK')).message, 'config version does not allow CHECK');
    assert.equal(err(() => parseNetConf(conf({}), 'GC')).code, 1);
    assert.equal(err(() => parseNetConf(conf({}), 'STATUS')).code, 1);
    assert.equal(parseNetConf(conf({ cniVersion: '1.1.0' }), 'STATUS').cniVersion, '1.1.0');
  });

  it('reads runtimeConfig keys case-insensitively (containerd sends Go casing)', () => {
    const c = parseNetConf(conf({ runtimeConfig: { IPs: ['10.1.1.9'], Mac: '02:11:22:33:44:55' } }), 'ADD');
    assert.deepEqual(c.runtimeConfig, { ips: ['10.1.1.9'], mac: '02:11:22:33:44:55' });
    assert.equal(getCaseInsensitive({ HostPort: 1 }, 'hostPort'), 1);
    assert.equal(getCaseInsensitive({ hostPort: 2, HostPort: 1 }, 'hostPort'), 2);
  });

  it('ignores unknown keys and unknown args content', () => {
    const c = parseNetConf(conf({ foo: 1, args: { other: { x: 1 } } }), 'ADD');
    assert.equal(c.raw['foo'], 1);
    assert.deepEqual(argsCniIps(c), []);
  });

  it('reads args.cni.ips and labels', () => {
    const c = parseNetConf(conf({ args: { cni: { ips: ['10.1.1.8'], labels: [{ key: 'app', value: 'web' }, { bad: 1 }] } } }), 'ADD');
    assert.deepEqual(argsCniIps(c), ['10.1.1.8']);
    assert.deepEqual(argsCniLabels(c), { app: 'web' });
  });

  it('parses a prevResult of its own family and refuses another family', () => {
    const ok = parseNetConf(conf({ prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/32' }] } }), 'ADD');
    assert.equal(ok.prevResult?.ips?.[0]?.address, '10.0.0.2/32');
    const inherit = parseNetConf(conf({ prevResult: { ips: [{ address: '10.0.0.2/32' }] } }), 'ADD');
    assert.equal(inherit.prevResult?.cniVersion, '1.0.0');
    const e = err(() => parseNetConf(conf({ prevResult: { cniVersion: '0.4.0', ips: [] } }), 'ADD'));
    assert.equal(e.code, 6);
    assert.match(e.message, /result type supports \[1\.0\.0 1\.1\.0\] but unmarshalled CNIVersion is "0\.4\.0"/);
  });

  it('GC: reads either attachment key; neither means undefined (delete nothing)', () => {
    const v = [{ containerID: 'a', ifname: 'eth0' }];
    const gc = (o: Record<string, unknown>): unknown => parseNetConf(conf({ cniVersion: '1.1.0', ...o }), 'GC').validAttachments;
    assert.deepEqual(gc({ 'cni.dev/valid-attachments': v }), [{ containerId: 'a', ifName: 'eth0' }]);
    assert.deepEqual(gc({ 'cni.dev/attachments': v }), [{ containerId: 'a', ifName: 'eth0' }]);
    assert.equal(gc({}), undefined);
    assert.deepEqual(gc({ 'cni.dev/valid-attachments': [] }), []);
    assert.equal(err(() => gc({ 'cni.dev/valid-attachments': [{ id: 1 }] })).code, 6);
  });

  it('refuses wrongly typed well-known keys with code 6', () => {
    assert.equal(err(() => parseNetConf(conf({ dns: 'x' }), 'ADD')).code, 6);
    assert.equal(err(() => parseNetConf(conf({ capabilities: { ips: 'yes' } }), 'ADD')).code, 6);
    assert.equal(err(() => parseNetConf(conf({ runtimeConfig: [] }), 'ADD')).code, 6);
  });
});
