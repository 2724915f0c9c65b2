import ipaddr from 'ipaddr.js';
import type { NetworkPolicyObject } from '../model/objects.js';

/**
 * `weft connectivity test`, the pure part: which checks a cluster gets (from where to where, which
 * protocol and family, what must happen), how an observation is judged, and how the results are
 * summed up and printed. No I/O: the runner (connectivity.ts) makes the pods, sends the probes
 * and hands the observations here.
 */
export type Family = 4 | 6;
export type CheckProtocol = 'TCP' | 'UDP' | 'ICMP';

/** Checks run in phases: none before any policy, then under default deny, then with an allow. */
export type Phase = 'no-policy' | 'default-deny' | 'allow-client';
export const PHASES: readonly Phase[] = ['no-policy', 'default-deny', 'allow-client'];

/** Steps reported among the checks: they pass or fail like one. */
export const SETUP_CHECK = 'setup/namespace-and-pods';
export const CLEANUP_CHECK = 'cleanup';
export const inForceCheck = (phase: Phase): string => `policy/${phase}/in-force`;

export type Expectation =
  /** Got through; for TCP/UDP optionally who answered and which source address it saw. */
  | { kind: 'reach'; answeredBy?: string; seenFrom?: string; masqueradedFrom?: string }
  /** Dropped by policy: no answer at all (a refusal means the packet got through). */
  | { kind: 'blocked' };

export interface Check {
  name: string;
  phase: Phase;
  /** Who sends: the client pod, or the node it runs on. */
  from: 'client' | 'client-node';
  protocol: CheckProtocol;
  family: Family;
  /** The destination address ("" when skipped for want of a second node). */
  address: string;
  port?: number;
  /** ICMP only: payload bytes, sent with DF (the full-MTU check). */
  payloadBytes?: number;
  expect: Expectation;
  /** Why it is not run (one node: nothing to cross to). */
  skip?: string;
  /**
   * A blocked check: the check of the same path without policy. No answer proves a drop only
   * where that path answered before; otherwise a broken path would pass as "blocked".
   */
  reachedBefore?: string;
}

export interface PodRef {
  /** NS/NAME, as the pod server answers. */
  id: string;
  addresses: string[];
}

export interface Topology {
  client: PodRef;
  sameNodeServer: PodRef;
  /** Absent on a one-node cluster: the cross-node checks are skipped. */
  otherNodeServer?: PodRef;
  clientNode: { name: string; ips: string[] };
  otherNode?: { name: string; ips: string[] };
  /** The outside host (the lab's external host): reached only through masquerade. */
  external: { ips: string[] };
  ports: { tcp: number; udp: number };
  /** The client pod's eth0 MTU. */
  podMtu: number;
}

export const FAMILIES: readonly Family[] = [4, 6];
const fam = (f: Family): string => `IPv${f}`;
/** Of a list holding one address per family, the one of `f` ("" if none). */
export const addressOf = (list: readonly string[], f: Family): string => list.find((a) => a.includes(':') === (f === 6)) ?? '';
/** ICMP payload that fills an MTU-sized packet: less 8 (ICMP) and 20 (IPv4) or 40 (IPv6) bytes. */
export const fullMtuPayload = (mtu: number, f: Family): number => mtu - (f === 4 ? 28 : 48);
const ONE_NODE = 'the cluster has one node: nothing to cross to';

