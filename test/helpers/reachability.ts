import { withLabStore, waitPolicyConverged } from '../../src/lab/lab.js';
import type { Family } from '../../src/lab/lab-pods.js';
import { evaluate, hostOf } from '../../src/policy/evaluate.js';
import { readSnapshot } from '../../src/policy/load.js';
import type { TestLab } from './lab.js';
import type { Matrix } from '../../src/lab/lab-pods.js';
import { labProbe } from '../../src/lab/lab-pods.js';
import type { LabState } from '../../src/lab/lab-state.js';
import type { Protocol } from '../../src/lab/pod-server.js';
import { parseManifests } from '../../src/model/manifest.js';
import type { KObject } from '../../src/model/objects.js';

/**
 * Expected reachability written the way upstream's netpol e2e writes it: start from "all
 * allowed", then state what a case blocks or allows — so every case carries the full
 * expected matrix, independent of Weft's evaluator.
 */
export class Reach {
  private readonly grid = new Map<string, boolean>();

  constructor(readonly pods: string[]) {
    for (const a of pods) for (const b of pods) this.grid.set(`${a}>${b}`, true);
  }

  private select(pattern: string): string[] {
    const [ns, name] = pattern.split('/');
    return this.pods.filter((p) => {
      const [pn, pp] = p.split('/');
      return pattern === '*' || ((ns === '*' || ns === pn) && (name === '*' || name === pp));
    });
  }

  /** Every pod matching `from` to every pod matching `to` ("x/a", "x/*", "*\/a", "*"). */
  set(from: string, to: string, allowed: boolean): this {
    for (const a of this.select(from)) for (const b of this.select(to)) this.grid.set(`${a}>${b}`, allowed);
    return this;
  }

  /** A pod talking to itself never leaves it: no policy blocks that. */
  loopback(): this {
    for (const p of this.pods) this.grid.set(`${p}>${p}`, true);
    return this;
  }

  get(from: string, to: string): boolean {
    return this.grid.get(`${from}>${to}`) ?? false;
  }
}

export interface Mismatch {
  from: string;
  to: string;
  case: string;
  expected: boolean;
  probed: boolean;
  evaluated?: boolean;
}

export function renderGrid(pods: string[], cell: (from: string, to: string) => string): string {
  const head = `        ${pods.map((p) => p.padStart(4)).join(' ')}`;
  return [head, ...pods.map((a) => `  ${a.padEnd(5)} ${pods.map((b) => cell(a, b).padStart(4)).join(' ')}`)].join('\n');
}

/**
 * Probed cells that are blocked where allowed was expected get one more, slower try: a
 * loaded CI machine can miss a 1 s deadline, but it can never make a blocked flow pass.
 */
export async function confirmBlocked(labName: string, matrix: Matrix, expected: (from: string, to: string, c: Matrix['cases'][number]) => boolean): Promise<Matrix> {
  const retried = await Promise.all(
    matrix.results.map(async (r) => {
      if (r.ok || !expected(r.from, r.to, { port: r.port, protocol: r.protocol, family: r.family })) return r;
      const [namespace, name] = r.from.split('/');
      const again = await labProbe(labName, { namespace: namespace as string, name: name as string }, r.address, r.port, r.protocol as Protocol, r.family, 4000);
      return { ...r, ok: again.ok };
    }),
  );
  return { ...matrix, results: retried };
}

/** Makes the lab's policies exactly these (deleting others), then waits until every node enforces them. */
export async function setPolicies(state: LabState, yaml: string): Promise<void> {
  const objs: KObject[] = yaml.trim() ? parseManifests(yaml, 'case') : [];
  await withLabStore(state, async (store) => {
    for (const kind of ['NetworkPolicy', 'WeftClusterPolicy']) {
      const want = new Set(objs.filter((o) => o.kind === kind).map((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`));
      for (const cur of (await store.list(kind)).items) {
        if (!want.has(`${cur.metadata.namespace ?? ''}/${cur.metadata.name}`)) await store.delete(kind, cur.metadata.name, cur.metadata.namespace);
      }
    }
    for (const o of objs) {
      const cur = await store.get(o.kind, o.metadata.name, o.metadata.namespace);
      if (cur) await store.update({ ...o, metadata: { ...o.metadata, resourceVersion: cur.metadata.resourceVersion as string } });
      else await store.create(o);
    }
  });
  await waitPolicyConverged(state);
}

/**
 * Every pod probes every pod (TCP/UDP 80/81) through the real datapath, and each result is held
 * to the evaluator's verdict on what the lab's datastore holds (admitted, as the agents see it).
 * Returns the cells that disagree (empty when the kernel does what the policies say) and counts.
 */
export async function probeAgainstEvaluator(lab: TestLab, families: Family[] = [4]): Promise<{ wrong: string[]; cells: number; blocked: number }> {
  const { snapshot } = await withLabStore(lab.state(), (st) => readSnapshot(st));
  const pods = lab.state().pods;
  const verdict = (from: string, address: string, port: number, protocol: 'TCP' | 'UDP'): boolean => {
    const src = pods.find((p) => `${p.namespace}/${p.name}` === from);
    const fam = address.includes(':') ? 6 : 4;
    const srcAddr = src?.addresses.find((a) => a.includes(':') === (fam === 6)) as string;
    return evaluate(snapshot, { src: hostOf(snapshot, srcAddr), dst: hostOf(snapshot, address), protocol, port }).allowed;
  };
  const m = await lab.matrix({ ports: [80, 81], protocols: ['TCP', 'UDP'], families, timeoutMs: 1000 });
  const addrOf = new Map(m.results.map((r) => [`${r.to}|${r.family}`, r.address]));
  const probed = await confirmBlocked(lab.name, m, (from, to, c) => verdict(from, addrOf.get(`${to}|${c.family}`) as string, c.port, c.protocol as 'TCP' | 'UDP'));
  const wrong = probed.results
    .filter((r) => r.ok !== verdict(r.from, r.address, r.port, r.protocol as 'TCP' | 'UDP'))
    .map((r) => `${r.from} → ${r.to} ${r.protocol}/${r.port} IPv${r.family}: kernel ${r.ok ? 'allowed' : 'blocked'}, evaluator ${r.ok ? 'blocked' : 'allowed'}`);
  return { wrong, cells: probed.results.length, blocked: probed.results.filter((r) => !r.ok).length };
}

