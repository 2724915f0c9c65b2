import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseManifests } from '../model/manifest.js';
import type { NamespaceObject, NodeObject, PodObject } from '../model/objects.js';
import { UserError } from '../util/user-error.js';
import { evaluate, hostOf } from './evaluate.js';
import { evaluatedMatrix, parseFlowSpec, resolveEnds, traceLines } from './explain.js';
import { flowDiff } from './flow-diff.js';
import { buildSnapshot, type SnapshotInput } from './from-objects.js';
import type { Snapshot } from './ir.js';
import { withChanges } from './what-if.js';
import { scenarioArb, type GenContext, type Scenario } from '../../test/helpers/policy-gen.js';
import { portSegments } from '../../test/helpers/port-segments.js';
import type { NetworkPolicyObject, WeftClusterPolicyObject } from '../model/objects.js';

/** `weft policy trace|matrix|diff` logic: the ends a user names, the text, the diff's exactness. */
const ns = (name: string, labels: Record<string, string> = {}): NamespaceObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
const pod = (namespace: string, name: string, ips: string[], labels: Record<string, string>, node: string, ports: Array<[string, number]> = []): PodObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace, name, labels },
  spec: { nodeName: node, containers: [{ name: 'c', ports: ports.map(([n, p]) => ({ name: n, containerPort: p, protocol: 'TCP' })) }] },
  status: { phase: 'Running', podIPs: ips.map((ip) => ({ ip })) },
});
const node = (name: string, ip: string): NodeObject => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, annotations: { 'weft.io/node-ips': ip } } });

const INPUT: SnapshotInput = {
  namespaces: [ns('shop', { team: 'shop' }), ns('data', { team: 'data' })],
  pods: [
    pod('shop', 'frontend', ['10.0.1.1', 'fd00::1:1'], { app: 'frontend', tier: 'frontend' }, 'n1', [['http', 80]]),
    pod('shop', 'api', ['10.0.2.1', 'fd00::2:1'], { app: 'api' }, 'n2', [['http', 8080]]),
    pod('data', 'db', ['10.0.3.1'], { app: 'db', tier: 'db' }, 'n3', [['pg', 5432]]),
  ],
  weftEndpoints: [],
  policies: [],
  clusterPolicies: [],
  nodes: [node('n1', '192.168.0.1'), node('n2', '192.168.0.2'), node('n3', '192.168.0.3')],
};

const POLICIES = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-api, namespace: data}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: shop}}
      podSelector: {matchLabels: {app: api}}
    ports: [{port: pg}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-from-frontend, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{port: 8080}]
