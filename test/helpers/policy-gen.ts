import fc from 'fast-check';
import { cidrContains, parseAddress, parseCidr } from '../../src/ipam/cidr.js';
import type { KObject } from '../../src/model/objects.js';

/**
 * Random, valid policy scenarios over the conformance universe (namespaces x/y/z, pods a/b/c,
 * TCP/UDP 80/81, the port names the lab pods declare): labels on namespaces and pods, some
 * NetworkPolicies and sometimes WeftClusterPolicies. Addresses come from the caller, so the
 * same scenarios run against a lab or against synthetic endpoints.
 *
 * Every scenario exercises both outcomes by construction, not by luck: three anchor
 * WeftClusterPolicies, evaluated before anything generated (priority 0, names first), always
 * deny the third namespace's pods into the first namespace's pod "a", and always allow the
 * second namespace's "a" to its "b" (egress and ingress) on every port.
 */
export interface GenContext {
  namespaces: string[];
  pods: string[];
  /** ipBlock material: whole ranges, node blocks, and each pod's addresses. */
  ranges: string[];
  podAddresses: Record<string, string[]>;
}

export interface Scenario {
  nsLabels: Record<string, Record<string, string>>;
  podLabels: Record<string, Record<string, string>>;
  objects: KObject[];
}

const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });

function selector(keys: Record<string, string[]>): fc.Arbitrary<Record<string, unknown>> {
  const names = Object.keys(keys);
  const label = fc.constantFrom(...names).chain((k) => fc.constantFrom(...(keys[k] as string[])).map((v) => [k, v] as const));
  const expr = fc.constantFrom(...names, 'tier').chain((key) =>
    fc.oneof(
      fc.subarray(keys[key] ?? ['x'], { minLength: 1 }).chain((values) => fc.constantFrom('In', 'NotIn').map((operator) => ({ key, operator, values }))),
      fc.constantFrom('Exists', 'DoesNotExist').map((operator) => ({ key, operator })),
    ),
  );
  return fc.record({ labels: fc.array(label, { maxLength: 2 }), exprs: fc.array(expr, { maxLength: 1 }) }).map(({ labels, exprs }) => {
    const out: Record<string, unknown> = {};
    if (labels.length) out['matchLabels'] = Object.fromEntries(labels);
    if (exprs.length) out['matchExpressions'] = exprs;
    return out;
  });
}

