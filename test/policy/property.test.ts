import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { getHealth } from '../../src/agent/health-client.js';
import { LAB_CLUSTER_CIDRS, waitPolicyConverged, withLabStore } from '../../src/lab/lab.js';
import type { Family } from '../../src/lab/lab-pods.js';
import type { NamespaceObject, PodObject } from '../../src/model/objects.js';
import { privilegedSkip } from '../helpers/env.js';
import { startLab, type TestLab } from '../helpers/lab.js';
import { scenarioArb, type GenContext, type Scenario } from '../helpers/policy-gen.js';
import { probeAgainstEvaluator, setPolicies } from '../helpers/reachability.js';

/**
 * The evaluator and the kernel agree (design §3: "a property test holds them equal"):
 * fast-check generates labels, NetworkPolicies and WeftClusterPolicies over a two-node lab;
 * for each, every pod probes every pod on TCP/UDP 80/81 through the real datapath, and each
 * result must equal the evaluator's verdict for that flow. A failure prints the scenario.
 */
const skip = privilegedSkip();
const NS = ['x', 'y', 'z'];
const PODS = NS.flatMap((n) => ['a', 'b', 'c'].map((p) => `${n}/${p}`));
const RUNS = Number(process.env['WEFT_PROPERTY_RUNS'] ?? 15);

let lab: TestLab;
let ctx: GenContext;

async function applyScenario(s: Scenario): Promise<void> {
  const state = lab.state();
  await withLabStore(state, async (store) => {
    for (const ns of NS) {
      const cur = await store.get<NamespaceObject>('Namespace', ns);
      if (cur) await store.update({ ...cur, metadata: { ...cur.metadata, labels: { ...(s.nsLabels[ns] ?? {}), 'kubernetes.io/metadata.name': ns } } });
    }
    for (const p of PODS) {
      const [namespace, name] = p.split('/') as [string, string];
      const cur = await store.get<PodObject>('Pod', name, namespace);
      if (cur) await store.update({ ...cur, metadata: { ...cur.metadata, labels: s.podLabels[p] ?? {} } });
    }
  });
  await setPolicies(state, s.objects.map((o) => `---\n${JSON.stringify(o)}\n`).join(''));
  await waitPolicyConverged(state);
}

describe('property: evaluator verdict == what the kernel does', { skip, timeout: 20 * 60_000 }, () => {
  before(async () => {
    lab = await startLab({ nodes: 2, backend: 'vxlan', datastore: 'etcd' });
    for (const ns of NS) await lab.ns(ns, { ns });
    for (const [i, p] of PODS.entries()) {
      const [namespace, name] = p.split('/') as [string, string];
      await lab.pod({
        namespace,
        name,
        node: `node-${(i % 2) + 1}`,
        labels: { pod: name },
        ports: [
          { name: 'web', port: namespace === 'z' ? 81 : 80, protocol: 'TCP' },
          { name: namespace === 'z' ? 'serve-80-tcp' : 'serve-81-tcp', port: namespace === 'z' ? 80 : 81, protocol: 'TCP' },
          { name: 'serve-80-udp', port: 80, protocol: 'UDP' },
          { name: 'serve-81-udp', port: 81, protocol: 'UDP' },
        ],
      });
    }
    const blocks = (await Promise.all(lab.state().nodes.map(async (n) => (await getHealth(n.socket)).cluster?.blocks ?? []))).flat();
    ctx = {
      namespaces: NS,
      pods: PODS,
      ranges: [...LAB_CLUSTER_CIDRS, ...blocks],
      podAddresses: Object.fromEntries(lab.state().pods.map((p) => [`${p.namespace}/${p.name}`, p.addresses])),
    };
  });
  after(async () => {
    await lab?.down();
  });

  it(`${RUNS} generated scenarios, every cell probed`, async () => {
    let run = 0;
    let cells = 0;
    let blocked = 0;
    await fc.assert(
      fc.asyncProperty(scenarioArb(ctx), async (s) => {
        const families: Family[] = run++ % 3 === 2 ? [4, 6] : [4];
        await applyScenario(s);
        const r = await probeAgainstEvaluator(lab, families);
        cells += r.cells;
        blocked += r.blocked;
        assert.deepEqual(r.wrong, []);
        // Both outcomes, in every scenario: the generator's anchors guarantee it (policy-gen.ts).
        assert.ok(r.blocked >= 12 * families.length && r.cells - r.blocked >= 4 * families.length, `${r.blocked} of ${r.cells} cells blocked`);
      }),
      { numRuns: RUNS, endOnFailure: true, ...(process.env['WEFT_PROPERTY_SEED'] ? { seed: Number(process.env['WEFT_PROPERTY_SEED']) } : {}) },
    );
    assert.ok(cells >= RUNS * 324, `only ${cells} cells were compared`);
    console.log(`# ${cells} cells compared, ${blocked} blocked`);
  });
});
