import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSandboxAgent, stopSandboxAgent } from '../src/lab/sandbox.js';
import { CLI, privilegedSkip } from './helpers/env.js';
import { DUAL_STACK, startTestNode, stateLeftovers, type TestNode } from './helpers/node.js';

/** State across agent restarts and node reboots. */
const skip = privilegedSkip();

describe('agent state across restarts and reboots', { skip }, () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
  });
  after(async () => {
    await node?.stop();
  });

  it('a restart keeps attachments and reservations; state of another boot is dropped at start', async () => {
    await node.addPod('keep');
    await stopSandboxAgent(node.sb, 'SIGTERM');
    await startSandboxAgent(node.sb, { podCidrs: DUAL_STACK, cliEntry: CLI });
    assert.equal((await stateLeftovers(node)).reservations.length, 2, 'a restart in the same boot keeps state');
    await node.rt.check(node.list, node.conf('keep'));

    // Simulate a reboot: the state says it was written in another boot. (The veth of "keep"
    // would be gone after a real reboot; here it is not, so GC-free cleanup is checked on state.)
    await stopSandboxAgent(node.sb, 'SIGTERM');
    await fs.writeFile(join(node.sb.stateDir, 'boot-id'), '00000000-0000-0000-0000-000000000000\n');
    await startSandboxAgent(node.sb, { podCidrs: DUAL_STACK, cliEntry: CLI });
    assert.deepEqual(await stateLeftovers(node), { reservations: [], records: [] });
    const log = await fs.readFile(node.sb.agentLog, 'utf8');
    assert.match(log, /the node rebooted since the state was written/);
    assert.match(log, /"attachments":1,"reservations":2/);
    // The addresses are free again.
    await node.rt.del(node.list, node.conf('keep'));
    const { addresses } = await node.addPod('after2');
    assert.equal(addresses.length, 2);
  });
});