export function scenarioArb(ctx: GenContext): fc.Arbitrary<Scenario> {
  const podSel = selector({ pod: ['a', 'b', 'c'], role: ['web', 'db'] });
  const nsSel = selector({ ns: ctx.namespaces, team: ['blue', 'red'] });
  const cidrs = [...ctx.ranges, ...Object.values(ctx.podAddresses).flat().map((a) => `${a}/${a.includes(':') ? 128 : 32}`)];
  const ipBlock = fc.constantFrom(...cidrs).chain((cidr) => {
    const c = parseCidr(cidr);
    const inside = Object.values(ctx.podAddresses)
      .flat()
      .filter((a) => c.prefix < (c.family === 4 ? 32 : 128) && cidrContains(c, parseAddress(a)));
    const except = inside.length ? fc.subarray(inside.map((a) => `${a}/${a.includes(':') ? 128 : 32}`), { maxLength: 2 }) : fc.constant([] as string[]);
    return except.map((e) => ({ ipBlock: e.length ? { cidr, except: e } : { cidr } }));
  });
  const peer = fc.oneof(
    podSel.map((p) => ({ podSelector: p })),
    nsSel.map((n) => ({ namespaceSelector: n })),
    fc.tuple(nsSel, podSel).map(([n, p]) => ({ namespaceSelector: n, podSelector: p })),
    ipBlock,
  );
  const proto = opt(fc.constantFrom('TCP', 'UDP'));
  const port = fc.oneof(
    fc.record({ port: fc.constantFrom(80, 81), protocol: proto }),
    fc.record({ port: fc.constant(80), endPort: fc.constant(81), protocol: proto }),
    fc.record({ protocol: fc.constantFrom('TCP', 'UDP') }),
    fc.record({ port: fc.constantFrom('web', 'serve-81-udp', 'serve-80-udp', 'metrics'), protocol: proto }),
  ).map((p) => Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)));
  const rule = (dir: 'from' | 'to') =>
    fc.record({ peers: opt(fc.array(peer, { maxLength: 2 })), ports: opt(fc.array(port, { maxLength: 2 })) }).map(({ peers, ports }) => ({
      ...(peers !== undefined ? { [dir]: peers } : {}),
      ...(ports !== undefined ? { ports } : {}),
    }));
  const policy = fc
    .record({
      ns: fc.constantFrom(...ctx.namespaces),
      podSelector: podSel,
      types: fc.constantFrom(undefined, ['Ingress'], ['Egress'], ['Ingress', 'Egress']),
      ingress: opt(fc.array(rule('from'), { maxLength: 2 })),
      egress: opt(fc.array(rule('to'), { maxLength: 2 })),
    })
    .map((p) => ({ ns: p.ns, spec: { podSelector: p.podSelector, ...(p.types ? { policyTypes: p.types } : {}), ...(p.ingress ? { ingress: p.ingress } : {}), ...(p.egress ? { egress: p.egress } : {}) } }));
  const clusterPeer = fc.oneof(
    nsSel.map((n) => ({ namespaces: n })),
    fc.tuple(nsSel, podSel).map(([n, p]) => ({ pods: { namespaceSelector: n, podSelector: p } })),
    fc.constantFrom(...cidrs).map((c) => ({ networks: [c] })),
  );
  const clusterPort = fc.oneof(
    fc.record({ portNumber: fc.record({ port: fc.constantFrom(80, 81), protocol: fc.constantFrom('TCP', 'UDP') }) }),
    fc.record({ portRange: fc.record({ start: fc.constant(80), end: fc.constant(81), protocol: fc.constantFrom('TCP', 'UDP') }) }),
    fc.record({ namedPort: fc.constantFrom('web', 'serve-81-udp') }),
  );
  const clusterRule = (dir: 'from' | 'to') =>
    fc.record({ action: fc.constantFrom('Allow', 'Deny', 'Pass'), peers: fc.array(clusterPeer, { minLength: 1, maxLength: 2 }), ports: opt(fc.array(clusterPort, { minLength: 1, maxLength: 2 })) }).map((r) => ({
      action: r.action,
      [dir]: r.peers,
      ...(r.ports ? { ports: r.ports } : {}),
    }));
  const clusterPolicy = fc.record({
    priority: fc.integer({ min: 0, max: 20 }),
    subject: fc.oneof(nsSel.map((n) => ({ namespaces: n })), fc.tuple(nsSel, podSel).map(([n, p]) => ({ pods: { namespaceSelector: n, podSelector: p } }))),
    ingress: fc.array(clusterRule('from'), { maxLength: 2 }),
    egress: fc.array(clusterRule('to'), { maxLength: 2 }),
  });
  return fc
    .record({
      teams: fc.array(fc.constantFrom(undefined, 'blue', 'red'), { minLength: ctx.namespaces.length, maxLength: ctx.namespaces.length }),
      roles: fc.array(fc.constantFrom(undefined, 'web', 'db'), { minLength: ctx.pods.length, maxLength: ctx.pods.length }),
      policies: fc.array(policy, { minLength: 1, maxLength: 3 }),
      clusterPolicies: fc.oneof({ weight: 2, arbitrary: fc.array(clusterPolicy, { maxLength: 0 }) }, { weight: 1, arbitrary: fc.array(clusterPolicy, { minLength: 1, maxLength: 2 }) }),
    })
    .map(({ teams, roles, policies, clusterPolicies }) => ({
      nsLabels: Object.fromEntries(ctx.namespaces.map((n, i) => [n, { ns: n, ...(teams[i] ? { team: teams[i] } : {}) }])),
      podLabels: Object.fromEntries(ctx.pods.map((p, i) => [p, { pod: p.split('/')[1] as string, ...(roles[i] ? { role: roles[i] } : {}) }])),
      objects: [
        ...anchors(ctx),
        ...policies.map((p, i): KObject => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: `gen-${i}`, namespace: p.ns }, spec: p.spec } as KObject)),
        ...clusterPolicies.map((c, i): KObject => ({ apiVersion: 'weft.io/v1', kind: 'WeftClusterPolicy', metadata: { name: `gen-${i}` }, spec: c } as KObject)),
      ],
    }));
}

/** The cluster policies every scenario carries (see the module comment). */
export function anchors(ctx: GenContext): KObject[] {
  const [n0, n1, n2] = ctx.namespaces as [string, string, string];
  const pod = (ns: string, name: string): Record<string, unknown> => ({ namespaceSelector: { matchLabels: { ns } }, podSelector: { matchLabels: { pod: name } } });
  const wcp = (name: string, spec: Record<string, unknown>): KObject => ({ apiVersion: 'weft.io/v1', kind: 'WeftClusterPolicy', metadata: { name }, spec: { priority: 0, ...spec } } as KObject);
  return [
    wcp('anchor-allow-in', { subject: { pods: pod(n1, 'b') }, ingress: [{ action: 'Allow', from: [{ pods: pod(n1, 'a') }] }] }),
    wcp('anchor-allow-out', { subject: { pods: pod(n1, 'a') }, egress: [{ action: 'Allow', to: [{ pods: pod(n1, 'b') }] }] }),
    wcp('anchor-deny', { subject: { pods: pod(n0, 'a') }, ingress: [{ action: 'Deny', from: [{ namespaces: { matchLabels: { ns: n2 } } }] }] }),
  ];
}

