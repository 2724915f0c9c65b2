import { randomBytes } from 'node:crypto';
import { ip } from '../kernel/ip.js';
import { pingInNetns } from '../kernel/ping.js';
import { UserError } from '../util/user-error.js';
import { waitPolicyConverged, withLabStore } from './lab.js';
import { nsCreate, nsDelete, podCreate, podDelete } from './lab-pods.js';
import { loadLab, type LabNode, type LabPod } from './lab-state.js';
import { ProbeClient } from './pod-server.js';
import {
  CLEANUP_CHECK, CLIENT_LABELS, inForceCheck, judge, PHASES, phasePolicy, planChecks, SERVER_LABELS, SETUP_CHECK, summarize, targetOf, TEST_LABEL,
  type Check, type CheckResult, type Observation, type Summary, type Topology,
} from './connectivity-plan.js';

/**
 * `weft connectivity test` against a lab: makes its own namespace with a client and a server
 * on one node and a server on another, runs the checks of connectivity-plan.ts phase by phase
 * (no policy, default deny, an allow), and removes everything it made — also when a check,
 * the setup or the caller (an abort) stops it.
 */
const PORTS = { tcp: 80, udp: 53 };

export interface ConnectivityOptions {
  /** How long each probe waits for an answer. */
  timeoutMs: number;
  /** How long a policy may take to be in force on every node. */
  policyWaitMs?: number;
  /** dist/weft.mjs: what the test's pod servers run. */
  cliEntry: string;
  /** Aborted: no further checks start; cleanup still runs. */
  signal?: AbortSignal;
  /** Each result as it is known, in report order. */
  onResult?: (r: CheckResult) => void;
}

export interface ConnectivityReport {
  lab: string;
  namespace: string;
  clientNode: string;
  otherNode?: string;
  podMtu?: number;
  checks: CheckResult[];
  summary: Summary;
  durationMs: number;
  interrupted: boolean;
}

const elapsed = (t0: number): number => Math.round((performance.now() - t0) * 10) / 10;
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The MTU of a pod's eth0, as the kernel has it. */
async function podMtu(pod: LabPod): Promise<number> {
  const links = JSON.parse(await ip(['-json', 'link', 'show', 'dev', 'eth0'], { netns: `/run/netns/${pod.netns}` })) as Array<{ mtu?: number }>;
  const mtu = links[0]?.mtu;
  if (typeof mtu !== 'number') throw new Error(`pod ${pod.namespace}/${pod.name} has no eth0 MTU`);
  return mtu;
}

async function observe(c: Check, client: LabPod, clientNode: LabNode, probes: ProbeClient, timeoutMs: number): Promise<Observation> {
  try {
    if (c.protocol === 'ICMP') {
      const netns = `/run/netns/${c.from === 'client' ? client.netns : clientNode.netns}`;
      const full = c.payloadBytes !== undefined;
      const r = await pingInNetns(netns, c.address, { family: c.family, timeoutMs, count: full ? 2 : 1, ...(full ? { payloadBytes: c.payloadBytes, dontFragment: true } : {}) });
      return { kind: 'ping', ok: r.ok, ...(r.error ? { error: r.error } : {}) };
    }
    const r = await probes.probe({ host: c.address, port: c.port ?? 0, protocol: c.protocol, timeoutMs });
    return { kind: 'probe', ok: r.ok, ...(r.reply !== undefined ? { reply: r.reply } : {}), ...(r.error !== undefined ? { error: r.error } : {}) };
  } catch (err) {
    return { kind: 'error', error: message(err) };
  }
}

