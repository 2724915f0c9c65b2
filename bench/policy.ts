/**
 * NetworkPolicy enforcement, three questions:
 *
 *  compile     — the agent's work per sync (objects → snapshot → nftables table) and the kernel's
 *                (`nft -f` of the whole table; of one change), and the table's size, for 10/100/1000
 *                policies over 1000/5000 endpoints; 0 policies is the reference in the same run.
 *  diff        — `weft policy diff` of one added policy over the same synthetic clusters.
 *  label       — a pod label change to enforcement on every node, in a 2-node lab: by the agents'
 *                fingerprints and by the datapath itself (probes flip), for each datastore.
 *  throughput  — pod-to-pod TCP (iperf3, sockperf RR) across nodes with no policies vs 1000 in
 *                force, to a pod none selects and to a pod all 1000 select.
 *
 *   node build/bench/policy.js [--part compile|diff|label|throughput|all] [--runs 5] [--seconds 3] [--changes 10] [--json FILE]
 *     [--profile-dir DIR]  (diff: a V8 CPU profile of each `weft policy diff` run)
 *
 * Needs root (scratch network namespaces and labs; the machine's own network is untouched).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_NODE_FLAGS } from '../src/agent/api.js';
import { getHealth } from '../src/agent/health-client.js';
import { diffScript, fullScript, tableSize } from '../src/nftables/ruleset.js';
import { findNftHelper, NftHelper } from '../src/kernel/nft-helper.js';
import { nftProcessRunner, type NftRunner } from '../src/kernel/nft.js';
import { FileStore } from '../src/datastore/file-store.js';
import type { Store } from '../src/datastore/store.js';
import { labDown, labUp, waitPolicyConverged, withLabStore } from '../src/lab/lab.js';
import { nsCreate, podCreate } from '../src/lab/lab-pods.js';
import { loadLab, type LabState } from '../src/lab/lab-state.js';
import { ProbeClient } from '../src/lab/pod-server.js';
import type { NamespaceObject, NetworkPolicyObject, PodObject } from '../src/model/objects.js';
import { CompileCache, compilePolicy, type LocalAttachment } from '../src/policy/compile.js';
import { flowDiff } from '../src/policy/flow-diff.js';
import { buildSnapshot, snapshotFingerprint, type SnapshotInput } from '../src/policy/from-objects.js';
import { readPolicyInput, readSnapshot } from '../src/policy/load.js';
import { CLI } from '../test/helpers/env.js';
import { arg, median } from './common.js';
import { measure, type Figures, type Pair } from './net-tools.js';

const ms = (t0: number): number => performance.now() - t0;
const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

// ---------------------------------------------------------------- compile

const TIERS = ['web', 'api', 'db', 'cache', 'queue'];
const PER_NODE = 110; // kubelet's default max pods: this node's attachments

/** A synthetic cluster: 50 namespaces, E dual-stack pods (110 per node), P policies of varied shapes. */
function synth(E: number, P: number): { input: SnapshotInput; attachments: LocalAttachment[]; localBlocks: string[] } {
  const namespaces: NamespaceObject[] = Array.from({ length: 50 }, (_, i) => ({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: `ns-${i}`, labels: { team: `t${i % 10}`, env: i % 2 ? 'prod' : 'dev' } },
  }));
  const addr = (i: number): [string, string] => {
    const node = Math.floor(i / PER_NODE);
    const j = (i % PER_NODE) + 2;
    return [`10.${244 + (node >> 8)}.${node & 255}.${j}`, `fd00:10:244:${node.toString(16)}::${j.toString(16)}`];
  };
  const pods: PodObject[] = Array.from({ length: E }, (_, i) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: `ns-${i % 50}`, name: `pod-${i}`, labels: { app: `a${i % 100}`, tier: TIERS[i % 5] as string, version: `v${i % 3}` } },
    spec: { nodeName: `node-${Math.floor(i / PER_NODE)}`, containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 80 + (i % 2), protocol: 'TCP' }, { name: 'metrics', containerPort: 9090 }] }] },
    status: { phase: 'Running', podIPs: addr(i).map((ip) => ({ ip })) },
  }));
  const policies: NetworkPolicyObject[] = Array.from({ length: P }, (_, j) => {
    const spec: NonNullable<NetworkPolicyObject['spec']> = {
      podSelector: j % 10 === 9 ? {} : { matchLabels: { app: `a${j % 100}` } },
      ingress:
        j % 10 === 9
          ? []
          : [
              {
                from: [{ podSelector: { matchLabels: { app: `a${(j * 7) % 100}` } } }, { namespaceSelector: { matchLabels: { team: `t${j % 10}` } }, podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['web', TIERS[j % 5] as string] }] } }],
                ports: [{ port: 80, protocol: 'TCP' }, { port: 'http' }, { port: 8000, endPort: 8100 + (j % 50) }],
              },
            ],
    };
    if (j % 3 === 0) {
      spec.egress = [
        { to: [{ ipBlock: { cidr: '10.0.0.0/8', except: [`10.244.${j % 45}.0/24`] } }], ports: [{ port: 443 }] },
        { to: [{ namespaceSelector: { matchLabels: { env: 'prod' } }, podSelector: { matchLabels: { tier: 'db' } } }], ports: [{ port: 5432 }] },
      ];
      spec.policyTypes = ['Ingress', 'Egress'];
    }
    return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: `ns-${j % 50}`, name: `pol-${j}` }, spec };
  });
  const attachments = pods.slice(0, Math.min(PER_NODE, E)).map((p, i) => ({ hostIf: `wb${i}`, addresses: addr(i), endpoint: `${p.metadata.namespace}/${p.metadata.name}` }));
  return {
    input: { namespaces, pods, weftEndpoints: [], policies, clusterPolicies: [], nodes: [] },
    attachments,
    localBlocks: ['10.244.0.0/24', 'fd00:10:244::/64'],
  };
}

