import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseResult } from '../src/cni/convert.js';
import { addressOf } from '../src/cni/result.js';
import { createPodNetns } from '../src/lab/sandbox.js';
import { ipIn, ping, privilegedSkip } from './helpers/env.js';
import { nodeLeftovers, startTestNode, stateLeftovers, type TestNode } from './helpers/node.js';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';

/** Many pods on one node, sequential and concurrent, through the real runtime protocol. */
const skip = privilegedSkip();

function addressesOf(raw: unknown, version: string): string[] {
  return (parseResult(raw, version).ips ?? []).map((i) => addressOf(i.address));
}

async function cacheEntries(node: TestNode): Promise<string[]> {
  return fs.readdir(join(node.sb.cacheDir, 'results')).catch(() => []);
}

describe('scale', { skip }, () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
  });
  after(async () => {
    await node?.stop();
  });

  it('50 pods added then deleted: distinct addresses, all reachable, then no leftover link, route, address, reservation or record', async () => {
    const all: string[] = [];
    for (let i = 0; i < 50; i++) {
      const netns = await createPodNetns(node.sb, `s${i}`);
      all.push(...addressesOf(await node.rt.add(node.list, node.conf(`s${i}`)), node.list.cniVersion));
      assert.ok(netns);
    }
    assert.equal(all.length, 100);
    assert.equal(new Set(all).size, 100, 'no address given twice');
    assert.equal(nodeLeftovers(node).links.length, 50);
    assert.equal(nodeLeftovers(node).routes.length, 100);
    for (const a of [all[0], all[1], all[98], all[99]]) assert.ok(ping(`${node.sb.prefix}-s25`, a as string), `s25 -> ${a}`);

    for (let i = 0; i < 50; i++) await node.rt.del(node.list, node.conf(`s${i}`));
    assert.deepEqual(nodeLeftovers(node), { links: [], routes: [] });
    assert.deepEqual(await stateLeftovers(node), { reservations: [], records: [] });
    assert.deepEqual(await cacheEntries(node), []);
    for (const i of [0, 17, 49]) {
      const addrs = ipIn(`${node.sb.prefix}-s${i}`, ['-o', 'addr', 'show']);
      assert.doesNotMatch(addrs, /10\.244\.7\.|fd00:244:7/, `pod s${i} has no weft address left`);
    }
  });

  it('20 concurrent ADDs all succeed with distinct addresses; 20 concurrent DELs leave nothing', async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `c${i}`);
    await Promise.all(ids.map((id) => createPodNetns(node.sb, id)));
    const results = await Promise.all(ids.map((id) => node.rt.add(node.list, node.conf(id))));
    const addrs = results.flatMap((r) => addressesOf(r, node.list.cniVersion));
    assert.equal(addrs.length, 40);
    assert.equal(new Set(addrs).size, 40);
    assert.equal(nodeLeftovers(node).links.length, 20);
    assert.ok(ping(`${node.sb.prefix}-c0`, addrs[39] as string));
    await Promise.all(ids.map((id) => node.rt.check(node.list, node.conf(id))));
    await Promise.all(ids.map((id) => node.rt.del(node.list, node.conf(id))));
    assert.deepEqual(nodeLeftovers(node), { links: [], routes: [] });
    assert.deepEqual(await stateLeftovers(node), { reservations: [], records: [] });
  });
});
