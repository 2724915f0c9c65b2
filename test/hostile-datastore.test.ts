import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { getHealth } from '../src/agent/health-client.js';
import { identityProblem, printable } from '../src/datastore/store.js';
import { labStatus, waitPolicyConverged, withLabStore } from '../src/lab/lab.js';
import { tryAdmit } from '../src/model/admission.js';
import type { KObject } from '../src/model/objects.js';
import { processStartTime } from '../src/util/lock-file.js';
import { CLI, privilegedSkip } from './helpers/env.js';
import { etcdMissing } from './helpers/etcd.js';
import { hostileWrites, undecodableWrites, type HostileWrite } from './helpers/hostile.js';
import { startLab, type TestLab } from './helpers/lab.js';
import { probeAgainstEvaluator } from './helpers/reachability.js';

/**
 * Hostile objects of every kind Weft reads, written straight into a lab's etcd — past `weft
 * apply` and past the store's own checks — with values drawn from separators, quotes, braces,
 * newlines, NUL and control characters, huge strings, wrong types, out-of-range numbers, and
 * values that are not JSON. Afterwards: every agent is up, each node's nftables hold only Weft's
 * own tables (nothing injected), the policy of the well-formed objects is enforced exactly as
 * the evaluator says (every cell probed), a new pod still gets created, and each object that
 * fails admission is reported by every agent. The seed is printed; WEFT_FUZZ_SEED replays it.
 */
const skip = privilegedSkip() ?? etcdMissing();
const SEED = Number(process.env['WEFT_FUZZ_SEED'] ?? process.env['WEFT_FC_SEED'] ?? 20261129);
const COUNT = Number(process.env['WEFT_FUZZ_COUNT'] ?? 120);

/** Every pod serves what the probed matrix asks (TCP and UDP, 80 and 81). */
const PORTS = [80, 81].flatMap((port) => (['TCP', 'UDP'] as const).map((protocol) => ({ port, protocol })));

const key = (w: { kind: string; name: string; namespace: string | undefined }): string => `/weft/v1/${w.kind}/${w.namespace ?? '_'}/${w.name}`;

/** The attacks the issue names, verbatim. */
const ISSUE_CASES: HostileWrite[] = [
  {
    kind: 'Pod',
    name: 'inject',
    namespace: 'x',
    value: JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'inject', namespace: 'x', labels: { app: 'inject' } }, spec: { nodeName: 'node-2', containers: [{ name: 'c', ports: [{ name: 'http', containerPort: '80 } ; add table inet pwned ; add element inet weft_policy local4 { 10.0.0.1 }' }] }] }, status: { podIPs: [{ ip: '10.244.1.250' }] } }),
  },
  { kind: 'Pod', name: 'port-99999', namespace: 'x', value: JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'port-99999', namespace: 'x' }, spec: { containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 99999 }] }] } }) },
  { kind: 'WeftClusterPolicy', name: 'nul-rule', namespace: undefined, value: JSON.stringify({ apiVersion: 'weft.io/v1', kind: 'WeftClusterPolicy', metadata: { name: 'nul-rule' }, spec: { priority: 5, subject: { namespaces: {} }, egress: [{ name: 'a\u0000b', action: 'Allow', to: [{ namespaces: {} }] }] } }) },
  { kind: 'WeftEndpoint', name: 'not-an-ip', namespace: 'x', value: JSON.stringify({ apiVersion: 'weft.io/v1', kind: 'WeftEndpoint', metadata: { name: 'not-an-ip', namespace: 'x' }, spec: { node: 'node-1', containerId: 'c1', ifName: 'eth0', addresses: ['not-an-ip'] } }) },
  { kind: 'Pod', name: 'garbage', namespace: 'x', value: '{"this is": not json' },
];

/** A policy that uses the named port the injected Pod declares: valid, and stays enforced. */
const USES_HTTP = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'uses-http', namespace: 'x' }, spec: { podSelector: { matchLabels: { app: 'b' } }, ingress: [{ ports: [{ port: 'http' }] }] } };
const B_FROM_A = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'b-from-a', namespace: 'x' }, spec: { podSelector: { matchLabels: { app: 'b' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }], ports: [{ port: 80 }] }] } };