/** Applies a script with both of the agent's runners in turn; ms of each. */
async function applyBoth(runners: { process: NftRunner; helper: NftRunner }, script: string, into: { process: number[]; helper: number[] }): Promise<void> {
  for (const k of ['process', 'helper'] as const) {
    const t0 = performance.now();
    await runners[k].apply(script);
    into[k].push(ms(t0));
  }
}

interface CompileRow {
  policies: number;
  endpoints: number;
  compileMs: number;
  /** `nft -f` process / the agent's nftables helper. */
  fullApplyMs: number;
  fullApplyHelperMs: number;
  changeCompileMs: number;
  changeApplyMs: number;
  changeApplyHelperMs: number;
  changeCommands: number;
  size: ReturnType<typeof tableSize>;
  scriptKiB: number;
}

/** Runs the compile part inside a scratch netns (where the agent's nft runners act on its table), as a child of this process. */
async function compileBench(): Promise<CompileRow[]> {
  const netns = `bpol${randomBytes(2).toString('hex')}`;
  spawnSync('ip', ['netns', 'add', netns]);
  try {
    // With the agent's own node flags: this part measures the agent's work per sync.
    const r = spawnSync('nsenter', [`--net=/run/netns/${netns}`, '--', process.execPath, ...AGENT_NODE_FLAGS, ...process.argv.slice(1), '--in-netns', 'yes'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`the compile part failed in netns ${netns} (exit ${r.status})`);
    return JSON.parse(r.stdout) as CompileRow[];
  } finally {
    spawnSync('ip', ['netns', 'del', netns]);
  }
}

async function compileInNetns(runs: number): Promise<CompileRow[]> {
  const helperPath = findNftHelper();
  if (!helperPath) throw new Error('dist/weft-nft is not built');
  const runners = { process: nftProcessRunner, helper: new NftHelper(helperPath, nftProcessRunner, 60_000) };
  const rows: CompileRow[] = [];
  try {
    const only = arg('sizes', '');
    for (const E of [1000, 5000]) {
      for (const P of [0, 10, 100, 1000]) {
        if (only && !only.split(',').includes(`${P}/${E}`)) continue;
        const s = synth(E, P);
        const build = (input: SnapshotInput, cache?: CompileCache): ReturnType<typeof compilePolicy> => compilePolicy({ snapshot: buildSnapshot(input).snapshot, localBlocks: s.localBlocks, attachments: s.attachments, ...(cache ? { cache } : {}) });
        // A first compile, as a starting agent does: objects it has never converted (a fresh synthetic cluster each run).
        const compile: number[] = [];
        for (let r = 0; r < runs; r++) {
          const fresh = synth(E, P).input;
          const t0 = performance.now();
          build(fresh);
          compile.push(ms(t0));
        }
        const cache = new CompileCache();
        let table = build(s.input, cache);
        const script = fullScript(table);
        const dumpDir = arg('dump-dir', '');
        if (dumpDir) writeFileSync(`${dumpDir}/policy-${P}-${E}.nft`, script);
        const full = { process: [] as number[], helper: [] as number[] };
        for (let r = 0; r < runs; r++) await applyBoth(runners, script, full);
        // One change: a remote pod's label moves it into other selectors (one set element each).
        const changeCompile: number[] = [];
        const phases = { snapshot: [] as number[], compile: [] as number[], diff: [] as number[], fingerprint: [] as number[] };
        const changeApply = { process: [] as number[], helper: [] as number[] };
        let commands = 0;
        for (let r = 0; r < runs; r++) {
          // Policy 1 (namespace ns-1) admits app=a7 of ns-1: a remote ns-1 pod of another app takes that label.
          const victim = E - 49 - 100 * r;
          const pods = s.input.pods.map((p, i) => (i === victim ? { ...p, metadata: { ...p.metadata, labels: { ...p.metadata.labels, app: 'a7' } } } : p));
          build(s.input, cache); // the agent's cache holds the table in force
          const t0 = performance.now();
          const snapshot = buildSnapshot({ ...s.input, pods }).snapshot;
          const t1 = performance.now();
          const next = compilePolicy({ snapshot, localBlocks: s.localBlocks, attachments: s.attachments, cache });
          const t2 = performance.now();
          const d = diffScript(table, next);
          changeCompile.push(ms(t0));
          phases.snapshot.push(t1 - t0);
          phases.compile.push(t2 - t1);
          phases.diff.push(ms(t2));
          // The agent also reports the snapshot's fingerprint after each sync (not in the figure above).
          const t3 = performance.now();
          snapshotFingerprint(snapshot);
          phases.fingerprint.push(ms(t3));
          if (!d) throw new Error('a label change needed a full replace');
          commands = d.length;
          // Each runner applies the change to the table in force before it.
          for (const k of ['process', 'helper'] as const) {
            if (d.length === 0) {
              changeApply[k].push(0);
              continue;
            }
            await runners.process.apply(script);
            const t4 = performance.now();
            await runners[k].apply(d.join('\n') + '\n');
            changeApply[k].push(ms(t4));
          }
        }
        const row = {
          policies: P,
          endpoints: E,
          compileMs: median(compile),
          fullApplyMs: median(full.process),
          fullApplyHelperMs: median(full.helper),
          changeCompileMs: median(changeCompile),
          changeApplyMs: median(changeApply.process),
          changeApplyHelperMs: median(changeApply.helper),
          changeCommands: commands,
          size: tableSize(table),
          scriptKiB: Buffer.byteLength(script) / 1024,
        };
        process.stderr.write(`compile: ${P} policies / ${E} endpoints: ${fmt(row.compileMs)} ms compile, ${fmt(row.fullApplyMs)} ms nft (helper ${fmt(row.fullApplyHelperMs)}); a change: snapshot ${fmt(median(phases.snapshot))} + compile ${fmt(median(phases.compile))} + diff ${fmt(median(phases.diff))} ms (then the fingerprint ${fmt(median(phases.fingerprint))} ms)\n`);
        rows.push(row);
      }
    }
  } finally {
    await runners.helper.close();
  }
  return rows;
}

// ---------------------------------------------------------------- policy diff

interface DiffRow {
  endpoints: number;
  policies: number;
  ms: number;
  changes: number;
  /** The whole command, `weft policy diff --datastore file -f added.yaml`: start, read the store, diff, print. */
  cliMs?: number;
}

const ADDED_ALLOW_ALL: NetworkPolicyObject = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'ns-1', name: 'added-allow-all' }, spec: { podSelector: {}, ingress: [{}] } };