`;

function withObjects(input: SnapshotInput, yaml: string): SnapshotInput {
  return withChanges(input, parseManifests(yaml, 'test.yaml'), 'apply').input;
}
function snap(input: SnapshotInput): Snapshot {
  const { snapshot, problems } = buildSnapshot(input);
  assert.deepEqual(problems, []);
  return snapshot;
}

describe('policy explain: naming the ends of a flow', () => {
  const s = snap(INPUT);
  it('parses PORT/PROTO and ICMP, and says what is accepted otherwise', () => {
    assert.deepEqual(parseFlowSpec('80/tcp'), { protocol: 'TCP', port: 80 });
    assert.deepEqual(parseFlowSpec('53/UDP'), { protocol: 'UDP', port: 53 });
    assert.deepEqual(parseFlowSpec('icmp'), { protocol: 'ICMP' });
    assert.throws(() => parseFlowSpec('80'), (e: Error) => e instanceof UserError && /PORT\/PROTOCOL/.test(e.message));
    assert.throws(() => parseFlowSpec('70000/TCP'), UserError);
  });
  it('resolves pods, nodes and addresses, in one family', () => {
    const e = resolveEnds(s, 'shop/frontend', 'data/db');
    assert.equal(e.src.address, '10.0.1.1');
    assert.equal(e.dst.kind, 'pod');
    const six = resolveEnds(s, 'shop/frontend', 'shop/api', 6);
    assert.equal(six.dst.address, 'fd00::2:1');
    const byAddr = resolveEnds(s, 'fd00::1:1', 'shop/api');
    assert.equal(byAddr.family, 6);
    assert.equal(byAddr.src.kind, 'pod', 'an address of a pod is that pod');
    assert.equal(resolveEnds(s, 'n1', 'shop/api').src.kind, 'node');
    assert.equal(resolveEnds(s, '203.0.113.9', 'shop/api').src.kind, 'address');
  });
  it('rejects what it cannot resolve, naming what exists', () => {
    assert.throws(() => resolveEnds(s, 'shop/nope', 'data/db'), (e: Error) => e instanceof UserError && /no pod shop\/nope.*shop\/frontend/.test(e.message));
    assert.throws(() => resolveEnds(s, 'nope', 'data/db'), (e: Error) => e instanceof UserError && /n1, n2, n3/.test(e.message));
    assert.throws(() => resolveEnds(s, 'shop/frontend', 'data/db', 6), (e: Error) => e instanceof UserError && /data\/db has no IPv6 address/.test(e.message));
    assert.throws(() => resolveEnds(s, '10.0.1.1', 'fd00::2:1'), (e: Error) => e instanceof UserError && /different address families/.test(e.message));
  });
});

describe('policy explain: the trace text', () => {
  const s = snap(withObjects(INPUT, POLICIES));
  const trace = (src: string, dst: string, flow: string): { lines: string[]; allowed: boolean } => {
    const e = resolveEnds(s, src, dst);
    const f = { src: e.src, dst: e.dst, ...parseFlowSpec(flow) };
    const v = evaluate(s, f);
    return { lines: traceLines(s, f, v), allowed: v.allowed };
  };
  it('a blocked flow names the isolating policy and why each rule missed', () => {
    const t = trace('shop/frontend', 'data/db', '5432/TCP');
    assert.equal(t.allowed, false);
    assert.match(t.lines[0] as string, /^TCP port 5432 from shop\/frontend \(10\.0\.1\.1 on n1\) to data\/db \(10\.0\.3\.1 on n3\): BLOCKED$/);
    assert.match(t.lines[1] as string, /egress from shop\/frontend: allowed — no NetworkPolicy selects shop\/frontend for egress/);
    assert.match(t.lines[2] as string, /ingress to data\/db: BLOCKED — isolated by data\/db-from-api/);
    assert.match(t.lines[3] as string, /data\/db-from-api ingress\[0\]: from \[pods \[app=api\] in namespaces \[team=shop\]\] does not include shop\/frontend/);
  });
  it('an allowed flow names the rule that allowed it, with its text', () => {
    const t = trace('shop/api', 'data/db', '5432/TCP');
    assert.equal(t.allowed, true);
    assert.match(t.lines.join('\n'), /allowed by NetworkPolicy data\/db-from-api ingress\[0\] \(from pods \[app=api\] in namespaces \[team=shop\], on pg\/TCP\)/);
  });
  it('a cluster policy deny is named with its priority', () => {
    const s2 = snap(
      withObjects(
        INPUT,
        `apiVersion: weft.io/v1
kind: WeftClusterPolicy
metadata: {name: no-frontend-to-db}
spec:
  priority: 10
  subject: {pods: {podSelector: {matchLabels: {tier: frontend}}}}
  egress:
  - {name: never-db, action: Deny, to: [{pods: {podSelector: {matchLabels: {tier: db}}}}]}
`,
      ),
    );
    const e = resolveEnds(s2, 'shop/frontend', 'data/db');
    const f = { ...e, protocol: 'TCP' as const, port: 5432 };
    const lines = traceLines(s2, f, evaluate(s2, f));
    assert.match(lines[1] as string, /egress from shop\/frontend: BLOCKED by WeftClusterPolicy no-frontend-to-db \(priority 10\) egress\[0\] "never-db": Deny to pods \[tier=db\] in all namespaces, on any port/);
  });
  it('the node reaching its own pod is allowed and says why', () => {
    const t = trace('n3', 'data/db', '5432/TCP');
    assert.equal(t.allowed, true);
    assert.match(t.lines.join('\n'), /a node always reaches its own pods/);
  });
});

describe('policy explain: matrix and diff', () => {
  it('the evaluated matrix has a cell per pair that shares the family', () => {
    const s = snap(withObjects(INPUT, POLICIES));
    const cells = evaluatedMatrix(s, [{ protocol: 'TCP', port: 5432, family: 4 }, { protocol: 'TCP', port: 8080, family: 6 }]);
    assert.equal(cells.filter((c) => c.family === 4).length, 9);
    assert.equal(cells.filter((c) => c.family === 6).length, 4, 'db has no IPv6 address');
    assert.deepEqual(cells.filter((c) => c.to === 'data/db' && !c.allowed && c.from !== 'data/db').map((c) => c.from), ['shop/frontend']);
  });

  it('segments: the verdict is the same at every port of a segment (property)', () => {
    const s = snap(
      withObjects(
        INPUT,
        `${POLICIES}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ranges, namespace: shop}
spec:
  podSelector: {matchLabels: {app: frontend}}
  ingress:
  - ports: [{port: 1000, endPort: 2000}, {port: http}, {port: 9, protocol: UDP}]
