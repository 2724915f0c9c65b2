/**
 * What the UI's JSON answers hold, built without I/O from a lab's status and its policy snapshot:
 * the topology (nodes; pods grouped by namespace; the policies in force), the policy matrix for
 * one port and protocol, and the trace of one flow in `weft policy trace`'s words — and the
 * query parameters of those requests, checked.
 */
import type { LabStatus } from '../lab/lab.js';
import type { FlowRecord } from '../observe/flow.js';
import { evaluate, type FlowProtocol } from '../policy/evaluate.js';
import { evaluatedMatrix, parseFlowSpec, resolveEnds, traceLines, type Family } from '../policy/explain.js';
import { endpointKey, type Snapshot } from '../policy/ir.js';
import { compareText } from '../util/compare-text.js';
import { UserError } from '../util/user-error.js';

export interface TopologyNode {
  name: string;
  ips: string[];
  agent: 'running' | 'down';
  blocks: string[];
  peers: string[];
  mtu?: number;
  problems: string[];
  datastoreConnected: boolean;
}

export interface TopologyPod {
  name: string;
  node?: string;
  labels: Record<string, string>;
  addresses: string[];
}

export interface Topology {
  lab: string;
  backend: string;
  encryption: string;
  datastore: string;
  nodes: TopologyNode[];
  namespaces: Array<{ name: string; labels: Record<string, string>; pods: TopologyPod[] }>;
  /** "NetworkPolicy ns/name" or "WeftClusterPolicy name", sorted. */
  policies: string[];
  /** What the snapshot left out, or could not read. */
  problems: string[];
}

/** The lab's nodes from its status; namespaces, pods and policies from the datastore's snapshot. */
export function topologyView(status: LabStatus, snapshot: Snapshot, problems: string[] = []): Topology {
  const byNs = new Map<string, TopologyPod[]>();
  for (const ns of snapshot.namespaces.keys()) byNs.set(ns, []);
  for (const e of snapshot.endpoints) {
    const list = byNs.get(e.namespace) ?? [];
    list.push({ name: e.name, ...(e.node !== undefined ? { node: e.node } : {}), labels: e.labels, addresses: e.addresses });
    byNs.set(e.namespace, list);
  }
  const namespaces = [...byNs.entries()]
    .sort(([a], [b]) => compareText(a, b))
    .map(([name, pods]) => ({ name, labels: snapshot.namespaces.get(name) ?? {}, pods: pods.sort((a, b) => compareText(a.name, b.name)) }));
  const policies = [...snapshot.policies.map((p) => `NetworkPolicy ${p.namespace}/${p.name}`), ...snapshot.clusterPolicies.map((c) => `WeftClusterPolicy ${c.name}`)].sort(compareText);
  return {
    lab: status.name,
    backend: status.backend,
    encryption: status.encryption,
    datastore: status.datastore,
    nodes: status.nodes.map((n) => ({
      name: n.name,
      ips: n.ips,
      agent: n.agent,
      blocks: n.blocks,
      peers: n.peers,
      ...(n.mtu !== undefined ? { mtu: n.mtu } : {}),
      problems: n.problems,
      datastoreConnected: n.datastoreConnected,
    })),
    namespaces,
    policies,
    problems,
  };
}

export interface MatrixQuery {
  protocol: FlowProtocol;
  port?: number;
  family: Family;
}

export interface MatrixView extends MatrixQuery {
  pods: string[];
  /** cells[i][j]: from pods[i] to pods[j]; null where the pair has no address of the family. */
  cells: Array<Array<boolean | null>>;
}

function familyParam(v: string | null): Family {
  if (v === null || v === '' || v === '4') return 4;
  if (v === '6') return 6;
  throw new UserError(`family ${JSON.stringify(v)}: expected 4 or 6`);
}

/** The flow spec of a request: protocol TCP, UDP or SCTP with a port, or ICMP. */
function specParams(q: URLSearchParams): { protocol: FlowProtocol; port?: number } {
  const protocol = (q.get('protocol') ?? 'TCP').trim();
  if (/^icmp(v6)?$/i.test(protocol)) return { protocol: 'ICMP' };
  return parseFlowSpec(`${(q.get('port') ?? '').trim()}/${protocol}`);
}

export function parseMatrixQuery(q: URLSearchParams): MatrixQuery {
  return { ...specParams(q), family: familyParam(q.get('family')) };
}

export function matrixView(snapshot: Snapshot, m: MatrixQuery): MatrixView {
  const pods = snapshot.endpoints.filter((e) => e.addresses.length > 0).sort((a, b) => compareText(endpointKey(a), endpointKey(b)));
  const names = pods.map(endpointKey);
  const cells = evaluatedMatrix(snapshot, [{ protocol: m.protocol, ...(m.port !== undefined ? { port: m.port } : {}), family: m.family }], pods);
  const index = new Map(cells.map((c) => [`${c.from}|${c.to}`, c.allowed]));
  return { ...m, pods: names, cells: names.map((from) => names.map((to) => index.get(`${from}|${to}`) ?? null)) };
}

export interface TraceQuery {
  src: string;
  dst: string;
  protocol: FlowProtocol;
  port?: number;
  family?: Family;
}

export interface TraceView {
  allowed: boolean;
  lines: string[];
}

export function parseTraceQuery(q: URLSearchParams): TraceQuery {
  const src = q.get('src')?.trim();
  const dst = q.get('dst')?.trim();
  if (!src || !dst) throw new UserError('trace: give src and dst (NAMESPACE/POD, a node name or an address)');
  const fam = q.get('family');
  return { src, dst, ...specParams(q), ...(fam !== null && fam !== '' ? { family: familyParam(fam) } : {}) };
}

export function traceView(snapshot: Snapshot, t: TraceQuery): TraceView {
  const ends = resolveEnds(snapshot, t.src, t.dst, t.family);
  const flow = { src: ends.src, dst: ends.dst, protocol: t.protocol, ...(t.port !== undefined ? { port: t.port } : {}) };
  const v = evaluate(snapshot, flow);
  return { allowed: v.allowed, lines: traceLines(snapshot, flow, v) };
}

/**
 * The trace request for a flow record: its ends (the pod when known, else the address), the
 * destination port and the protocol; null for a protocol policy does not judge by port.
 */
export function traceQueryOfFlow(r: FlowRecord): TraceQuery | null {
  const src = r.source.pod ?? r.source.address;
  const dst = r.destination.pod ?? r.destination.address;
  if (r.protocol === 'ICMP' || r.protocol === 'ICMPv6') return { src, dst, protocol: 'ICMP', family: r.family };
  if ((r.protocol === 'TCP' || r.protocol === 'UDP' || r.protocol === 'SCTP') && r.destination.port !== undefined) return { src, dst, protocol: r.protocol, port: r.destination.port, family: r.family };
  return null;
}