/** The command as a user runs it, over a file datastore holding the synthetic cluster. */
async function diffCommand(input: SnapshotInput, runs: number): Promise<{ ms: number; changes: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-diff-'));
  try {
    const store = FileStore.open(join(dir, 'store'));
    try {
      for (const o of [...input.namespaces, ...input.pods, ...input.policies]) await store.create(o);
    } finally {
      await store.close();
    }
    const manifest = join(dir, 'added.json');
    writeFileSync(manifest, JSON.stringify(ADDED_ALLOW_ALL));
    const times: number[] = [];
    let changes = 0;
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      const profile = arg('profile-dir', '');
      const res = spawnSync(process.execPath, [...(profile ? ['--cpu-prof', '--cpu-prof-dir', profile] : []), CLI, 'policy', 'diff', '--datastore', 'file', '--datastore-dir', join(dir, 'store'), '-f', manifest, '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 });
      times.push(ms(t0));
      if (res.status !== 1) throw new Error(`weft policy diff exited ${res.status}: ${res.stderr.slice(0, 500)}`);
      changes = (JSON.parse(res.stdout) as unknown[]).length;
    }
    return { ms: median(times), changes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `weft policy diff` of one added policy over the synthetic cluster: an allow-all ingress in ns-1
 * (every 50th pod); 5000 endpoints are left out (minutes).
 */
async function diffBench(runs: number): Promise<DiffRow[]> {
  const rows: DiffRow[] = [];
  for (const [E, P] of [[300, 100], [1000, 100], [1000, 1000]] as const) {
    {
      const s = synth(E, P);
      const added = ADDED_ALLOW_ALL;
      const before = buildSnapshot(s.input).snapshot;
      const after = buildSnapshot({ ...s.input, policies: [...s.input.policies, added] }).snapshot;
      const times: number[] = [];
      let changes = 0;
      for (let r = 0; r < runs; r++) {
        // Fresh snapshots each run: the evaluator's per-snapshot memo must not carry over.
        const b = { ...before };
        const a = { ...after };
        const t0 = performance.now();
        changes = flowDiff(b, a).length;
        times.push(ms(t0));
      }
      const cli = E >= 1000 ? await diffCommand(s.input, runs) : undefined;
      if (cli && cli.changes !== changes) throw new Error(`the command reported ${cli.changes} changes, the function ${changes}`);
      process.stderr.write(`diff: ${P} policies / ${E} endpoints: ${fmt(median(times))} ms${cli ? `, the command ${fmt(cli.ms)} ms` : ''}\n`);
      rows.push({ endpoints: E, policies: P, ms: median(times), changes, ...(cli ? { cliMs: cli.ms } : {}) });
    }
  }
  return rows;
}

// ---------------------------------------------------------------- label change

const WEB_POLICY = (ns: string): NetworkPolicyObject => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { namespace: ns, name: 'web-from-clients' },
  spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }] }] },
});