/** Every check, in the order they are reported. */
export function planChecks(t: Topology): Check[] {
  const checks: Check[] = [];
  const other = t.otherNodeServer;
  const crossSkip = other ? {} : { skip: ONE_NODE };
  const podTargets = [
    { where: 'same-node', pod: t.sameNodeServer as PodRef | undefined, skip: {} },
    { where: 'cross-node', pod: other, skip: crossSkip },
  ];
  // Pod to pod: TCP, UDP, ICMP, both families; answered by the right pod, which saw the client's
  // own address (nothing translates traffic between pods).
  for (const { where, pod, skip } of podTargets) {
    for (const f of FAMILIES) {
      const address = pod ? addressOf(pod.addresses, f) : '';
      const seen = { answeredBy: pod?.id ?? '', seenFrom: addressOf(t.client.addresses, f) };
      checks.push({ name: `pod-to-pod/${where}/${fam(f)}/TCP`, phase: 'no-policy', from: 'client', protocol: 'TCP', family: f, address, port: t.ports.tcp, expect: { kind: 'reach', ...seen }, ...skip });
      checks.push({ name: `pod-to-pod/${where}/${fam(f)}/UDP`, phase: 'no-policy', from: 'client', protocol: 'UDP', family: f, address, port: t.ports.udp, expect: { kind: 'reach', ...seen }, ...skip });
      checks.push({ name: `pod-to-pod/${where}/${fam(f)}/ICMP`, phase: 'no-policy', from: 'client', protocol: 'ICMP', family: f, address, expect: { kind: 'reach' }, ...skip });
    }
  }
  // A full-size packet that may not be fragmented, across nodes: the pod MTU leaves room for the
  // encapsulation on the way.
  for (const f of FAMILIES) {
    checks.push({
      name: `pod-mtu/cross-node/${fam(f)}/ICMP-DF`,
      phase: 'no-policy', from: 'client', protocol: 'ICMP', family: f,
      address: other ? addressOf(other.addresses, f) : '',
      payloadBytes: fullMtuPayload(t.podMtu, f),
      expect: { kind: 'reach' },
      ...crossSkip,
    });
  }
  // Pod to the nodes' own addresses, and the node to its pod (kubelet's probes).
  for (const f of FAMILIES) {
    checks.push({ name: `pod-to-node/own-node/${fam(f)}/ICMP`, phase: 'no-policy', from: 'client', protocol: 'ICMP', family: f, address: addressOf(t.clientNode.ips, f), expect: { kind: 'reach' } });
    checks.push({ name: `pod-to-node/other-node/${fam(f)}/ICMP`, phase: 'no-policy', from: 'client', protocol: 'ICMP', family: f, address: t.otherNode ? addressOf(t.otherNode.ips, f) : '', expect: { kind: 'reach' }, ...(t.otherNode ? {} : { skip: ONE_NODE }) });
    checks.push({ name: `node-to-pod/own-node/${fam(f)}/ICMP`, phase: 'no-policy', from: 'client-node', protocol: 'ICMP', family: f, address: addressOf(t.sameNodeServer.addresses, f), expect: { kind: 'reach' } });
  }
  // Outside the cluster: the answer comes back only if the node masqueraded the pod.
  for (const f of FAMILIES) {
    for (const protocol of ['TCP', 'UDP'] as const) {
      checks.push({
        name: `pod-to-outside/masquerade/${fam(f)}/${protocol}`,
        phase: 'no-policy', from: 'client', protocol, family: f,
        address: addressOf(t.external.ips, f),
        port: protocol === 'TCP' ? t.ports.tcp : t.ports.udp,
        expect: { kind: 'reach', seenFrom: addressOf(t.clientNode.ips, f), masqueradedFrom: addressOf(t.client.addresses, f) },
      });
    }
  }
  // Policy: default deny of ingress in the test namespace blocks the servers, both families;
  // an allow for the client's label and the TCP port lets exactly that through again.
  for (const { where, pod, skip } of podTargets) {
    for (const f of FAMILIES) {
      const address = pod ? addressOf(pod.addresses, f) : '';
      checks.push({ name: `policy/default-deny/${where}/${fam(f)}/TCP`, phase: 'default-deny', from: 'client', protocol: 'TCP', family: f, address, port: t.ports.tcp, expect: { kind: 'blocked' }, reachedBefore: `pod-to-pod/${where}/${fam(f)}/TCP`, ...skip });
    }
  }
  for (const { where, pod, skip } of podTargets) {
    for (const f of FAMILIES) {
      const address = pod ? addressOf(pod.addresses, f) : '';
      checks.push({ name: `policy/allow-client/${where}/${fam(f)}/TCP`, phase: 'allow-client', from: 'client', protocol: 'TCP', family: f, address, port: t.ports.tcp, expect: { kind: 'reach', answeredBy: pod?.id ?? '', seenFrom: addressOf(t.client.addresses, f) }, ...skip });
    }
    const address = pod ? addressOf(pod.addresses, 4) : '';
    checks.push({ name: `policy/allow-client/${where}/IPv4/UDP-not-allowed`, phase: 'allow-client', from: 'client', protocol: 'UDP', family: 4, address, port: t.ports.udp, expect: { kind: 'blocked' }, reachedBefore: `pod-to-pod/${where}/IPv4/UDP`, ...skip });
  }
  return checks;
}

