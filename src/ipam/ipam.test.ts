import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CniError } from '../cni/errors.js';
import { parseCidr } from './cidr.js';
import { Ipam } from './ipam.js';

const owner = (containerId: string, ifName = 'eth0'): { containerId: string; ifName: string; network: string } => ({ containerId, ifName, network: 'net' });
const ranges = [parseCidr('10.5.0.0/24'), parseCidr('fd05::/64')];

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-ipam-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fresh(name: string, r = ranges): Promise<Ipam> {
  return Ipam.open(join(dir, name), r);
}

function code(n: number): (e: unknown) => boolean {
  return (e) => e instanceof CniError && e.code === n;
}

describe('Ipam', () => {
  it('gives one address per family, /32 and /128, skipping the node address', async () => {
    const ipam = await fresh('basic');
    const a = await ipam.allocate(owner('c1'), []);
    assert.deepEqual(a, [
      { family: 4, address: '10.5.0.2', prefix: 32 },
      { family: 6, address: 'fd05::2', prefix: 128 },
    ]);
  });

  it('is idempotent per (container, interface); another interface gets other addresses', async () => {
    const ipam = await fresh('idem');
    const a = await ipam.allocate(owner('c1'), []);
    assert.deepEqual(await ipam.allocate(owner('c1'), []), a);
    const b = await ipam.allocate(owner('c1', 'eth1'), []);
    assert.notDeepEqual(b, a);
    assert.equal(ipam.reservations().length, 4);
  });

  it('honours a requested address and refuses one outside the range, the gateway, or a taken one', async () => {
    const ipam = await fresh('req');
    const a = await ipam.allocate(owner('c1'), ['10.5.0.77/24']);
    assert.equal(a[0]?.address, '10.5.0.77');
    await assert.rejects(ipam.allocate(owner('c2'), ['10.5.0.77']), (e: unknown) => code(102)(e) && (e as Error).message.includes('already in use by container c1'));
    await assert.rejects(ipam.allocate(owner('c3'), ['10.6.0.5']), (e: unknown) => code(102)(e) && (e as Error).message.includes('outside the pod range'));
    await assert.rejects(ipam.allocate(owner('c4'), ['10.5.0.1']), (e: unknown) => code(102)(e) && (e as Error).message.includes('reserved for the node'));
    await assert.rejects(ipam.allocate(owner('c5'), ['10.5.0.255']), code(102));
    await assert.rejects(ipam.allocate(owner('c6'), ['not-an-ip']), code(7));
    await assert.rejects(ipam.allocate(owner('c7'), ['10.5.0.8', '10.5.0.9']), code(7));
    // Nothing half-done: the failed requests left no reservation.
    assert.equal(ipam.reservations().length, 2);
  });

  it('rolls back the first family when the second fails', async () => {
    const ipam = await fresh('rollback');
    await ipam.allocate(owner('c1'), ['fd05::9']);
    await assert.rejects(ipam.allocate(owner('c2'), ['fd05::9']), code(102));
    assert.deepEqual(ipam.addressesOf(owner('c2')), []);
    assert.equal(ipam.reservations().length, 2);
  });

  it('reports exhaustion as a clear error, immediately', async () => {
    const ipam = await fresh('full', [parseCidr('10.7.0.0/29')]);
    const got = [];
    for (let i = 0; i < 5; i++) got.push((await ipam.allocate(owner(`c${i}`), []))[0]?.address);
    assert.deepEqual(got, ['10.7.0.2', '10.7.0.3', '10.7.0.4', '10.7.0.5', '10.7.0.6']);
    await assert.rejects(ipam.allocate(owner('c9'), []), (e: unknown) => code(101)(e) && /no free IPv4 address in pod range 10\.7\.0\.0\/29: all 5 are in use/.test((e as Error).message));
    assert.equal(ipam.status()[0]?.free, '0');
  });

  it('gives distinct addresses to concurrent callers', async () => {
    const ipam = await fresh('concurrent');
    const all = await Promise.all(Array.from({ length: 50 }, (_, i) => ipam.allocate(owner(`c${i}`), [])));
    const v4 = all.map((a) => a[0]?.address);
    const v6 = all.map((a) => a[1]?.address);
    assert.equal(new Set(v4).size, 50);
    assert.equal(new Set(v6).size, 50);
  });

  it('survives a restart: reservations and the round-robin cursor come back from disk', async () => {
    const a = await fresh('restart');
    await a.allocate(owner('c1'), []);
    await a.allocate(owner('c2'), []);
    await a.release(owner('c1'));
    const b = await fresh('restart');
    assert.deepEqual(b.addressesOf(owner('c2')), ['10.5.0.3', 'fd05::3']);
    assert.deepEqual((await b.allocate(owner('c3'), [])).map((x) => x.address), ['10.5.0.4', 'fd05::4']);
  });

  it('ignores half-written temp files and keeps unreadable reservations taken', async () => {
    const a = await fresh('debris');
    await a.allocate(owner('c1'), []);
    const resDir = join(dir, 'debris', 'ipam', 'reservations');
    await writeFile(join(resDir, '.tmp-10.5.0.9-1-abcd'), '{"containerId":');
    await writeFile(join(resDir, '10.5.0.3'), 'garbage');
    const b = await fresh('debris');
    assert.equal((await readdir(resDir)).some((n) => n.startsWith('.tmp-')), false);
    assert.deepEqual((await b.allocate(owner('c2'), [])).map((x) => x.address), ['10.5.0.4', 'fd05::3']);
    const freed = await b.collect((o) => o.containerId === 'c1' || o.containerId === 'c2');
    assert.deepEqual(freed, ['10.5.0.3']);
  });

  it('release is idempotent; collect frees exactly what keep rejects', async () => {
    const ipam = await fresh('collect');
    await ipam.allocate(owner('keep'), []);
    await ipam.allocate(owner('drop'), []);
    assert.deepEqual(await ipam.release(owner('never')), []);
    const freed = await ipam.collect((o) => o.containerId === 'keep');
    assert.deepEqual(freed.sort(), ['10.5.0.3', 'fd05::3']);
    assert.deepEqual(ipam.addressesOf(owner('keep')), ['10.5.0.2', 'fd05::2']);
  });

  it('refuses two ranges of one family', async () => {
    await assert.rejects(fresh('two', [parseCidr('10.0.0.0/24'), parseCidr('10.1.0.0/24')]), /only one IPv4 pod range/);
  });
});