/** Until every agent reports `want`: polled every 2 ms (the lab helper polls at 25 ms and reopens the store). */
async function fingerprintsReach(state: LabState, want: string, t0: number): Promise<number> {
  for (;;) {
    const views = await Promise.all(state.nodes.map((n) => getHealth(n.socket)));
    if (views.every((h) => h.policy?.fingerprint === want)) return ms(t0);
    if (ms(t0) > 30_000) throw new Error('policy did not converge in 30 s');
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Until a probe's outcome is `allowed`: back-to-back attempts, each timed from its start. */
async function probesFlip(client: ProbeClient, host: string, allowed: boolean, t0: number): Promise<number> {
  for (;;) {
    const start = performance.now();
    const r = await client.probe({ host, port: 80, protocol: 'TCP', timeoutMs: allowed ? 15 : 200 });
    if (r.ok === allowed) return start - t0;
    if (ms(t0) > 30_000) throw new Error('the datapath did not change in 30 s');
  }
}

interface LabelFigures {
  datastore: string;
  openFingerprint: number[];
  openDatapath: number[];
  closeFingerprint: number[];
  closeDatapath: number[];
}

async function labelBench(changes: number, datastore: 'file' | 'etcd'): Promise<LabelFigures> {
  const name = `bench-pl${datastore === 'etcd' ? 'e' : 'f'}`;
  await labDown(name).catch(() => undefined);
  const f: LabelFigures = { datastore, openFingerprint: [], openDatapath: [], closeFingerprint: [], closeDatapath: [] };
  try {
    await labUp({ name, nodes: 2, backend: 'vxlan', datastore, cliEntry: CLI });
    await nsCreate(name, 'b', {});
    const ports = [{ port: 80, protocol: 'TCP' as const }];
    const web = await podCreate(name, { namespace: 'b', name: 'web', node: 'node-2', labels: { app: 'web' }, ports }, CLI);
    const cli = await podCreate(name, { namespace: 'b', name: 'client', node: 'node-1', labels: {}, ports }, CLI);
    const state = loadLab(name);
    await withLabStore(state, (s) => s.create(WEB_POLICY('b')));
    await waitPolicyConverged(state);
    const client = new ProbeClient(cli.control);
    try {
      await withLabStore(state, async (store: Store) => {
        for (let i = 0; i < changes; i++) {
          for (const open of [true, false]) {
            const cur = (await store.get<PodObject>('Pod', 'client', 'b')) as PodObject;
            const labels = { ...(cur.metadata.labels ?? {}) };
            if (open) labels['role'] = 'client';
            else delete labels['role'];
            const next = { ...cur, metadata: { ...cur.metadata, labels } };
            // The fingerprint the agents will report, computed from what the store will hold.
            const pods = (await store.list<PodObject>('Pod')).items.map((p) => (p.metadata.name === 'client' ? next : p));
            const want = snapshotFingerprint(buildSnapshot({ ...(await readPolicyInput(store)), pods }).snapshot);
            const t0 = performance.now();
            await store.update(next);
            const [fp, dp] = await Promise.all([fingerprintsReach(state, want, t0), probesFlip(client, web.addresses[0] as string, open, t0)]);
            (open ? f.openFingerprint : f.closeFingerprint).push(fp);
            (open ? f.openDatapath : f.closeDatapath).push(dp);
          }
        }
      });
    } finally {
      client.close();
    }
  } finally {
    await labDown(name).catch(() => undefined);
  }
  process.stderr.write(`label (${datastore}): open ${fmt(median(f.openDatapath))} ms, close ${fmt(median(f.closeDatapath))} ms\n`);
  return f;
}

// ---------------------------------------------------------------- throughput

interface ThroughputFigures {
  none: { free: Figures; guarded: Figures };
  policies: { free: Figures; guarded: Figures };
  syncMs: number;
  size: unknown;
}

const empty = (): Figures => ({ gbps: [], rrP50us: [], rrP99us: [], pingUs: [] });

/**
 * 1000 policies in namespace b, all selecting pod "guarded"; the one that admits the client is
 * the last the per-pod chain reaches (its name sorts last). Pod "free" is selected by none.
 */
function thousandPolicies(): NetworkPolicyObject[] {
  return Array.from({ length: 1000 }, (_, j) => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { namespace: 'b', name: j === 999 ? 'zz-allow-client' : `p-${String(j).padStart(4, '0')}` },
    spec: {
      podSelector: { matchLabels: { app: 'guarded' } },
      ingress: [j === 999 ? { from: [{ podSelector: { matchLabels: { role: 'client' } } }] } : { from: [{ podSelector: { matchLabels: { app: `other-${j}` } } }], ports: [{ port: 80 + (j % 100) }] }],
    },
  }));
}