/** Every name a run may report, in order (the names do not depend on addresses): a table's width before the first result. */
export function reportNames(): string[] {
  const pod = (id: string, n: number): PodRef => ({ id, addresses: [`10.0.0.${n}`, `fd00::${n}`] });
  const node = { name: 'n', ips: ['10.0.1.1', 'fd00:1::1'] };
  const checks = planChecks({ client: pod('c', 1), sameNodeServer: pod('s', 2), otherNodeServer: pod('o', 3), clientNode: node, otherNode: node, external: { ips: ['10.0.2.1', 'fd00:2::1'] }, ports: { tcp: 80, udp: 53 }, podMtu: 1450 });
  const names = [SETUP_CHECK];
  for (const phase of PHASES) {
    if (phase !== 'no-policy') names.push(inForceCheck(phase));
    names.push(...checks.filter((c) => c.phase === phase).map((c) => c.name));
  }
  return [...names, CLEANUP_CHECK];
}

/** The labels the test gives its pods: policy selects the client by `role`. */
export const TEST_LABEL = 'weft.io/connectivity-test';
export const CLIENT_LABELS: Readonly<Record<string, string>> = { [TEST_LABEL]: 'true', role: 'client' };
export const SERVER_LABELS: Readonly<Record<string, string>> = { [TEST_LABEL]: 'true', role: 'server' };

/** The NetworkPolicy a phase adds to the test namespace (none before any policy). */
export function phasePolicy(phase: Phase, namespace: string, tcpPort: number): NetworkPolicyObject | undefined {
  const meta = (name: string): NetworkPolicyObject['metadata'] => ({ name, namespace, labels: { [TEST_LABEL]: 'true' } });
  if (phase === 'default-deny') {
    return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta('default-deny-ingress'), spec: { podSelector: {}, policyTypes: ['Ingress'] } };
  }
  if (phase === 'allow-client') {
    return {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta('allow-client'),
      spec: {
        podSelector: { matchLabels: { role: 'server' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ protocol: 'TCP', port: tcpPort }] }],
      },
    };
  }
  return undefined;
}

/** What a probe saw. */
export type Observation =
  /** TCP/UDP through the pod server's probe: `reply` is "<identity> <source address it saw>". */
  | { kind: 'probe'; ok: boolean; reply?: string; error?: string }
  | { kind: 'ping'; ok: boolean; error?: string }
  /** The probe itself could not run. */
  | { kind: 'error'; error: string };

export type Status = 'passed' | 'failed' | 'skipped';

export interface Verdict {
  status: Status;
  /** Why it failed or was skipped. */
  reason?: string;
}

function sameAddress(a: string, b: string): boolean {
  try {
    return ipaddr.process(a).toNormalizedString() === ipaddr.process(b).toNormalizedString();
  } catch {
    return a === b;
  }
}

const describeError = (e: string | undefined, timeoutMs: number): string =>
  e === 'timeout' ? `no answer within ${timeoutMs} ms` : e === 'ECONNREFUSED' ? 'refused: nothing listens there' : (e ?? 'failed');

/**
 * Whether what was seen is what the check expects, and if not, why. `earlier`: the results so
 * far, by name (a blocked check counts only where its path answered without policy).
 */
