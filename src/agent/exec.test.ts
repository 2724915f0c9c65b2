import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CniError, ErrorCode } from '../cni/errors.js';
import type { Result } from '../cni/result.js';
import type { CniRequest } from './api.js';
import { ABOUT, parseExecution, runExecution, VERSION_REPLY } from './exec.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const env = (o: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, b64(v)]));

const ADD_ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/p', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
const CONF = JSON.stringify({ cniVersion: '0.4.0', name: 'net', type: 'weft' });
const RESULT: Result = {
  cniVersion: '1.1.0',
  interfaces: [{ name: 'eth0', sandbox: '/run/netns/p' }],
  ips: [{ address: '10.244.0.5/24', gateway: '10.244.0.1', interface: 0 }],
};

describe('parseExecution', () => {
  it('decodes the environment and stdin, and the held netns with its DEV:INO', () => {
    const ex = parseExecution({ env: env(ADD_ENV), stdin: b64(CONF), pid: 42, netnsFd: 3, netnsFile: '4:4026532000' });
    assert.deepEqual(ex.env, ADD_ENV);
    assert.equal(ex.stdin.toString(), CONF);
    assert.deepEqual([ex.pid, ex.netnsFd, ex.netnsFile], [42, 3, '4:4026532000']);
  });

  it('refuses what the forwarder never sends, naming what is accepted', () => {
    const cases: Array<[unknown, RegExp]> = [
      [[], /must be a JSON object/],
      [{ env: [] }, /"env" must be an object/],
      [{ env: env({ LD_PRELOAD: '/x.so' }) }, /"env" may hold only CNI_COMMAND, CNI_CONTAINERID/],
      [{ env: { CNI_COMMAND: 'not base64!' } }, /env\.CNI_COMMAND must be base64/],
      [{ env: {}, stdin: 'A'.repeat(2 * 1024 * 1024) }, /stdin must be base64 of at most 1048576 bytes/],
      [{ env: {}, pid: -1 }, /"pid" must be an integer 1-/],
      [{ env: {}, pid: 0 }, /"pid" must be an integer 1-/],
      [{ env: {}, netnsFd: 3, netnsFile: '1:2' }, /"netnsFd" comes with the "pid"/],
      [{ env: {}, pid: 1, netnsFd: 3 }, /"netnsFile" must be "DEV:INO"/],
      [{ env: {}, pid: 1, netnsFd: 3, netnsFile: '1:2; rm' }, /"netnsFile" must be "DEV:INO"/],
      [{ env: {}, netnsErrno: 'enoent' }, /errno name/],
    ];
    for (const [body, msg] of cases) {
      assert.throws(() => parseExecution(body), (e: Error & { code?: number }) => e.code === 6 && msg.test(e.message), JSON.stringify(body).slice(0, 80));
    }
  });
});

describe('runExecution', () => {
  const never = (): Promise<Result | undefined> => Promise.reject(new Error('the service must not be asked'));

  it('answers the about banner and VERSION without the service', async () => {
    assert.deepEqual(await runExecution({ env: {}, stdin: Buffer.alloc(0) }, never), { stdout: '', stderr: ABOUT, exitCode: 0 });
    const v = await runExecution({ env: { CNI_COMMAND: 'VERSION' }, stdin: Buffer.from('garbage') }, never);
    assert.deepEqual([v.stdout, v.exitCode], [VERSION_REPLY, 0]);
  });

  it("hands the service the held netns, and prints its result in the config's version", async () => {
    let seen: CniRequest | undefined;
    const out = await runExecution({ env: ADD_ENV, stdin: Buffer.from(CONF), pid: 9, netnsFd: 5, netnsFile: '4:7' }, (r) => {
      seen = r;
      return Promise.resolve(RESULT);
    });
    assert.deepEqual(seen?.netnsFd, { pid: 9, fd: 5, file: '4:7' });
    assert.equal(out.exitCode, 0);
    const printed = JSON.parse(out.stdout) as Record<string, unknown>;
    assert.equal(printed['cniVersion'], '0.4.0');
    assert.deepEqual(printed['ips'], [{ version: '4', address: '10.244.0.5/24', gateway: '10.244.0.1', interface: 0 }]);
  });

  it('a failure is exit 1 with the CNI error object (in the config version once it is read); DEL prints nothing', async () => {
    // The environment is checked before the config is read, as the reference skel does.
    const bad = await runExecution({ env: { ...ADD_ENV, CNI_IFNAME: 'a/b' }, stdin: Buffer.from(CONF) }, never);
    assert.equal(bad.exitCode, 1);
    assert.deepEqual(JSON.parse(bad.stdout), { code: 4, msg: 'interface name contains / or : or whitespace characters', details: 'a/b' });
    const busy = await runExecution({ env: ADD_ENV, stdin: Buffer.from(CONF) }, () => Promise.reject(new CniError(ErrorCode.TryAgainLater, 'busy')));
    assert.equal(busy.exitCode, 1);
    assert.deepEqual(JSON.parse(busy.stdout), { cniVersion: '0.4.0', code: 11, msg: 'busy' });
    const del = await runExecution({ env: { ...ADD_ENV, CNI_COMMAND: 'DEL' }, stdin: Buffer.from(CONF) }, () => Promise.resolve(undefined));
    assert.deepEqual([del.stdout, del.exitCode], ['', 0]);
  });
});
