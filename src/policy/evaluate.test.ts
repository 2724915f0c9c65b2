import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseManifests } from '../model/manifest.js';
import type { NamespaceObject, NetworkPolicyObject, NodeObject, PodObject, WeftClusterPolicyObject } from '../model/objects.js';
import { evaluate, hostOf, type FlowProtocol, type Verdict } from './evaluate.js';
import { buildSnapshot } from './from-objects.js';
import type { Snapshot } from './ir.js';
import { npYaml, wcpYaml } from '../../test/helpers/policy-yaml.js';

/**
 * The evaluator against the semantics of networking.k8s.io/v1 (../shared/reference/
 * networkpolicy.md), case by case. Pods: x/a x/b y/a y/b, two nodes, named ports that
 * resolve differently on different pods.
 */
const ns = (name: string, labels: Record<string, string>): NamespaceObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { ...labels, 'kubernetes.io/metadata.name': name } } });
const pod = (namespace: string, name: string, ip: string, ip6: string, labels: Record<string, string>, node: string, ports: Array<[string, number, string?]> = []): PodObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace, name, labels },
  spec: { nodeName: node, containers: [{ name: 'c', ports: ports.map(([n, p, proto]) => ({ name: n, containerPort: p, protocol: proto ?? 'TCP' })) }] },
  status: { phase: 'Running', podIPs: [{ ip }, { ip: ip6 }] },
});
const node = (name: string, ip: string): NodeObject => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, annotations: { 'weft.io/node-ips': ip } } });

const BASE = {
  namespaces: [ns('x', { team: 'x' }), ns('y', { team: 'y' })],
  pods: [
    pod('x', 'a', '10.0.1.1', 'fd00::1:1', { pod: 'a', role: 'web' }, 'n1', [['http', 80], ['dns', 53, 'UDP']]),
    pod('x', 'b', '10.0.1.2', 'fd00::1:2', { pod: 'b' }, 'n2', [['http', 81]]),
    pod('y', 'a', '10.0.2.1', 'fd00::2:1', { pod: 'a', role: 'web' }, 'n1'),
    pod('y', 'b', '10.0.2.2', 'fd00::2:2', { pod: 'b', tier: 'db' }, 'n2'),
  ],
  nodes: [node('n1', '192.168.0.1'), node('n2', '192.168.0.2')],
};

function snap(yaml: string): Snapshot {
  const objs = yaml.trim() ? parseManifests(yaml, 'test.yaml') : [];
  const { snapshot, problems } = buildSnapshot({
    ...BASE,
    weftEndpoints: [],
    policies: objs.filter((o) => o.kind === 'NetworkPolicy') as NetworkPolicyObject[],
    clusterPolicies: objs.filter((o) => o.kind === 'WeftClusterPolicy') as WeftClusterPolicyObject[],
  });
  assert.deepEqual(problems, []);
  return snapshot;
}

const ADDR: Record<string, [string, string]> = { 'x/a': ['10.0.1.1', 'fd00::1:1'], 'x/b': ['10.0.1.2', 'fd00::1:2'], 'y/a': ['10.0.2.1', 'fd00::2:1'], 'y/b': ['10.0.2.2', 'fd00::2:2'] };
const addr = (who: string, family: 4 | 6): string => ADDR[who]?.[family === 4 ? 0 : 1] ?? who;

function v(s: Snapshot, from: string, to: string, port: number | 'ICMP', protocol: FlowProtocol = 'TCP', family: 4 | 6 = 4): Verdict {
  return evaluate(s, { src: hostOf(s, addr(from, family)), dst: hostOf(s, addr(to, family)), protocol: port === 'ICMP' ? 'ICMP' : protocol, ...(port === 'ICMP' ? {} : { port }) });
}
const ok = (s: Snapshot, from: string, to: string, port: number | 'ICMP', protocol: FlowProtocol = 'TCP', family: 4 | 6 = 4): boolean => v(s, from, to, port, protocol, family).allowed;

const np = (name: string, namespace: string, spec: string): string => npYaml(namespace, name, spec);