export async function runConnectivityTest(labName: string, o: ConnectivityOptions): Promise<ConnectivityReport> {
  const t0 = performance.now();
  const state = loadLab(labName);
  const first = state.nodes[0];
  if (!first) throw new UserError(`lab ${labName} has no nodes`);
  // The client's node, and another for the cross-node checks (absent on a one-node lab).
  const nodeA: LabNode = first;
  const nodeB: LabNode | undefined = state.nodes[1];
  const namespace = `weft-connectivity-${randomBytes(3).toString('hex')}`;
  const results: CheckResult[] = [];
  /** Each check's result so far: a blocked check needs its path to have answered without policy. */
  const statusByName = new Map<string, CheckResult['status']>();
  const emit = (r: CheckResult): void => {
    results.push(r);
    o.onResult?.(r);
  };
  const made: { namespace: boolean; pods: LabPod[] } = { namespace: false, pods: [] };
  let probes: ProbeClient | undefined;
  let mtu: number | undefined;
  try {
    await checkAll();
  } finally {
    probes?.close();
    await cleanup();
  }
  return {
    lab: labName,
    namespace,
    clientNode: nodeA.name,
    ...(nodeB ? { otherNode: nodeB.name } : {}),
    ...(mtu !== undefined ? { podMtu: mtu } : {}),
    checks: results,
    summary: summarize(results),
    durationMs: Math.round(performance.now() - t0),
    interrupted: o.signal?.aborted ?? false,
  };

  /** Setup, then each phase's checks; returns early when setup fails (there is nothing to check). */
  async function checkAll(): Promise<void> {
    // Setup: one result, failed with the step's error if any step fails.
    const ts = performance.now();
    let topology: Topology;
    let client: LabPod;
    try {
      await nsCreate(labName, namespace, { [TEST_LABEL]: 'true' });
      made.namespace = true;
      const pod = async (name: string, node: LabNode, labels: Readonly<Record<string, string>>, serve: boolean): Promise<LabPod> => {
        const p = await podCreate(labName, { namespace, name, node: node.name, labels: { ...labels }, ports: serve ? [{ port: PORTS.tcp, protocol: 'TCP' }, { port: PORTS.udp, protocol: 'UDP' }] : [] }, o.cliEntry);
        made.pods.push(p);
        return p;
      };
      client = await pod('client', nodeA, CLIENT_LABELS, false);
      const same = await pod('echo-same-node', nodeA, SERVER_LABELS, true);
      const other = nodeB ? await pod('echo-other-node', nodeB, SERVER_LABELS, true) : undefined;
      mtu = await podMtu(client);
      const ref = (p: LabPod): { id: string; addresses: string[] } => ({ id: `${p.namespace}/${p.name}`, addresses: p.addresses });
      topology = {
        client: ref(client),
        sameNodeServer: ref(same),
        ...(other ? { otherNodeServer: ref(other) } : {}),
        clientNode: { name: nodeA.name, ips: nodeA.ips },
        ...(nodeB ? { otherNode: { name: nodeB.name, ips: nodeB.ips } } : {}),
        external: { ips: state.external.ips },
        ports: PORTS,
        podMtu: mtu,
      };
      const where = `namespace ${namespace}: client and echo-same-node on ${nodeA.name}${nodeB ? `, echo-other-node on ${nodeB.name}` : ' (one node: no cross-node checks)'}; pod MTU ${mtu}`;
      emit({ name: SETUP_CHECK, status: 'passed', ms: elapsed(ts), target: where });
    } catch (err) {
      emit({ name: SETUP_CHECK, status: 'failed', ms: elapsed(ts), reason: message(err) });
      return;
    }
    const checks = planChecks(topology);
    probes = new ProbeClient(client.control);
    for (const phase of PHASES) {
      const phaseChecks = checks.filter((c) => c.phase === phase);
      const policy = phasePolicy(phase, namespace, PORTS.tcp);
      if (o.signal?.aborted) {
        if (policy) emit({ name: inForceCheck(phase), status: 'skipped', ms: 0, reason: 'interrupted' });
        for (const c of phaseChecks) emit({ name: c.name, status: 'skipped', ms: 0, reason: 'interrupted' });
        continue;
      }
      if (policy) {
        // In force means every node's table was compiled from the datastore's current state:
        // bounded polling of the agents' fingerprints, not a sleep.
        const tp = performance.now();
        try {
          await withLabStore(state, (s) => s.create(policy));
          const ms = await waitPolicyConverged(loadLab(labName), o.policyWaitMs ?? 30_000);
          emit({ name: inForceCheck(phase), status: 'passed', ms: elapsed(tp), target: `NetworkPolicy ${namespace}/${policy.metadata.name} enforced by every node (${ms} ms)` });
        } catch (err) {
          emit({ name: inForceCheck(phase), status: 'failed', ms: elapsed(tp), reason: message(err) });
          for (const c of phaseChecks) emit({ name: c.name, status: 'skipped', ms: 0, reason: `the ${phase} policy is not in force` });
          continue;
        }
      }
      // The checks of a phase are independent: all at once, reported in plan order.
      const done = await Promise.all(
        phaseChecks.map(async (c): Promise<CheckResult> => {
          const tc = performance.now();
          const obs: Observation = c.skip ? { kind: 'error', error: c.skip } : await observe(c, client, nodeA, probes as ProbeClient, o.timeoutMs);
          const v = judge(c, obs, o.timeoutMs, statusByName);
          return { name: c.name, status: v.status, ms: v.status === 'skipped' ? 0 : elapsed(tc), target: targetOf(c), ...(v.reason ? { reason: v.reason } : {}) };
        }),
      );
      for (const r of done) {
        statusByName.set(r.name, r.status);
        emit(r);
      }
    }
  }

  /** Everything the run made goes: pods (CNI DEL, their processes and netns), then the namespace with its policies. */
  async function cleanup(): Promise<void> {
    const tc = performance.now();
    const errors: string[] = [];
    for (const p of [...made.pods].reverse()) {
      await podDelete(labName, { namespace: p.namespace, name: p.name }).catch((err: unknown) => errors.push(`pod ${p.namespace}/${p.name}: ${message(err)}`));
    }
    let policies = 0;
    if (made.namespace) {
      await nsDelete(labName, namespace).then(
        (r) => (policies = r.policies),
        (err: unknown) => errors.push(`namespace ${namespace}: ${message(err)}`),
      );
    }
    const what = `${made.namespace ? `namespace ${namespace}, ` : ''}${made.pods.length} pod${made.pods.length === 1 ? '' : 's'}, ${policies} NetworkPolic${policies === 1 ? 'y' : 'ies'}`;
    emit(errors.length === 0
      ? { name: CLEANUP_CHECK, status: 'passed', ms: elapsed(tc), target: `removed ${what}` }
      : { name: CLEANUP_CHECK, status: 'failed', ms: elapsed(tc), reason: `${errors.join('; ')} (remove by hand: weft lab pod delete / weft lab ns delete ${namespace})` });
  }
}