/** Why the store or admission leaves this value out, or undefined when it is a usable object. */
function leftOutBecause(w: HostileWrite): string | undefined {
  let v: unknown;
  try {
    v = JSON.parse(w.value);
  } catch {
    return 'not JSON';
  }
  const id = identityProblem(v, w.kind, w.name, w.namespace);
  if (id) return id;
  const r = tryAdmit(v);
  return r.ok ? undefined : r.reason;
}

function nodeTables(lab: TestLab, node: string): string[] {
  const r = spawnSync('ip', ['netns', 'exec', `${lab.state().prefix}.${node}`, 'nft', '-j', 'list', 'tables'], { encoding: 'utf8' });
  return ((JSON.parse(r.stdout) as { nftables: Array<{ table?: { family: string; name: string } }> }).nftables ?? []).flatMap((x) => (x.table ? [`${x.table.family} ${x.table.name}`] : [])).sort();
}

function ruleset(lab: TestLab, node: string): string {
  return spawnSync('ip', ['netns', 'exec', `${lab.state().prefix}.${node}`, 'nft', 'list', 'ruleset'], { encoding: 'utf8' }).stdout;
}

describe('hostile objects straight into the datastore (etcd, two nodes)', { skip, timeout: 10 * 60_000 }, () => {
  let lab: TestLab | undefined;
  let etcd: Etcd3 | undefined;
  before(async () => {
    lab = await startLab({ nodes: 2, backend: 'vxlan', datastore: 'etcd' });
    await lab.ns('x');
    await lab.pod({ namespace: 'x', name: 'a', node: 'node-1', labels: { app: 'a' }, ports: PORTS });
    await lab.pod({ namespace: 'x', name: 'b', node: 'node-2', labels: { app: 'b' }, ports: PORTS });
    await lab.pod({ namespace: 'x', name: 'c', node: 'node-1', labels: { app: 'c' }, ports: PORTS });
    await withLabStore(lab.state(), async (s) => {
      await s.create(B_FROM_A as KObject);
      await s.create(USES_HTTP as KObject);
    });
    await waitPolicyConverged(lab.state());
    const { Etcd3: Client } = await import('etcd3');
    const state = lab.state();
    if (state.datastore.kind !== 'etcd') throw new Error('an etcd lab was asked for');
    etcd = new Client({ hosts: [state.datastore.endpoint] });
  });
  after(async () => {
    etcd?.close();
    await lab?.down();
  });

  it(`${COUNT} generated hostile objects of every kind, the issue's attacks and undecodable values (seed ${SEED})`, async () => {
    const l = lab as TestLab;
    const before = await probeAgainstEvaluator(l);
    assert.deepEqual(before.wrong, []);
    assert.ok(before.blocked > 0 && before.blocked < before.cells, 'the baseline has both allowed and blocked cells');

    const writes = [...hostileWrites(SEED, COUNT), ...undecodableWrites(), ...ISSUE_CASES];
    process.stderr.write(`hostile datastore: seed ${SEED} (WEFT_FUZZ_SEED), ${writes.length} writes\n`);
    for (const w of writes) await (etcd as Etcd3).put(key(w)).value(w.value);
    const bad = writes.filter((w) => leftOutBecause(w) !== undefined);
    const admitted = writes.length - bad.length;
    process.stderr.write(`hostile datastore: ${bad.length} left out by the store or admission, ${admitted} admitted as valid objects\n`);
    assert.ok(bad.length > writes.length / 2, 'most of them are invalid');

    // Every agent reports every object it leaves out (each watches every kind written here).
    const t0 = Date.now();
    for (;;) {
      const views = await Promise.all(l.state().nodes.map((n) => getHealth(n.socket)));
      const missing = views.flatMap((h, i) => bad.filter((w) => !(h.rejected ?? []).some((r) => r.startsWith(`${w.kind} ${w.namespace ? `${w.namespace}/` : ''}${printable(w.name)}:`))).map((w) => `node-${i + 1} does not report ${key(w)}`));
      if (missing.length === 0) break;
      if (Date.now() - t0 > 30_000) assert.fail(missing.slice(0, 10).join('\n'));
      await new Promise((r) => setTimeout(r, 200));
    }
    process.stderr.write(`hostile datastore: every agent reports all ${bad.length} within ${Date.now() - t0} ms\n`);

    // Every agent is up; nothing but Weft's own tables, nothing injected into them.
    for (const n of l.state().nodes) {
      assert.ok(n.agentPid !== undefined && processStartTime(n.agentPid) !== undefined, `${n.name}'s agent is running`);
      assert.ok((await getHealth(n.socket)).ok);
      assert.deepEqual(nodeTables(l, n.name), ['inet weft_masq', 'inet weft_policy'], `${n.name}: only Weft's tables`);
      assert.doesNotMatch(ruleset(l, n.name), /pwned|10\.0\.0\.1\b/, `${n.name}: nothing injected`);
    }
    assert.equal(existsSync('/tmp/weft-pwned'), false);

    // The policy of the well-formed objects is enforced exactly as the evaluator says.
    await waitPolicyConverged(l.state());
    const afterProbe = await probeAgainstEvaluator(l);
    assert.deepEqual(afterProbe.wrong, []);
    process.stderr.write(`hostile datastore: ${afterProbe.cells} cells probed, all as the evaluator says (${afterProbe.blocked} blocked)\n`);

    // A new pod still gets created, and reaches and is reached exactly as policy says (the
    // generated objects that were valid may well isolate it).
    const d = await l.pod({ namespace: 'x', name: 'd', node: 'node-2', labels: { app: 'd' }, ports: PORTS });
    assert.equal(d.addresses.length, 2);
    const withD = await probeAgainstEvaluator(l);
    assert.deepEqual(withD.wrong, []);

    // The lab's status shows what is left out; `weft policy` warns about it.
    const st = await labStatus(l.name);
    assert.ok(st.nodes.every((n) => n.rejected.length >= bad.length));
    const text = spawnSync(process.execPath, [CLI, 'lab', 'status', '--name', l.name], { encoding: 'utf8' }).stdout;
    assert.match(text, /! left out \(not usable\): Pod x\/inject: The Pod "inject" is invalid: spec\.containers\[0\]\.ports\[0\]\.containerPort/);
    const control = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.exec(text);
    assert.equal(control, null, `no control character reaches the terminal: ${JSON.stringify(text.slice(Math.max(0, (control?.index ?? 0) - 80), (control?.index ?? 0) + 20))}`);
    const pol = spawnSync(process.execPath, [CLI, 'policy', 'trace', 'x/a', 'x/b', '80/TCP', '--lab', l.name], { encoding: 'utf8' });
    assert.equal(pol.status, 0, pol.stderr);
    assert.match(pol.stderr, /weft: warning: WeftEndpoint x\/not-an-ip: .*spec\.addresses\[0\].* \(left out\)/);
  });

  it('the cluster network itself made unusable: agents report it and keep working', async () => {
    const l = lab as TestLab;
    await (etcd as Etcd3).put('/weft/v1/ClusterNetwork/_/default').value('{"apiVersion":"weft.io/v1","kind":"ClusterNetwork","metadata":{"name":"default"},"spec":{"podCIDRs":["10.244.0.0/16; reboot"]}}');
    const t0 = Date.now();
    while (!(await Promise.all(l.state().nodes.map((n) => getHealth(n.socket)))).every((h) => (h.rejected ?? []).some((r) => r.startsWith('ClusterNetwork default:')))) {
      if (Date.now() - t0 > 20_000) assert.fail('the agents did not report the unusable ClusterNetwork');
      await new Promise((r) => setTimeout(r, 200));
    }
    const e = await l.pod({ namespace: 'x', name: 'e', node: 'node-1' });
    assert.equal(e.addresses.length, 2, 'a new pod is still attached');
    for (const n of l.state().nodes) assert.ok((await getHealth(n.socket)).ok);
  });
});