describe('policy evaluator: isolation', () => {
  it('without policies everything is allowed', () => {
    const s = snap('');
    assert.equal(v(s, 'x/a', 'y/b', 80).ingress.decision, 'not-isolated');
    assert.ok(ok(s, 'x/a', 'y/b', 80) && ok(s, 'y/b', 'x/a', 9999, 'UDP') && ok(s, 'x/a', 'y/b', 'ICMP'));
  });

  it('deny-all ingress isolates every pod of its namespace, and only for ingress', () => {
    const s = snap(np('deny', 'x', 'podSelector: {}'));
    assert.equal(ok(s, 'y/a', 'x/a', 80), false);
    assert.equal(ok(s, 'x/b', 'x/a', 80), false, 'within the namespace too');
    assert.equal(ok(s, 'x/a', 'y/a', 80), true, 'egress is not isolated');
    assert.equal(ok(s, 'x/a', 'x/a', 80), true, 'a pod reaches itself');
    const r = v(s, 'y/a', 'x/a', 80);
    assert.deepEqual(r.ingress.isolatedBy, ['x/deny']);
    assert.equal(r.ingress.decision, 'no-rule');
    assert.match(r.ingress.misses[0] ?? '', /no ingress rules/);
  });

  it('policyTypes inference: `egress: []` alone does not isolate egress; `policyTypes: [Egress]` denies all egress', () => {
    assert.equal(ok(snap(np('p', 'x', 'podSelector: {}\ningress: [{}]\negress: []')), 'x/a', 'y/a', 80), true);
    const s = snap(np('p', 'x', 'podSelector: {}\npolicyTypes: [Egress]'));
    assert.equal(ok(s, 'x/a', 'y/a', 80), false);
    assert.equal(ok(s, 'y/a', 'x/a', 80), true, 'ingress is not isolated by an Egress-only policy');
  });

  it('a connection needs egress at the source AND ingress at the destination', () => {
    const s = snap(np('out', 'x', 'podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress: [{to: [{namespaceSelector: {matchLabels: {team: y}}}]}]') + np('in', 'y', 'podSelector: {matchLabels: {pod: b}}\ningress: [{from: [{podSelector: {matchLabels: {pod: a}}}]}]'));
    assert.equal(ok(s, 'x/a', 'y/a', 80), true, 'egress allows y, y/a is not isolated');
    const r = v(s, 'x/a', 'y/b', 80);
    assert.equal(r.egress.allowed, true);
    assert.equal(r.ingress.allowed, false, 'y/b only admits pod=a of its own namespace');
    assert.equal(r.allowed, false);
    assert.equal(ok(s, 'y/a', 'y/b', 80), true);
  });

  it('policies are a union', () => {
    const s = snap(np('p1', 'y', 'podSelector: {}\ningress: [{from: [{podSelector: {matchLabels: {pod: a}}}]}]') + np('p2', 'y', 'podSelector: {matchLabels: {pod: b}}\ningress: [{from: [{namespaceSelector: {matchLabels: {team: x}}}]}]'));
    assert.equal(ok(s, 'x/b', 'y/b', 80), true, 'p2 allows x → y/b');
    assert.equal(ok(s, 'x/b', 'y/a', 80), false, 'p2 does not select y/a');
    assert.equal(v(s, 'x/b', 'y/b', 80).ingress.by?.name, 'p2');
  });
});