export function judge(check: Check, obs: Observation, timeoutMs: number, earlier: ReadonlyMap<string, Verdict['status']> = new Map()): Verdict {
  if (check.skip) return { status: 'skipped', reason: check.skip };
  if (obs.kind === 'error') return { status: 'failed', reason: `the probe could not run: ${obs.error}` };
  const e = check.expect;
  if (e.kind === 'blocked' && check.reachedBefore !== undefined && earlier.get(check.reachedBefore) !== 'passed') {
    return { status: 'failed', reason: `inconclusive: the same path did not answer without policy (${check.reachedBefore}), so no answer now proves no drop by policy` };
  }
  if (e.kind === 'blocked') {
    if (obs.ok) return { status: 'failed', reason: `reachable, but policy should block it${obs.kind === 'probe' && obs.reply ? ` (answered: ${obs.reply})` : ''}` };
    if (obs.kind === 'probe' && obs.error !== 'timeout') {
      // A refusal is the destination's answer: the packet was let through.
      return { status: 'failed', reason: `not dropped: ${describeError(obs.error, timeoutMs)}, so the packet reached the destination` };
    }
    return { status: 'passed' };
  }
  if (!obs.ok) {
    const why = obs.kind === 'probe' ? describeError(obs.error, timeoutMs) : (obs.error ?? 'no answer');
    return { status: 'failed', reason: check.payloadBytes !== undefined ? `${check.payloadBytes + (check.family === 4 ? 28 : 48)}-byte packet with DF: ${why}` : why };
  }
  if (obs.kind !== 'probe') return { status: 'passed' };
  const reply = (obs.reply ?? '').trim();
  const cut = reply.lastIndexOf(' ');
  const by = cut < 0 ? reply : reply.slice(0, cut);
  const source = cut < 0 ? '' : reply.slice(cut + 1);
  if (e.answeredBy !== undefined && by !== e.answeredBy) return { status: 'failed', reason: `answered by ${JSON.stringify(by)}, not ${e.answeredBy}` };
  if (e.masqueradedFrom !== undefined && sameAddress(source, e.masqueradedFrom)) return { status: 'failed', reason: `not masqueraded: the outside saw the pod's own address ${source}` };
  if (e.seenFrom !== undefined && !sameAddress(source, e.seenFrom)) {
    const expected = e.masqueradedFrom !== undefined ? `the node's ${e.seenFrom}` : `the client's own ${e.seenFrom} (nothing translates between pods)`;
    return { status: 'failed', reason: `the destination saw source ${source || '(none)'}, expected ${expected}` };
  }
  return { status: 'passed' };
}

export interface CheckResult {
  name: string;
  status: Status;
  ms: number;
  reason?: string;
  /** What was sent where, for the JSON and the table (e.g. "10.244.1.3:80"). */
  target?: string;
}

export interface Summary {
  passed: number;
  failed: number;
  skipped: number;
  /** Names of the failed checks, in order. */
  failedChecks: string[];
  /** 0 when nothing failed, else 1. */
  exitCode: 0 | 1;
}

export function summarize(results: readonly CheckResult[]): Summary {
  const count = (s: Status): number => results.filter((r) => r.status === s).length;
  const failedChecks = results.filter((r) => r.status === 'failed').map((r) => r.name);
  return { passed: count('passed'), failed: count('failed'), skipped: count('skipped'), failedChecks, exitCode: failedChecks.length === 0 ? 0 : 1 };
}

/** Where a check goes, as printed: address, address:port or [v6]:port, and the DF size. */
export function targetOf(c: Check): string {
  if (c.address === '') return '-';
  const host = c.port !== undefined && c.family === 6 ? `[${c.address}]` : c.address;
  const where = c.port !== undefined ? `${host}:${c.port}` : host;
  return c.payloadBytes !== undefined ? `${where} (${c.payloadBytes + (c.family === 4 ? 28 : 48)} bytes, DF)` : where;
}

const RESULT_TEXT: Readonly<Record<Status, string>> = { passed: 'ok', failed: 'FAIL', skipped: 'skip' };

/** The table's header, for names up to `nameWidth` wide. */
export function tableHeader(nameWidth: number): string {
  return `${'CHECK'.padEnd(nameWidth)}  RESULT  ${'MS'.padStart(7)}  DETAIL`;
}

/** One row: name, result, milliseconds, and the target or, when not passed, the reason. */
export function tableRow(r: CheckResult, nameWidth: number): string {
  const detail = r.status === 'passed' ? (r.target ?? '') : (r.reason ?? '');
  return `${r.name.padEnd(nameWidth)}  ${RESULT_TEXT[r.status].padEnd(6)}  ${r.status === 'skipped' ? '-'.padStart(7) : r.ms.toFixed(1).padStart(7)}  ${detail}`.trimEnd();
}

/** The last line: the counts, and which checks failed. */
export function summaryLine(s: Summary, totalMs: number): string {
  const n = s.passed + s.failed + s.skipped;
  const counts = `${n} check${n === 1 ? '' : 's'}: ${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped (${(totalMs / 1000).toFixed(1)} s)`;
  return s.failed === 0 ? `${counts}: all passed` : `${counts}; failed: ${s.failedChecks.join(', ')}`;
}
