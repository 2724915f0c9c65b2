import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseResult } from '../src/cni/convert.js';
import { addressOf } from '../src/cni/result.js';
import { ADD_PHASES, type AddPhase } from '../src/agent/cni-service.js';
import { hostIfName } from '../src/datapath/names.js';
import { createPodNetns, startSandboxAgent, stopSandboxAgent } from '../src/lab/sandbox.js';
import { CLI, ipIn, ping, privilegedSkip } from './helpers/env.js';
import { DUAL_STACK, nodeLeftovers, startTestNode, stateLeftovers, type TestNode } from './helpers/node.js';

/**
 * kill -9 of the agent in the middle of ADDs, then a restart and the runtime's recovery (DEL of
 * the failed ADD, as containerd does, or GC with the valid list): state consistent, nothing
 * leaked, nothing given out twice. A test-only fault point (WEFT_TEST_PAUSE_ADD) holds the ADD at
 * each phase, so every crash point is hit on purpose, not by timing luck.
 */
const skip = privilegedSkip();

async function waitForLog(file: string, needle: string, count: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await fs.readFile(file, 'utf8').catch(() => '');
    if (text.split(needle).length - 1 >= count) return;
    if (Date.now() > deadline) throw new Error(`"${needle}" did not appear ${count} times in ${file}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('agent killed with -9 in the middle of ADDs', { skip }, () => {
  let node: TestNode;
  const survivors = new Map<string, string[]>(); // pod name -> addresses
  let pauses = 0;

  before(async () => {
    node = await startTestNode();
  });
  after(async () => {
    await node?.stop();
  });

  async function restart(pause?: AddPhase): Promise<void> {
    await stopSandboxAgent(node.sb, 'SIGKILL');
    await startSandboxAgent(node.sb, { podCidrs: DUAL_STACK, cliEntry: CLI, ...(pause ? { agentEnv: { WEFT_TEST_PAUSE_ADD: `${pause}:60000` } } : {}) });
  }

  async function addSurvivor(name: string): Promise<void> {
    await createPodNetns(node.sb, name);
    const raw = await node.rt.add(node.list, node.conf(name));
    const got = (parseResult(raw, node.list.cniVersion).ips ?? []).map((i) => addressOf(i.address));
    const held = new Set([...survivors.values()].flat());
    for (const a of got) assert.ok(!held.has(a), `${a} was given out twice`);
    survivors.set(name, got);
  }

  async function assertConsistent(victim: string): Promise<void> {
    const cid = `ctr-${victim}`;
    const state = await stateLeftovers(node);
    assert.ok(!state.records.some((r) => r.startsWith(`${cid}@`)), 'no record of the crashed ADD');
    assert.equal(state.records.length, survivors.size);
    assert.equal(state.reservations.length, survivors.size * 2, 'only the survivors hold addresses');
    assert.deepEqual(nodeLeftovers(node).links.sort(), [...survivors.keys()].map((n) => hostIfName(`ctr-${n}`, 'eth0')).sort());
    assert.doesNotMatch(ipIn(`${node.sb.prefix}-${victim}`, ['-o', 'link', 'show']), /eth0/, 'the pod of the crashed ADD has no interface left');
    for (const name of survivors.keys()) await node.rt.check(node.list, node.conf(name));
  }

  for (const phase of ADD_PHASES) {
    for (const recovery of ['DEL', 'GC'] as const) {
      it(`crash at "${phase}", recovered by ${recovery}`, async () => {
        if (survivors.size === 0) await addSurvivor('first');
        const victim = `v-${phase}-${recovery}`.toLowerCase();
        await createPodNetns(node.sb, victim);
        await restart(phase);
        const adding = node.rt.add(node.list, node.conf(victim)).then(
          () => undefined,
          (e: Error) => e,
        );
        await waitForLog(node.sb.agentLog, '"test fault point: pausing ADD"', ++pauses);
        await stopSandboxAgent(node.sb, 'SIGKILL');
        const err = await adding;
        assert.ok(err instanceof Error, 'the interrupted ADD failed');

        // Prove the crash left something to clean up at this phase.
        const cid = `ctr-${victim}`;
        const recordFile = join(node.sb.stateDir, 'attachments', `${cid}@eth0.json`);
        assert.ok(existsSync(recordFile), 'the crash left a record');
        const reserved = (await stateLeftovers(node)).reservations.length > survivors.size * 2;
        assert.equal(reserved, phase !== 'pending-written', 'reservations exist from "reserved" on');
        const linkLeft = nodeLeftovers(node).links.includes(hostIfName(cid, 'eth0'));
        assert.equal(linkLeft, phase !== 'pending-written' && phase !== 'reserved', 'the veth exists from "host-side-done" on');

        await restart();
        if (recovery === 'DEL') await node.rt.del(node.list, node.conf(victim));
        else await node.rt.gc(node.list, [...survivors.keys()].map((n) => ({ containerId: `ctr-${n}`, ifName: 'eth0' })));
        await assertConsistent(victim);
        await addSurvivor(`s-${phase}-${recovery}`.toLowerCase());
        const [a, b] = [...survivors.values()];
        assert.ok(ping(`${node.sb.prefix}-first`, (b ?? a)?.[0] as string), 'survivors reach each other');
      });
    }
  }

  it('a burst of concurrent ADDs killed mid-way: the survivors are exactly the successful ADDs', async () => {
    const ids = Array.from({ length: 16 }, (_, i) => `b${i}`);
    await Promise.all(ids.map((id) => createPodNetns(node.sb, id)));
    const ok: string[] = [];
    let next = 0;
    let killed = false;
    const worker = async (): Promise<void> => {
      while (next < ids.length) {
        const id = ids[next++] as string;
        try {
          await node.rt.add(node.list, node.conf(id));
          ok.push(id);
          if (ok.length === 5 && !killed) {
            killed = true;
            await stopSandboxAgent(node.sb, 'SIGKILL');
          }
        } catch {
          /* interrupted by the kill, or refused while the agent is down */
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    assert.ok(ok.length >= 5 && ok.length < ids.length, `${ok.length} of ${ids.length} succeeded`);
    await restart();
    const valid = [...survivors.keys(), ...ok].map((n) => ({ containerId: `ctr-${n}`, ifName: 'eth0' }));
    await node.rt.gc(node.list, valid);
    const state = await stateLeftovers(node);
    assert.equal(state.records.length, valid.length);
    assert.equal(state.reservations.length, valid.length * 2);
    assert.equal(nodeLeftovers(node).links.length, valid.length);
    for (const id of ok) await node.rt.check(node.list, node.conf(id));
  });
});
