import type { Command } from 'commander';
import { cliEntry } from '../util/built-file.js';
import { labDown, labStatus, labUp, waitPolicyConverged, withLabStore } from '../lab/lab.js';
import { labMatrix, labProbe, nsCreate, podCreate } from '../lab/lab-pods.js';
import { listLabs, loadLab } from '../lab/lab-state.js';
import { parseManifests } from '../model/manifest.js';
import { evaluate } from '../policy/evaluate.js';
import { evaluatedMatrix, resolveEnds, traceLines, type FlowCase } from '../policy/explain.js';
import { diffLines, flowDiff } from '../policy/flow-diff.js';
import { buildSnapshot } from '../policy/from-objects.js';
import { readPolicyInput, readSnapshot } from '../policy/load.js';
import { withChanges } from '../policy/what-if.js';
import { policyMatrixLines, probeCells } from './policy-command.js';
import { UserError } from '../util/user-error.js';
import { printMatrix } from './lab-command.js';

/**
 * `weft demo`: a 3-node cluster in network namespaces on this machine (its own network is never
 * touched), pods in two namespaces on different nodes, who can reach whom, then the classic
 * frontend/api/db policy with its diff, matrix and the trace of the blocked flow — then everything
 * is removed again (unless --keep).
 */
let stdoutClosed = false;
let aborted = false;
const print = (s = ''): void => {
  if (!stdoutClosed) process.stdout.write(s + '\n');
};
const say = (s = ''): void => {
  if (!aborted) print(s);
};

export async function runDemo(cliEntry: string, opts: { keep: boolean; backend: 'vxlan' | 'host-gw' }): Promise<number> {
  if (process.getuid?.() !== 0) throw new UserError('the demo creates network namespaces and must run as root');
  const name = 'demo';
  if (listLabs().includes(name)) throw new UserError('a lab named "demo" is running already: `weft lab down --name demo` first');
  // A closed stdout (piped into `head`) only stops the printing; a signal jumps to the cleanup.
  process.stdout.on('error', () => {
    stdoutClosed = true;
  });
  let interrupted: (() => void) | undefined;
  const interruption = new Promise<number>((resolve) => {
    interrupted = () => resolve(130);
  });
  const onSignal = (): void => {
    aborted = true;
    print('\nInterrupted.');
    interrupted?.();
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, onSignal);
  let up = false;
  let code = 1;
  try {
    code = await Promise.race([
      demo(name, cliEntry, opts.backend, () => {
        up = true;
      }),
      interruption,
    ]);
  } catch (err) {
    print(`\nThe demo failed: ${(err as Error).message}`);
    code = 1;
  } finally {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, onSignal);
    if (up && (!opts.keep || aborted || code !== 0)) {
      print(aborted ? 'Cleaning up (agents, namespaces, files) …' : '\n8. Cleaning up (agents, namespaces, files) …');
      await labDown(name).catch((err: Error) => print(`   cleanup failed: ${err.message}`));
      print('   done: nothing of the demo is left on this machine.');
    } else if (up) {
      print('\nThe lab "demo" keeps running. Try: weft policy matrix --probe · weft policy trace shop/api data/db 80/TCP · weft lab probe shop/frontend data/db 80/TCP · weft lab down --name demo');
    }
  }
  return code;
}

const POLICIES = `# Namespace rules: db admits only api pods of team=shop namespaces; api only frontend.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-api, namespace: data}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: shop}}
      podSelector: {matchLabels: {app: api}}
    ports: [{port: http}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-from-frontend, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{port: 80, protocol: TCP}]
---
# A cluster-wide guard, before any namespace's rules: frontends never talk to databases.
apiVersion: weft.io/v1
kind: WeftClusterPolicy
metadata: {name: no-frontend-to-db}
spec:
  priority: 10
  subject: {pods: {podSelector: {matchLabels: {tier: frontend}}}}
  egress:
  - {name: never-db, action: Deny, to: [{pods: {podSelector: {matchLabels: {tier: db}}}}]}
`;

/** Who may reach whom once the policies are in force (a pod always reaches itself). */
const EXPECTED: Record<string, string[]> = {
  'shop/frontend': ['shop/frontend', 'shop/api'],
  'shop/api': ['shop/frontend', 'shop/api', 'data/db'],
  'data/db': ['shop/frontend', 'data/db'],
};

