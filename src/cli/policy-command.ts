import type { Command } from 'commander';
import type { Store } from '../datastore/store.js';
import { labMatrix, type Matrix } from '../lab/lab-pods.js';
import { resolveLabName } from '../lab/lab-state.js';
import type { Protocol as LabProtocol } from '../lab/pod-server.js';
import type { PodObject } from '../model/objects.js';
import { evaluate, type FlowProtocol } from '../policy/evaluate.js';
import { evaluatedMatrix, parseFlowSpec, resolveEnds, traceLines, type EvaluatedCell, type Family, type FlowCase } from '../policy/explain.js';
import { diffLines, flowDiff } from '../policy/flow-diff.js';
import { buildSnapshot, type SnapshotInput } from '../policy/from-objects.js';
import type { Snapshot } from '../policy/ir.js';
import { readPolicyInput } from '../policy/load.js';
import { withChanges } from '../policy/what-if.js';
import { UserError } from '../util/user-error.js';
import { readManifests, storeFlags, withStore, type StoreFlags } from './apply-command.js';
import { gridLines, legendLines, parseFamilies, parsePorts } from './grid.js';
import { compareText } from '../util/compare-text.js';

/**
 * `weft policy trace|matrix|diff`: what the policies in a datastore (a lab's by default) mean,
 * from the same evaluator the property test holds equal to the kernel.
 */
const out = (s: string): void => {
  process.stdout.write(s + '\n');
};
const json = (v: unknown): void => out(JSON.stringify(v, null, 2));

async function load(o: StoreFlags): Promise<{ input: SnapshotInput; snapshot: Snapshot }> {
  const input = await withStore(o, (s: Store) => readPolicyInput(s));
  const { snapshot, problems } = buildSnapshot(input);
  for (const p of [...input.rejected, ...problems]) process.stderr.write(`weft: warning: ${p}\n`);
  return { input, snapshot };
}

function parseProtocols(v: string): FlowProtocol[] {
  return v.split(',').map((p) => {
    const u = p.trim().toUpperCase();
    if (u !== 'TCP' && u !== 'UDP' && u !== 'SCTP' && u !== 'ICMP') throw new UserError(`--protocols ${v}: expected tcp, udp, sctp and/or icmp, comma-separated`);
    return u;
  });
}

/** The cases of a matrix: given ports × protocols, or the ports the pods declare. */
function matrixCases(pods: PodObject[], protocols: FlowProtocol[], families: Family[], ports?: number[]): FlowCase[] {
  const pairs: Array<{ protocol: FlowProtocol; port?: number }> = [];
  if (ports) {
    for (const port of ports) for (const protocol of protocols) if (protocol !== 'ICMP') pairs.push({ protocol, port });
  } else {
    const declared = new Map<string, { protocol: FlowProtocol; port: number }>();
    for (const p of pods) {
      for (const c of p.spec?.containers ?? []) {
        for (const cp of c.ports ?? []) {
          const protocol = (cp.protocol ?? 'TCP') as FlowProtocol;
          if (protocols.includes(protocol)) declared.set(`${cp.containerPort}/${protocol}`, { protocol, port: cp.containerPort });
        }
      }
    }
    pairs.push(...[...declared.values()].sort((a, b) => a.port - b.port || compareText(a.protocol, b.protocol)));
  }
  if (protocols.includes('ICMP')) pairs.push({ protocol: 'ICMP' });
  if (pairs.length === 0) throw new UserError('no pod declares a container port of those protocols: name ports with --ports 80,443');
  return pairs.flatMap((p) => families.map((family) => ({ ...p, family })));
}

const caseTitle = (c: FlowCase): string => `${c.protocol === 'ICMP' ? 'ICMP' : `${c.protocol}/${c.port}`} over IPv${c.family}`;
const sameCase = (a: { protocol: string; port?: number; family: number }, b: FlowCase): boolean => a.protocol === b.protocol && a.port === b.port && a.family === b.family;