describe('policy evaluator: peers', () => {
  it('namespaceSelector AND podSelector in one peer, OR in two', () => {
    const and = snap(np('p', 'y', 'podSelector: {}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {team: x}}\n    podSelector: {matchLabels: {pod: a}}'));
    const or = snap(np('p', 'y', 'podSelector: {}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {team: x}}\n  - podSelector: {matchLabels: {pod: a}}'));
    assert.deepEqual([ok(and, 'x/a', 'y/b', 80), ok(and, 'x/b', 'y/b', 80), ok(and, 'y/a', 'y/b', 80)], [true, false, false]);
    assert.deepEqual([ok(or, 'x/a', 'y/b', 80), ok(or, 'x/b', 'y/b', 80), ok(or, 'y/a', 'y/b', 80)], [true, true, true]);
  });

  it('a podSelector alone looks in the policy namespace; namespaceSelector {} means every namespace but no non-pod', () => {
    const own = snap(np('p', 'y', 'podSelector: {}\ningress: [{from: [{podSelector: {}}]}]'));
    assert.deepEqual([ok(own, 'y/a', 'y/b', 80), ok(own, 'x/a', 'y/b', 80)], [true, false]);
    const all = snap(np('p', 'y', 'podSelector: {}\ningress: [{from: [{namespaceSelector: {}}]}]'));
    assert.equal(ok(all, 'x/a', 'y/b', 80), true);
    assert.equal(ok(all, '192.168.0.2', 'y/a', 80), false, 'a node address is no pod');
    assert.equal(ok(all, '203.0.113.9', 'y/a', 80), false);
  });

  it('matchExpressions: In, NotIn (also pods without the key), Exists, DoesNotExist', () => {
    const sel = (e: string): Snapshot => snap(np('p', 'x', `podSelector: {}\ningress: [{from: [{namespaceSelector: {}, podSelector: {matchExpressions: [${e}]}}]}]`));
    const who = (s: Snapshot): string[] => ['x/b', 'y/a', 'y/b'].filter((f) => ok(s, f, 'x/a', 80));
    assert.deepEqual(who(sel('{key: pod, operator: In, values: [b]}')), ['x/b', 'y/b']);
    assert.deepEqual(who(sel('{key: tier, operator: NotIn, values: [db]}')), ['x/b', 'y/a']);
    assert.deepEqual(who(sel('{key: role, operator: Exists}')), ['y/a']);
    assert.deepEqual(who(sel('{key: role, operator: DoesNotExist}')), ['x/b', 'y/b']);
  });

  it('ipBlock with except, by address, pod or not, in both families', () => {
    const s = snap(np('p', 'x', 'podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.2/32]}}, {ipBlock: {cidr: "fd00::2:0/112"}}]}]'));
    assert.equal(ok(s, 'y/a', 'x/a', 80), true, '10.0.2.1 is inside the block');
    assert.equal(ok(s, 'y/b', 'x/a', 80), false, '10.0.2.2 is excepted');
    assert.equal(ok(s, 'y/b', 'x/a', 80, 'TCP', 6), true, 'fd00::2:2 is in the IPv6 block');
    assert.equal(ok(s, 'x/b', 'x/a', 80, 'TCP', 6), false, 'fd00::1:2 is not');
    const egress = snap(np('p', 'x', 'podSelector: {}\npolicyTypes: [Egress]\negress: [{to: [{ipBlock: {cidr: 203.0.113.0/24}}]}]'));
    assert.equal(ok(egress, 'x/a', '203.0.113.9', 443), true);
    assert.equal(ok(egress, 'x/a', '198.51.100.1', 443), false);
  });
});

describe('policy evaluator: ports', () => {
  it('protocol defaults to TCP', () => {
    const s = snap(np('p', 'x', 'podSelector: {}\ningress: [{ports: [{port: 80}]}]'));
    assert.equal(ok(s, 'y/a', 'x/a', 80, 'TCP'), true);
    assert.equal(ok(s, 'y/a', 'x/a', 80, 'UDP'), false);
    assert.equal(ok(s, 'y/a', 'x/a', 81, 'TCP'), false);
  });

  it('a named port resolves on each destination pod, with its protocol', () => {
    const s = snap(np('p', 'x', 'podSelector: {}\ningress: [{ports: [{port: http}]}]'));
    assert.deepEqual([ok(s, 'y/a', 'x/a', 80), ok(s, 'y/a', 'x/a', 81)], [true, false], 'x/a: http is 80');
    assert.deepEqual([ok(s, 'y/a', 'x/b', 80), ok(s, 'y/a', 'x/b', 81)], [false, true], 'x/b: http is 81');
    const udp = snap(np('p', 'x', 'podSelector: {}\ningress: [{ports: [{port: dns, protocol: UDP}, {port: dns}]}]'));
    assert.deepEqual([ok(udp, 'y/a', 'x/a', 53, 'UDP'), ok(udp, 'y/a', 'x/a', 53, 'TCP')], [true, false], 'x/a declares dns as UDP only');
  });

  it('a named port in egress resolves on the destination and never matches a non-pod', () => {
    const s = snap(np('p', 'y', 'podSelector: {}\npolicyTypes: [Egress]\negress: [{ports: [{port: http}]}]'));
    assert.deepEqual([ok(s, 'y/a', 'x/a', 80), ok(s, 'y/a', 'x/b', 81), ok(s, 'y/a', 'x/b', 80), ok(s, 'y/a', '203.0.113.9', 80)], [true, true, false, false]);
  });

  it('endPort makes a range; SCTP is its own protocol', () => {
    const s = snap(np('p', 'x', 'podSelector: {}\ningress: [{ports: [{port: 8000, endPort: 8080}, {protocol: SCTP}]}]'));
    assert.deepEqual([7999, 8000, 8042, 8080, 8081].map((p) => ok(s, 'y/a', 'x/a', p)), [false, true, true, true, false]);
    assert.equal(ok(s, 'y/a', 'x/a', 5000, 'SCTP'), true, 'a port entry without port: every SCTP port');
  });

  it('rules with ports but no peers, peers but no ports, and the empty rule', () => {
    const portsOnly = snap(np('p', 'x', 'podSelector: {}\ningress: [{ports: [{port: 80}]}]'));
    assert.equal(ok(portsOnly, '203.0.113.9', 'x/a', 80), true, 'any source');
    const peersOnly = snap(np('p', 'x', 'podSelector: {}\ningress: [{from: [{podSelector: {}}]}]'));
    assert.deepEqual([ok(peersOnly, 'x/b', 'x/a', 1234, 'UDP'), ok(peersOnly, 'x/b', 'x/a', 'ICMP')], [true, true], 'any port and protocol, ICMP too');
    const empty = snap(np('p', 'x', 'podSelector: {}\ningress: [{}]'));
    assert.equal(ok(empty, '203.0.113.9', 'x/a', 'ICMP'), true);
  });

  it('ICMP is denied under isolation unless a rule without ports allows the peer', () => {
    const s = snap(np('p', 'x', 'podSelector: {}\ningress: [{ports: [{port: 80}, {protocol: UDP}]}]'));
    assert.equal(ok(s, 'y/a', 'x/a', 'ICMP'), false);
  });
});