async function demo(name: string, cliEntry: string, backend: 'vxlan' | 'host-gw', started: () => void): Promise<number> {
  say('Weft demo: a small Kubernetes-style cluster, built from network namespaces on this machine.');
  say('Nothing here touches the machine\'s own network; everything is removed at the end.\n');
  say(`1. Three nodes on one underlay network, each running its own weft agent (${backend} backend, file datastore):`);
  const t0 = Date.now();
  started();
  await labUp({ name, nodes: 3, backend, datastore: 'file', cliEntry, progress: (l) => say(`   - ${l}`) });
  const st = await labStatus(name);
  for (const n of st.nodes) say(`   ${n.name}: underlay ${n.ips[0]}, leased pod blocks ${n.blocks.join(' and ')}`);
  say(`   (up in ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);

  say('2. Two namespaces, "shop" and "data", and three pods, one per node: frontend, api and db.');
  say('   Each pod is a network namespace attached by the real weft CNI plugin, serving TCP 80 ("http"):');
  await nsCreate(name, 'shop', { team: 'shop' });
  await nsCreate(name, 'data', { team: 'data' });
  const ports = [{ name: 'http', port: 80, protocol: 'TCP' as const }];
  for (const [ns, pod, node, tier] of [
    ['shop', 'frontend', 'node-1', 'frontend'],
    ['shop', 'api', 'node-2', 'api'],
    ['data', 'db', 'node-3', 'db'],
  ] as const) {
    const p = await podCreate(name, { namespace: ns, name: pod, node, labels: { app: pod, tier }, ports }, cliEntry);
    say(`   ${`${ns}/${pod}`.padEnd(14)} on ${node}: ${p.addresses.join(', ')}`);
  }

  say('\n3. Who can reach whom: every pod probes every pod (itself too) on TCP 80, IPv4 and IPv6.');
  say('   Pods on different nodes go through the overlay; without policies nothing is blocked.');
  const m = await labMatrix(name, { protocols: ['TCP'], families: [4, 6], timeoutMs: 1500 });
  if (!aborted) printMatrix(m);
  const open = m.results.filter((r) => r.ok).length;
  say(`\n   ${open} of ${m.results.length} probes answered.`);
  const p1 = await labProbe(name, { namespace: 'shop', name: 'frontend' }, 'data/db', 80, 'TCP', 4, 2000);
  say(`   A probe answers with the address it came from — pod to pod, it survives: shop/frontend -> data/db: ${p1.ok ? `"${p1.reply}"` : `failed (${p1.error})`}`);
  const p2 = await labProbe(name, { namespace: 'shop', name: 'frontend' }, 'external', 80, 'TCP', 4, 2000);
  say(`   To the outside pods are masqueraded — the external host ${p2.address} sees the node: ${p2.ok ? `"${p2.reply}"` : `failed (${p2.error})`}`);

  say('\n4. The classic case: frontend may reach api, api may reach db, frontend may not reach db.');
  say('   Two NetworkPolicies, and a WeftClusterPolicy that holds whatever namespaces say:\n');
  for (const l of POLICIES.trimEnd().split('\n')) say(`   | ${l}`);
  const objs = parseManifests(POLICIES, 'demo policies');
  const before = await withLabStore(loadLab(name), (s) => readPolicyInput(s));
  say('\n   `weft policy diff -f policies.yaml` — what they would change, before anything is applied:');
  const changes = flowDiff(buildSnapshot(before).snapshot, buildSnapshot(withChanges(before, objs, 'apply').input).snapshot);
  for (const l of diffLines(changes)) say(`   ${l}`);

  say('\n5. `weft apply -f policies.yaml`: each agent compiles them into its node\'s nftables table.');
  await withLabStore(loadLab(name), async (s) => {
    for (const o of objs) await s.create(o);
  });
  const ms = await waitPolicyConverged(loadLab(name));
  say(`   policy in force on ${st.nodes.length} nodes ${ms} ms after the apply.`);

  say('\n6. `weft policy matrix --probe`: the verdicts policy gives, each cell also probed through the nodes\' real nftables:');
  const { snapshot } = await withLabStore(loadLab(name), (s) => readSnapshot(s));
  const cases: FlowCase[] = [{ protocol: 'TCP', port: 80, family: 4 }, { protocol: 'TCP', port: 80, family: 6 }];
  const cells = evaluatedMatrix(snapshot, cases);
  const probed = await probeCells(name, cells, cases, 1500);
  const differ = cells.filter((c, i) => probed[i] !== c.allowed);
  const names = snapshot.endpoints.map((e) => `${e.namespace}/${e.name}`);
  if (!aborted) for (const l of policyMatrixLines(names, cases, cells, differ)) print(`   ${l}`);
  const asExpected = cells.every((c) => c.allowed === (EXPECTED[c.from] ?? []).includes(c.to));
  say(`   ${asExpected ? 'Exactly the intended matrix.' : 'NOT the intended matrix: see above.'}`);

  say('\n7. `weft policy trace shop/frontend data/db 80/TCP`: why is the blocked flow blocked?');
  const ends = resolveEnds(snapshot, 'shop/frontend', 'data/db', 4);
  const flow = { ...ends, protocol: 'TCP' as const, port: 80 };
  const verdict = evaluate(snapshot, flow);
  for (const l of traceLines(snapshot, flow, verdict)) say(`   ${l}`);
  say('\n   Every command here has a `weft lab …` / `weft policy …` equivalent with --json for scripts.');
  return open === m.results.length && p1.ok && p2.ok && differ.length === 0 && asExpected && !verdict.allowed ? 0 : 1;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('a 3-node cluster in network namespaces: pods, who reaches whom, network policy with a trace, then cleaned up')
    .option('--keep', 'leave the lab running afterwards (remove it with `weft lab down --name demo`)')
    .option('--backend <type>', 'vxlan or host-gw', 'vxlan')
    .action(async (o: { keep?: boolean; backend: string }) => {
      if (o.backend !== 'vxlan' && o.backend !== 'host-gw') throw new UserError(`--backend ${o.backend}: expected vxlan or host-gw`);
      process.exitCode = await runDemo(cliEntry(), { keep: o.keep === true, backend: o.backend });
    });
}
