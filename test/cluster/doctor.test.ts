import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { getHealth } from '../../src/agent/health-client.js';
import type { Finding } from '../../src/doctor/judge.js';
import { CLI, privilegedSkip } from '../helpers/env.js';
import { kill9, startLab, type TestLab } from '../helpers/lab.js';

/**
 * `weft doctor --lab` through the real CLI on a 2-node lab: it passes on the healthy lab, finds
 * each injected fault (a deleted route, a deleted policy table, a wrong MTU, a killed agent) on
 * the right node with its fix — and the fix it names, run as it is written, repairs it.
 */
const skip = privilegedSkip();

interface Report {
  status: number;
  ok: boolean;
  findings: Finding[];
}

function doctor(lab: TestLab): Report {
  const r = spawnSync(process.execPath, [CLI, 'doctor', '--lab', lab.name, '--json'], { encoding: 'utf8', timeout: 30_000 });
  const doc = JSON.parse(r.stdout) as { ok: boolean; findings: Finding[] };
  return { status: r.status ?? -1, ok: doc.ok, findings: doc.findings };
}

const failures = (r: Report): string[] => r.findings.filter((f) => f.result === 'fail').map((f) => `${f.check}@${f.node}`);

/** Runs a fix as doctor wrote it (`weft …` is this build's CLI); every fix is plain words, no shell. */
function runFix(fix: string): void {
  const words = fix.replace(/ \(.*\)$/, '').split(' ');
  const [file, ...args] = words[0] === 'weft' ? [process.execPath, CLI, ...words.slice(1)] : words;
  const r = spawnSync(file as string, args, { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `the fix ${fix} failed: ${r.stderr}`);
}

/** Polls doctor until every check passes (a restarted agent needs a moment for its first syncs). */
async function passes(lab: TestLab, timeoutMs = 20_000): Promise<Report> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = doctor(lab);
    if (r.status === 0) return r;
    if (Date.now() > deadline) assert.fail(`doctor still fails: ${failures(r).join(', ')}\n${JSON.stringify(r.findings.filter((f) => f.result === 'fail'), null, 1)}`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

/** The one failing finding: on this node, of this check. */
function theFailure(r: Report, check: string, node: string): Finding {
  assert.equal(r.status, 1, 'doctor exits 1');
  assert.equal(r.ok, false);
  assert.deepEqual(failures(r), [`${check}@${node}`]);
  return r.findings.find((f) => f.result === 'fail') as Finding;
}

describe('weft doctor on a 2-node lab (vxlan, file)', { skip }, () => {
  let lab: TestLab | undefined;
  let ns: (node: string) => string;
  before(async () => {
    lab = await startLab({ nodes: 2, backend: 'vxlan', datastore: 'file' });
    ns = (node) => `${lab!.state().prefix}.${node}`;
    await lab.ns('x');
    await lab.pod({ namespace: 'x', name: 'a', node: 'node-1' });
    await lab.pod({ namespace: 'x', name: 'b', node: 'node-2' });
  });
  after(async () => {
    await lab?.down();
  });

  it('passes on the healthy lab: exit 0, every check of both nodes passes or does not apply', async () => {
    const r = await passes(lab!);
    assert.equal(r.ok, true);
    const checks = (node: string): string[] => r.findings.filter((f) => f.node === node && f.result === 'pass').map((f) => f.check);
    for (const node of ['node-1', 'node-2']) {
      for (const c of ['agent', 'datastore', 'forwarding', 'routes', 'vxlan', 'policy-table', 'policy-sync', 'masquerade', 'mtu', 'leaks', 'cni-config', 'clock']) assert.ok(checks(node).includes(c), `${c} passes on ${node}`);
    }
  });

  it("a route to the peer's block deleted on node-1: routes fails there, and its fix restores the route", async () => {
    const node2 = lab!.state().nodes.find((n) => n.name === 'node-2');
    const peerBlock = (await getHealth(node2?.socket as string)).cluster?.blocks.find((b) => !b.includes(':')) as string;
    // The agent puts a deleted route back at its next resync (every 10 s): doctor runs at once,
    // and the deletion is made again should a resync have come in between.
    let r: Report | undefined;
    for (let i = 0; i < 3; i++) {
      spawnSync('ip', ['-n', ns('node-1'), 'route', 'del', peerBlock, 'proto', '77']);
      r = doctor(lab!);
      if (r.status !== 0) break;
    }
    const f = theFailure(r as Report, 'routes', 'node-1');
    assert.match(f.problems[0]?.what ?? '', new RegExp(`no route to node-2's block ${peerBlock.replace(/\./g, '\\.').replace('/', '\\/')}`));
    assert.match(f.problems[0]?.fix ?? '', new RegExp(`^ip netns exec ${ns('node-1').replace('.', '\\.')} ip route replace ${peerBlock.replace(/\./g, '\\.')} via \\S+ dev weft\\.vxlan onlink proto 77`));
    runFix(f.problems[0]?.fix as string);
    assert.equal(doctor(lab!).status, 0, 'the fix as named repairs it');
  });

  it('the policy table deleted on node-2: policy-table fails there; the fix (restart the agent) writes it again', async () => {
    // The running agent rewrites the whole table only every 5 min or at its next change: the
    // fault stays until then.
    spawnSync('ip', ['netns', 'exec', ns('node-2'), 'nft', 'delete', 'table', 'inet', 'weft_policy']);
    const f = theFailure(doctor(lab!), 'policy-table', 'node-2');
    assert.match(f.problems[0]?.what ?? '', /inet weft_policy is missing/);
    assert.match(f.problems[0]?.fix ?? '', new RegExp(`^weft lab node restart node-2 --lab ${lab!.name}`));
    runFix(f.problems[0]?.fix as string);
    await passes(lab!);
  });

  it("a wrong MTU on node-1's VXLAN device: mtu fails there, and its fix restores it", () => {
    // The agent makes the device again only when it is gone: a changed MTU stays.
    spawnSync('ip', ['-n', ns('node-1'), 'link', 'set', 'dev', 'weft.vxlan', 'mtu', '1400']);
    const f = theFailure(doctor(lab!), 'mtu', 'node-1');
    assert.match(f.problems[0]?.what ?? '', /weft\.vxlan has MTU 1400; the pods' MTU is 1450/);
    assert.equal(f.problems[0]?.fix, `ip netns exec ${ns('node-1')} ip link set dev weft.vxlan mtu 1450`);
    runFix(f.problems[0]?.fix as string);
    assert.equal(doctor(lab!).status, 0);
  });

  it("node-2's agent killed: agent fails there naming the restart, its kernel checks still run; restarted as named, all pass", async () => {
    const node = lab!.state().nodes.find((n) => n.name === 'node-2');
    await kill9(node?.agentPid as number);
    const r = doctor(lab!);
    const f = theFailure(r, 'agent', 'node-2');
    assert.match(f.problems[0]?.what ?? '', /no agent answers on .*agent\.sock/);
    assert.equal(f.problems[0]?.fix, `weft lab node restart node-2 --lab ${lab!.name}`);
    const on2 = (check: string): string | undefined => r.findings.find((x) => x.node === 'node-2' && x.check === check)?.result;
    assert.equal(on2('forwarding'), 'pass', 'kernel checks run without the agent');
    assert.equal(on2('masquerade'), 'pass');
    assert.equal(on2('policy-table'), 'pass');
    assert.equal(on2('cni-config'), 'pass');
    assert.equal(on2('routes'), 'skip');
    runFix(f.problems[0]?.fix as string);
    await passes(lab!);
  });
});