/** A probe that got an answer — even "nothing listens here" — was let through by policy. */
const reached = (r: Matrix['results'][number]): boolean => r.ok || r.error === 'ECONNREFUSED';

/** The evaluated grids; with `differ` (cells a probe contradicted) they are marked "!". */
export function policyMatrixLines(names: string[], cases: FlowCase[], cells: EvaluatedCell[], differ?: EvaluatedCell[]): string[] {
  if (names.length === 0) return ['no pods with addresses in the datastore'];
  const lines = legendLines(names);
  for (const c of cases) {
    lines.push(
      ...gridLines(names, `${caseTitle(c)} — row: from, column: to; "." allowed, "X" blocked${differ ? ', "!" the datapath disagrees' : ''}`, (from, to) => {
        const cell = cells.find((x) => x.from === from && x.to === to && sameCase(x, c));
        if (!cell) return ' ';
        return differ?.includes(cell) ? '!' : cell.allowed ? '.' : 'X';
      }),
    );
  }
  const allowed = cells.filter((c) => c.allowed).length;
  lines.push('', `${allowed} of ${cells.length} flows allowed by policy${differ ? `; probed through the datapath: ${differ.length === 0 ? 'all agree' : `${differ.length} disagree`}` : ''}.`);
  for (const d of differ ?? []) lines.push(`  ! ${d.from} -> ${d.to} ${caseTitle(d)}: policy ${d.allowed ? 'allows' : 'blocks'}, the datapath ${d.allowed ? 'blocked' : 'let it through'}`);
  return lines;
}

/**
 * Each cell probed through a lab's datapath: true where the packet got through (an answer, or
 * "nothing listens"), false where it did not, null where the lab has no such probe.
 */
export async function probeCells(labName: string, cells: EvaluatedCell[], cases: FlowCase[], timeoutMs: number): Promise<Array<boolean | null>> {
  const ports = [...new Set(cases.filter((c) => c.port !== undefined).map((c) => c.port as number))];
  const protocols = [...new Set(cases.map((c) => c.protocol))].filter((p): p is LabProtocol => p === 'TCP' || p === 'UDP');
  const families = [...new Set(cases.map((c) => c.family))];
  const m = await labMatrix(labName, { ports, protocols, families, timeoutMs });
  const index = new Map(m.results.map((r) => [`${r.from}|${r.to}|${r.protocol}|${r.port}|${r.family}`, r]));
  return cells.map((c) => {
    const r = index.get(`${c.from}|${c.to}|${c.protocol}|${c.port}|${c.family}`);
    return r ? reached(r) : null;
  });
}