async function throughputBench(runs: number, seconds: number): Promise<ThroughputFigures> {
  const name = 'bench-ptp';
  await labDown(name).catch(() => undefined);
  const out: ThroughputFigures = { none: { free: empty(), guarded: empty() }, policies: { free: empty(), guarded: empty() }, syncMs: 0, size: undefined };
  try {
    await labUp({ name, nodes: 2, backend: 'vxlan', datastore: 'etcd', cliEntry: CLI });
    await nsCreate(name, 'b', {});
    const ports = [{ port: 80, protocol: 'TCP' as const }];
    const client = await podCreate(name, { namespace: 'b', name: 'client', node: 'node-1', labels: { role: 'client' }, ports }, CLI);
    const free = await podCreate(name, { namespace: 'b', name: 'free', node: 'node-2', labels: { app: 'free' }, ports }, CLI);
    const guarded = await podCreate(name, { namespace: 'b', name: 'guarded', node: 'node-2', labels: { app: 'guarded' }, ports }, CLI);
    const pair = (p: typeof free): Pair => ({ name: p.name, client: client.netns, server: p.netns, serverIp: p.addresses[0] as string });
    const round = async (into: { free: Figures; guarded: Figures }, tag: string): Promise<void> => {
      for (let r = 0; r < runs; r++) {
        process.stderr.write(`throughput ${tag}: run ${r + 1}/${runs}\n`);
        // Alternate the order so drift hits both alike.
        const order = r % 2 ? (['guarded', 'free'] as const) : (['free', 'guarded'] as const);
        for (const k of order) await measure(pair(k === 'free' ? free : guarded), seconds, into[k]);
      }
    };
    await round(out.none, 'no policies');
    const state = loadLab(name);
    await withLabStore(state, async (s) => {
      for (const p of thousandPolicies()) await s.create(p);
    });
    await waitPolicyConverged(state, 120_000);
    const h = await getHealth(state.nodes[1]?.socket as string);
    out.syncMs = h.policy?.lastSyncMs ?? NaN;
    out.size = h.policy?.size;
    const { snapshot } = await withLabStore(state, (s) => readSnapshot(s));
    if (snapshot.policies.length !== 1000) throw new Error(`expected 1000 policies, the store has ${snapshot.policies.length}`);
    await round(out.policies, '1000 policies');
  } finally {
    await labDown(name).catch(() => undefined);
  }
  return out;
}

