import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CniError } from '../cni/errors.js';
import { parseInvocation } from './invocation.js';

const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/p', CNI_IFNAME: 'eth0', CNI_PATH: '/bin' };
const stdin = (o: Record<string, unknown>) => () => Promise.resolve(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'net', type: 'weft', ...o })));

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CniError);
    return e.code;
  }
  assert.fail('expected an error');
}

describe('parseInvocation', () => {
  it('VERSION never reads stdin', async () => {
    const inv = await parseInvocation({ CNI_COMMAND: 'VERSION' }, () => assert.fail('stdin read'));
    assert.equal(inv.kind, 'version');
  });

  it('builds the agent request', async () => {
    const inv = await parseInvocation({ ...env, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web' }, stdin({ socket: '/tmp/s.sock', mtu: 1400, dns: { nameservers: ['10.96.0.10'] } }));
    assert.equal(inv.kind, 'request');
    if (inv.kind !== 'request') return;
    assert.equal(inv.socket, '/tmp/s.sock');
    assert.deepEqual(inv.request, {
      command: 'ADD',
      cniVersion: '1.0.0',
      network: 'net',
      containerId: 'c1',
      ifName: 'eth0',
      netns: '/run/netns/p',
      requestedIps: [],
      mtu: 1400,
      dns: { nameservers: ['10.96.0.10'] },
      pod: { namespace: 'ns', name: 'web' },
    });
  });

  it('takes requested IPs from runtimeConfig, else args.cni, else CNI_ARGS', async () => {
    const get = async (e: Record<string, string>, o: Record<string, unknown>): Promise<[string[], string | undefined]> => {
      const inv = await parseInvocation({ ...env, ...e }, stdin(o));
      assert.equal(inv.kind, 'request');
      return inv.kind === 'request' ? [inv.request.requestedIps, inv.request.requestedIpsSource] : [[], undefined];
    };
    const all = { runtimeConfig: { ips: ['10.0.0.1'] }, args: { cni: { ips: ['10.0.0.2'] } } };
    assert.deepEqual(await get({ CNI_ARGS: 'IP=10.0.0.3' }, all), [['10.0.0.1'], 'runtimeConfig.ips']);
    assert.deepEqual(await get({ CNI_ARGS: 'IP=10.0.0.3' }, { args: all.args }), [['10.0.0.2'], 'args.cni.ips']);
    assert.deepEqual(await get({ CNI_ARGS: 'IP=10.0.0.3' }, {}), [['10.0.0.3'], 'CNI_ARGS IP']);
  });

  it('refuses "ipam" with code 2 naming it, and bad weft keys', async () => {
    assert.equal(await code(parseInvocation(env, stdin({ ipam: { type: 'host-local' } }))), 2);
    assert.equal(await code(parseInvocation(env, stdin({ socket: 'relative' }))), 7);
    assert.equal(await code(parseInvocation(env, stdin({ mtu: 10 }))), 7);
    assert.equal(await code(parseInvocation(env, stdin({ mtu: '1500' }))), 6);
  });

  it('reports a stdin read failure as code 5', async () => {
    assert.equal(await code(parseInvocation(env, () => Promise.reject(new Error('EIO')))), 5);
  });

  it('applies the checks in the reference order: env before config', async () => {
    assert.equal(await code(parseInvocation({ CNI_COMMAND: 'ADD' }, () => Promise.resolve(Buffer.from('garbage')))), 4);
    assert.equal(await code(parseInvocation(env, () => Promise.resolve(Buffer.from('garbage')))), 6);
  });
});