export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('what the NetworkPolicies and WeftClusterPolicies in force mean: trace a flow, the matrix, the effect of a change');

  storeFlags(
    policy
      .command('trace')
      .description('the verdict for one flow and why: which policies isolate each end, which rule decided, or why none did')
      .argument('<src>', 'NAMESPACE/POD, a node name, or an IP address')
      .argument('<dst>', 'NAMESPACE/POD, a node name, or an IP address')
      .argument('<port/proto>', 'e.g. 80/TCP, 53/UDP, or ICMP'),
  )
    .option('--family <4|6>', 'which addresses of pods and nodes (default: IPv4 where both ends have it)')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExit status: 0 allowed, 1 blocked, 2 bad arguments.')
    .action(async (src: string, dst: string, pp: string, o: StoreFlags & { family?: string; json?: boolean }) => {
      const spec = parseFlowSpec(pp);
      const fam = o.family ? parseFamilies(o.family) : undefined;
      if (fam && fam.length !== 1) throw new UserError('--family: 4 or 6 for a trace');
      const { snapshot } = await load(o);
      const ends = resolveEnds(snapshot, src, dst, fam?.[0]);
      const flow = { src: ends.src, dst: ends.dst, ...spec };
      const v = evaluate(snapshot, flow);
      if (o.json) json({ src: ends.src.address, dst: ends.dst.address, protocol: spec.protocol, port: spec.port, ...v });
      else for (const l of traceLines(snapshot, flow, v)) out(l);
      process.exitCode = v.allowed ? 0 : 1;
    });

  storeFlags(policy.command('matrix').description('which pod may reach which, by the policies in force (in a lab, --probe also measures it)'))
    .option('--ports <list>', 'ports, each with each protocol (default: the container ports pods declare)')
    .option('--protocols <list>', 'tcp, udp, sctp, icmp', 'tcp,udp')
    .option('--family <4|6|both>', 'address family', '4')
    .option('--namespace <list>', 'only pods of these namespaces, comma-separated')
    .option('--probe', 'in a lab: probe every cell through the real datapath and mark where it differs')
    .option('--timeout <ms>', 'how long a probe waits (--probe)', '1000')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nCells: "." allowed, "X" blocked; with --probe "!" where the datapath disagrees (exit status 1).')
    .action(async (o: StoreFlags & { ports?: string; protocols: string; family: string; namespace?: string; probe?: boolean; timeout: string; json?: boolean }) => {
      const protocols = parseProtocols(o.protocols);
      const families = parseFamilies(o.family);
      const namespaces = o.namespace?.split(',').map((n) => n.trim());
      if (o.probe && o.datastore) throw new UserError('--probe needs a lab (its pods answer probes); it cannot be combined with --datastore');
      if (o.probe && protocols.some((p) => p !== 'TCP' && p !== 'UDP')) throw new UserError('--probe: lab pods answer TCP and UDP only; use --protocols tcp,udp');
      const { input, snapshot } = await load(o);
      const pods = snapshot.endpoints.filter((e) => !namespaces || namespaces.includes(e.namespace));
      const cases = matrixCases(input.pods, protocols, families, o.ports !== undefined ? parsePorts(o.ports) : undefined);
      const cells = evaluatedMatrix(snapshot, cases, pods);
      const names = pods.map((e) => `${e.namespace}/${e.name}`);
      const probed = o.probe ? await probeCells(resolveLabName(o.lab), cells, cases, Number(o.timeout)) : undefined;
      const differ = probed ? cells.filter((c, i) => probed[i] !== null && probed[i] !== c.allowed) : undefined;
      if (o.json) json({ pods: names, cases, cells: cells.map((c, i) => ({ ...c, ...(probed ? { probed: probed[i] } : {}) })) });
      else for (const l of policyMatrixLines(names, cases, cells, differ)) out(l);
      if (differ && differ.length > 0) process.exitCode = 1;
    });

  storeFlags(policy.command('diff').description('which pod-to-pod flows applying (or deleting) a manifest would open or close — nothing is changed'))
    .requiredOption('-f, --filename <file>', 'the manifest ("-" for stdin)')
    .option('--delete', 'the effect of `weft delete -f FILE` instead of apply')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nEvery port of TCP, UDP and SCTP and ICMP is compared, IPv4 and IPv6.\nExit status: 0 no flow changes, 1 some do (like `kubectl diff`), 2 bad arguments or an invalid manifest.')
    .action(async (o: StoreFlags & { filename: string; delete?: boolean; json?: boolean }) => {
      const objs = readManifests(o.filename);
      const { input } = await load(o);
      const next = withChanges(input, objs, o.delete ? 'delete' : 'apply');
      for (const x of next.ignored) process.stderr.write(`weft: note: ${x.kind} ${x.metadata.name} does not affect policy; left out\n`);
      const before = buildSnapshot(input).snapshot;
      const after = buildSnapshot(next.input);
      for (const p of after.problems) process.stderr.write(`weft: warning: after the change, ${p}\n`);
      const changes = flowDiff(before, after.snapshot);
      if (o.json) json(changes);
      else for (const l of diffLines(changes)) out(l);
      process.exitCode = changes.length > 0 ? 1 : 0;
    });
}