describe('policy evaluator: nodes', () => {
  it('the node reaches its own pods whatever the policy; other nodes do not', () => {
    const s = snap(np('deny', 'x', 'podSelector: {}'));
    const own = v(s, '192.168.0.1', 'x/a', 80);
    assert.equal(own.allowed, true);
    assert.equal(own.ingress.decision, 'own-node');
    assert.equal(ok(s, '192.168.0.2', 'x/a', 80), false);
  });
});

const wcp = wcpYaml;

describe('policy evaluator: WeftClusterPolicy before NetworkPolicies', () => {
  const denyDb = wcp('no-web-to-db', 'priority: 10\nsubject: {pods: {podSelector: {matchLabels: {tier: db}}}}\ningress: [{name: no-web, action: Deny, from: [{pods: {podSelector: {matchLabels: {role: web}}}}]}]');

  it('Deny wins over a NetworkPolicy that allows', () => {
    const s = snap(denyDb + np('allow-all', 'y', 'podSelector: {}\ningress: [{}]'));
    const r = v(s, 'x/a', 'y/b', 80);
    assert.equal(r.allowed, false);
    assert.equal(r.ingress.decision, 'cluster-policy');
    assert.deepEqual(r.ingress.by, { kind: 'WeftClusterPolicy', name: 'no-web-to-db', direction: 'ingress', rule: 0, ruleName: 'no-web', action: 'Deny' });
    assert.equal(ok(s, 'x/b', 'y/b', 80), true, 'x/b is no web pod');
  });

  it('Allow wins over NetworkPolicy isolation; lower priority first; Pass hands over to NetworkPolicies', () => {
    const allow = wcp('allow-web', 'priority: 5\nsubject: {namespaces: {}}\ningress: [{action: Allow, from: [{pods: {podSelector: {matchLabels: {role: web}}}}], ports: [{portNumber: {port: 80}}]}]');
    const s = snap(denyDb + allow + np('deny', 'y', 'podSelector: {}'));
    assert.equal(ok(s, 'x/a', 'y/b', 80), true, 'priority 5 Allow before priority 10 Deny');
    assert.equal(ok(s, 'x/a', 'y/b', 81), false, 'port 81: the Deny applies');
    assert.equal(ok(s, 'x/b', 'y/a', 80), false, 'no cluster rule: the NetworkPolicy isolates');
    const pass = wcp('pass-x', 'priority: 1\nsubject: {namespaces: {}}\ningress: [{action: Pass, from: [{namespaces: {matchLabels: {team: x}}}]}]');
    const p = snap(denyDb + allow + pass + np('allow-x', 'y', 'podSelector: {}\ningress: [{from: [{namespaceSelector: {matchLabels: {team: x}}}]}]'));
    const r = v(p, 'x/a', 'y/b', 81);
    assert.equal(r.allowed, true, 'Pass skips the Deny; the NetworkPolicy allows');
    assert.equal(r.ingress.passedBy?.name, 'pass-x');
    assert.equal(r.ingress.by?.name, 'allow-x');
  });

  it('egress rules apply at the source; named ports of any protocol', () => {
    const s = snap(wcp('web-out', 'priority: 1\nsubject: {pods: {podSelector: {matchLabels: {role: web}}}}\negress: [{action: Deny, to: [{networks: [10.0.1.0/24]}], ports: [{namedPort: http}]}]'));
    assert.equal(ok(s, 'y/a', 'x/a', 80), false);
    assert.equal(ok(s, 'y/a', 'x/b', 81), false, 'http is 81 on x/b');
    assert.equal(ok(s, 'y/a', 'x/b', 80), true);
    assert.equal(ok(s, 'y/b', 'x/a', 80), true, 'y/b is not a subject');
  });
});