// ---------------------------------------------------------------- report

async function main(): Promise<void> {
  const part = arg('part', 'all');
  const runs = Number(arg('runs', '5'));
  const seconds = Number(arg('seconds', '3'));
  const changes = Number(arg('changes', '10'));
  const jsonOut = arg('json', '');
  const lines: string[] = [];
  const all: Record<string, unknown> = {};
  if (arg('in-netns', '') === 'yes') {
    process.stdout.write(JSON.stringify(await compileInNetns(runs)));
    return;
  }
  if (part === 'compile' || part === 'all') {
    const rows = await compileBench();
    all['compile'] = rows;
    lines.push(
      `Compile and apply, ${runs} runs, medians. Dual-stack pods, 110 of them on this node (kubelet's max); 0 policies is the reference.`,
      'Compile = datastore objects → snapshot → table, the first time (objects never converted before: an agent starting); full = the whole table applied in a scratch netns,',
      'by an `nft -f -` process / by the agent\'s nftables helper (libnftables in a process that stays); one change = a remote pod relabelled into other selectors:',
      'compile (with the cache the previous compile left, as the agent does) + diff, then the diff applied (process / helper).',
      '',
      '| endpoints | policies | compile ms | full: nft process / helper ms | chains | rules | sets | elements | script KiB | change: compile+diff ms | change: commands | change: nft process / helper ms |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.endpoints} | ${r.policies} | ${fmt(r.compileMs)} | ${fmt(r.fullApplyMs)} / ${fmt(r.fullApplyHelperMs)} | ${r.size.chains} | ${r.size.rules} | ${r.size.sets} | ${r.size.elements} | ${r.scriptKiB.toFixed(0)} | ${fmt(r.changeCompileMs)} | ${r.changeCommands} | ${fmt(r.changeApplyMs)} / ${fmt(r.changeApplyHelperMs)} |`),
      '',
    );
  }
  if (part === 'diff' || part === 'all') {
    const rows = await diffBench(Math.min(runs, 3));
    all['diff'] = rows;
    lines.push(
      `\`weft policy diff\` of an added allow-all ingress in one of 50 namespaces whose pods were isolated (pure: both snapshots built; median of ${Math.min(runs, 3)} runs): every pod pair, both families, all ports, ICMP.`,
      '',
      '"command" is the whole `weft policy diff --datastore file -f added.json --json` as a user runs it (start, read the store, diff, print).',
      '',
      '| endpoints | policies | diff ms | command ms | pod pairs with a change |',
      '|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.endpoints} | ${r.policies} | ${fmt(r.ms)} | ${r.cliMs === undefined ? '—' : fmt(r.cliMs)} | ${r.changes} |`),
      '',
    );
  }
  if (part === 'label' || part === 'all') {
    const figs = [await labelBench(changes, 'etcd'), await labelBench(changes, 'file')];
    all['label'] = figs;
    const cell = (xs: number[]): string => `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;
    lines.push(
      `Pod label change → enforcement on both nodes of a 2-node lab, ${changes} changes each way, median (min–max) ms from the datastore write.`,
      '"agents" = every agent reports the new fingerprint; "datapath" = the first probe (client on node-1 → server on node-2, TCP) with the new outcome.',
      '',
      '| datastore | label added (opens): agents | datapath | label removed (closes): agents | datapath |',
      '|---|---|---|---|---|',
      ...figs.map((f) => `| ${f.datastore} | ${cell(f.openFingerprint)} | ${cell(f.openDatapath)} | ${cell(f.closeFingerprint)} | ${cell(f.closeDatapath)} |`),
      '',
    );
  }
  if (part === 'throughput' || part === 'all') {
    const t = await throughputBench(runs, seconds);
    all['throughput'] = t;
    const row = (label: string, f: Figures, base: Figures): string =>
      `| ${label} | ${median(f.gbps).toFixed(2)} | ${Math.min(...f.gbps).toFixed(1)}–${Math.max(...f.gbps).toFixed(1)} | ${(median(f.gbps) / median(base.gbps)).toFixed(2)}× | ${median(f.rrP50us).toFixed(1)} | ${median(f.rrP99us).toFixed(1)} |`;
    lines.push(
      `Pod to pod across nodes (vxlan), IPv4, ${runs} runs × ${seconds} s, medians; allowed connections pass on their ct mark until the table changes.`,
      `With 1000 policies the server node's table: ${JSON.stringify(t.size)}; its last sync took ${t.syncMs} ms.`,
      '',
      '| path | TCP Gbit/s | min–max | vs no policies | TCP RR p50 µs | p99 µs |',
      '|---|---|---|---|---|---|',
      row('no policies → "free"', t.none.free, t.none.free),
      row('no policies → "guarded"', t.none.guarded, t.none.guarded),
      row('1000 policies, none selects "free"', t.policies.free, t.none.free),
      row('1000 policies, all select "guarded" (allowed by the last)', t.policies.guarded, t.none.guarded),
      '',
    );
  }
  process.stdout.write(lines.join('\n'));
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(all, null, 2));
}

void main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exitCode = 1;
});