`,
      ),
    );
    const segs = portSegments([s], 'TCP');
    assert.ok(segs.some(([lo, hi]) => lo === 1000 && hi === 2000));
    assert.equal(segs[0]?.[0], 1);
    assert.equal(segs[segs.length - 1]?.[1], 65535);
    const pairs = [...s.endpoints.flatMap((a) => s.endpoints.map((b) => [a, b] as const))];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: pairs.length - 1 }), fc.integer({ min: 1, max: 65535 }), (i, port) => {
        const [a, b] = pairs[i] as (typeof pairs)[number];
        const seg = segs.find(([lo, hi]) => port >= lo && port <= hi) as [number, number];
        const at = (p: number): boolean => evaluate(s, { src: hostOf(s, a.addresses[0] as string), dst: hostOf(s, b.addresses[0] as string), protocol: 'TCP', port: p }).allowed;
        return at(port) === at(seg[0]);
      }),
      { numRuns: 500 },
    );
  });

  it('diff: the policies of the classic case close exactly the flows they should', () => {
    const before = snap(INPUT);
    const after = snap(withObjects(INPUT, POLICIES));
    const changes = flowDiff(before, after);
    assert.ok(changes.every((c) => c.change === 'closes'));
    const byPair = new Map(changes.map((c) => [`${c.from} -> ${c.to}`, c]));
    // db admits only api on pg (5432): frontend loses everything to db; api keeps 5432.
    assert.deepEqual(byPair.get('shop/frontend -> data/db')?.what, ['TCP all ports', 'UDP all ports', 'SCTP all ports', 'ICMP']);
    assert.deepEqual(byPair.get('shop/api -> data/db')?.what, ['TCP 1-5431, 5433-65535', 'UDP all ports', 'SCTP all ports', 'ICMP']);
    assert.deepEqual(byPair.get('shop/api -> data/db')?.families, [4]);
    // api admits frontend on 8080 over both families, so that pair shows as one IPv4+IPv6 line.
    assert.deepEqual(byPair.get('shop/frontend -> shop/api')?.what, ['TCP 1-8079, 8081-65535', 'UDP all ports', 'SCTP all ports', 'ICMP']);
    assert.deepEqual(byPair.get('shop/frontend -> shop/api')?.families, [4, 6]);
    assert.match(byPair.get('shop/frontend -> data/db')?.reason ?? '', /ingress of data\/db isolated by data\/db-from-api; no rule allows/);
    assert.equal(byPair.has('data/db -> shop/frontend'), false, 'frontend is not isolated');
    // Deleting them again opens the same flows.
    const back = flowDiff(after, snap(withChanges(withObjects(INPUT, POLICIES), parseManifests(POLICIES, 't'), 'delete').input));
    assert.deepEqual(back.map((c) => [c.from, c.to, c.what]).sort(), changes.map((c) => [c.from, c.to, c.what]).sort());
    assert.ok(back.every((c) => c.change === 'opens'));
  });

  it('diff: pods alike in everything but their address are told apart by an ipBlock', () => {
    const twin = { ...INPUT, pods: [...INPUT.pods, pod('shop', 'api-2', ['10.0.2.2', 'fd00::2:2'], { app: 'api' }, 'n2', [['http', 8080]])] };
    const d = flowDiff(
      snap(twin),
      snap(withObjects(twin, 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: only-api-1, namespace: data}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.2.1/32}}]}]\n')),
    );
    assert.deepEqual(d.map((c) => `${c.from} ${c.what.join(',')}`).sort(), ['shop/api-2 TCP all ports,UDP all ports,SCTP all ports,ICMP', 'shop/frontend TCP all ports,UDP all ports,SCTP all ports,ICMP']);
  });

  it('diff: no change, no flows; a namespace relabel is seen', () => {
    const s = snap(withObjects(INPUT, POLICIES));
    assert.deepEqual(flowDiff(s, s), []);
    const relabeled = snap(withObjects(withObjects(INPUT, POLICIES), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: other}}\n'));
    const d = flowDiff(s, relabeled);
    assert.deepEqual(d.map((c) => `${c.change} ${c.from} -> ${c.to} ${c.what.join(',')}`), ['closes shop/api -> data/db TCP 5432']);
  });

  it('what-if: ignores kinds policy does not read', () => {
    const r = withChanges(INPUT, parseManifests('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n', 't'), 'apply');
    assert.equal(r.ignored.length, 1);
    assert.deepEqual(r.input.policies, []);
  });
});

describe('policy explain: diff by classes equals the brute force (property)', () => {
  const NS = ['x', 'y', 'z'];
  const PODS = NS.flatMap((n) => ['a', 'b', 'c'].map((p) => `${n}/${p}`));
  const addrs = (i: number): string[] => [`10.244.${(i % 2) + 1}.${10 + i}`, `fd00:244:${(i % 2) + 1}::${10 + i}`];
  const ctx: GenContext = { namespaces: NS, pods: PODS, ranges: ['10.244.0.0/16', '10.244.1.0/24', 'fd00:244::/48', 'fd00:244:1::/64'], podAddresses: Object.fromEntries(PODS.map((p, i) => [p, addrs(i)])) };
  const snapOf = (sc: Scenario): Snapshot =>
    snap({
      namespaces: NS.map((n) => ns(n, sc.nsLabels[n] ?? {})),
      pods: PODS.map((p, i) => {
        const [namespace, name] = p.split('/') as [string, string];
        return pod(namespace, name, i === 8 ? [addrs(i)[0] as string] : addrs(i), sc.podLabels[p] ?? {}, `n${i % 2}`, [['web', namespace === 'z' ? 81 : 80]]);
      }),
      weftEndpoints: [],
      policies: sc.objects.filter((o) => o.kind === 'NetworkPolicy') as NetworkPolicyObject[],
      clusterPolicies: sc.objects.filter((o) => o.kind === 'WeftClusterPolicy') as WeftClusterPolicyObject[],
      nodes: [],
    });

  /** Every pair, family, protocol and global segment, evaluated one by one. */
  type Ranges = Map<string, Array<[number, number]>>;
  const add = (m: Ranges, key: string, r: [number, number]): void => {
    m.set(key, [...(m.get(key) ?? []), r]);
  };
  /** Sorted, adjacent ranges joined: equal port sets give equal text. */
  const normal = (m: Ranges): Record<string, string> =>
    Object.fromEntries(
      [...m.entries()].sort(([x], [y]) => (x < y ? -1 : 1)).map(([k, rs]) => {
        const out: Array<[number, number]> = [];
        for (const [lo, hi] of [...rs].sort((x, y) => x[0] - y[0])) {
          const last = out[out.length - 1];
          if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
          else out.push([lo, hi]);
        }
        return [k, JSON.stringify(out)];
      }),
    );

  function brute(a: Snapshot, b: Snapshot): Ranges {
    const out: Ranges = new Map();
    for (const x of a.endpoints) {
      for (const y of a.endpoints) {
        if (x === y) continue;
        for (const family of [4, 6] as const) {
          const sa = x.addresses.find((z) => z.includes(':') === (family === 6));
          const da = y.addresses.find((z) => z.includes(':') === (family === 6));
          if (!sa || !da) continue;
          const cases: Array<{ protocol: 'TCP' | 'UDP' | 'SCTP' | 'ICMP'; seg?: [number, number] }> = [
            ...(['TCP', 'UDP', 'SCTP'] as const).flatMap((protocol) => portSegments([a, b], protocol).map((seg) => ({ protocol, seg }))),
            { protocol: 'ICMP' },
          ];
          for (const c of cases) {
            const flow = (s: Snapshot): Parameters<typeof evaluate>[1] => ({ src: hostOf(s, sa), dst: hostOf(s, da), protocol: c.protocol, ...(c.seg ? { port: c.seg[0] } : {}) });
            const v0 = evaluate(a, flow(a)).allowed;
            const v1 = evaluate(b, flow(b)).allowed;
            if (v0 !== v1) add(out, `${x.namespace}/${x.name}>${y.namespace}/${y.name}|${family}|${c.protocol}|${v1 ? 'opens' : 'closes'}`, c.seg ?? [0, 0]);
          }
        }
      }
    }
    return out;
  }

  /** The same set, read back from flowDiff's grouped text. */
  function fromDiff(changes: ReturnType<typeof flowDiff>): Ranges {
    const out: Ranges = new Map();
    for (const c of changes) {
      for (const w of c.what) {
        const [protocol, ...rest] = w.split(' ');
        const text = rest.join(' ');
        const ranges: Array<[number, number]> = protocol === 'ICMP' ? [[0, 0]] : text === 'all ports' ? [[1, 65535]] : text.split(', ').map((r) => (r.includes('-') ? (r.split('-').map(Number) as [number, number]) : [Number(r), Number(r)]));
        for (const f of c.families) for (const r of ranges) add(out, `${c.from}>${c.to}|${f}|${protocol}|${c.change}`, r);
      }
    }
    return out;
  }

  it('every changed flow, and no other, for generated before/after pairs', () => {
    fc.assert(
      fc.property(scenarioArb(ctx), scenarioArb(ctx), fc.boolean(), (s0, s1, sameLabels) => {
        // Half the runs change only the policies: labels equal, so classes of alike pods form.
        const a = snapOf(s0);
        const b = snapOf(sameLabels ? { ...s1, nsLabels: s0.nsLabels, podLabels: s0.podLabels } : s1);
        assert.deepEqual(normal(fromDiff(flowDiff(a, b))), normal(brute(a, b)));
      }),
      { numRuns: 60 },
    );
  });
});
