import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getHealth } from '../../src/agent/health-client.js';
import { withLabStore } from '../../src/lab/lab.js';
import { nsLabel, podDelete, podLabel, type Family, type Matrix } from '../../src/lab/lab-pods.js';
import type { LabState } from '../../src/lab/lab-state.js';
import { evaluate, hostOf } from '../../src/policy/evaluate.js';
import { readSnapshot } from '../../src/policy/load.js';
import { privilegedSkip } from '../helpers/env.js';
import { startLab, type TestLab } from '../helpers/lab.js';
import { Reach, confirmBlocked, renderGrid, setPolicies } from '../helpers/reachability.js';
import { tcpRequest, udpFromPort } from '../helpers/tcp.js';
import { ping } from '../helpers/env.js';
import { npYaml, wcpYaml } from '../helpers/policy-yaml.js';

/**
 * NetworkPolicy conformance in a two-node lab, modelled on upstream's netpol e2e: namespaces
 * x, y, z, pods a, b, c in each, TCP and UDP on ports 80 and 81, pods spread over both nodes.
 * Each case states its full expected matrix (Reach); the suite probes every cell through the
 * real datapath AND asks the evaluator, and both must equal the expectation.
 *
 * Named ports differ per namespace on purpose: "web" is 80/TCP on x and y pods, 81/TCP on z's.
 */
const skip = privilegedSkip();
const NAMESPACES = ['x', 'y', 'z'];
const PODS = NAMESPACES.flatMap((ns) => ['a', 'b', 'c'].map((p) => `${ns}/${p}`));
const CASES = [80, 81].flatMap((port) => (['TCP', 'UDP'] as const).map((protocol) => ({ port, protocol })));
type Case = { port: number; protocol: 'TCP' | 'UDP'; family: Family };

interface Ctx {
  state: LabState;
  addr(pod: string, family: Family): string;
  nodeOf(pod: string): string;
  block(node: string, family: Family): string;
}

function portsFor(ns: string): Array<{ name: string; port: number; protocol: 'TCP' | 'UDP' }> {
  return ns === 'z'
    ? [
        { name: 'serve-80-tcp', port: 80, protocol: 'TCP' },
        { name: 'serve-80-udp', port: 80, protocol: 'UDP' },
        { name: 'web', port: 81, protocol: 'TCP' },
        { name: 'serve-81-udp', port: 81, protocol: 'UDP' },
      ]
    : [
        { name: 'web', port: 80, protocol: 'TCP' },
        { name: 'serve-80-udp', port: 80, protocol: 'UDP' },
        { name: 'serve-81-tcp', port: 81, protocol: 'TCP' },
        { name: 'serve-81-udp', port: 81, protocol: 'UDP' },
      ];
}

const np = npYaml;
const wcp = wcpYaml;

let lab: TestLab;
let ctx: Ctx;

/** Probes the full matrix and evaluates every cell; returns a readable report of mismatches. */
async function check(title: string, expect: (r: Reach, c: Case) => void, families: Family[] = [4]): Promise<void> {
  const m: Matrix = await lab.matrix({ ports: [80, 81], protocols: ['TCP', 'UDP'], families, timeoutMs: 1000 });
  const expected = new Map<string, Reach>();
  const want = (c: Case): Reach => {
    const key = `${c.port}/${c.protocol}/${c.family}`;
    let r = expected.get(key);
    if (!r) {
      r = new Reach(PODS);
      expect(r, c);
      expected.set(key, r);
    }
    return r;
  };
  const probed = await confirmBlocked(lab.name, m, (from, to, c) => want(c as Case).get(from, to));
  const { snapshot } = await withLabStore(ctx.state, (s) => readSnapshot(s));
  const problems: string[] = [];
  for (const c of CASES.flatMap((x) => families.map((family) => ({ ...x, family })))) {
    const r = want(c);
    const cells = new Map(probed.results.filter((x) => x.port === c.port && x.protocol === c.protocol && x.family === c.family).map((x) => [`${x.from}>${x.to}`, x.ok]));
    const bad: string[] = [];
    const grid = renderGrid(PODS, (a, b) => {
      const exp = r.get(a, b);
      const got = cells.get(`${a}>${b}`);
      const ev = evaluate(snapshot, { src: hostOf(snapshot, ctx.addr(a, c.family)), dst: hostOf(snapshot, ctx.addr(b, c.family)), protocol: c.protocol, port: c.port }).allowed;
      if (got !== exp || ev !== exp) {
        bad.push(`${a} → ${b}: expected ${exp ? 'allowed' : 'blocked'}, probed ${got ? 'allowed' : 'blocked'}, evaluator ${ev ? 'allowed' : 'blocked'}`);
        return got !== exp ? (got ? '!.' : '!X') : ev ? '?.' : '?X';
      }
      return exp ? '.' : 'X';
    });
    if (bad.length) problems.push(`${c.protocol}/${c.port} IPv${c.family} (!: the kernel differs, ?: the evaluator differs)\n${grid}\n${bad.join('\n')}`);
  }
  assert.equal(problems.length, 0, `${title}\n${problems.join('\n\n')}`);
}

interface ConformanceCase {
  name: string;
  policies: (c: Ctx) => string;
  expect: (r: Reach, c: Case) => void;
  families?: Family[];
}

const cases: ConformanceCase[] = [
  { name: 'no policy: every pod reaches every pod', policies: () => '', expect: () => undefined, families: [4, 6] },
  {
    name: 'deny all ingress isolates every pod of the namespace, for ingress only',
    policies: () => np('x', 'deny-ingress', 'podSelector: {}'),
    expect: (r) => r.set('*', 'x/*', false).loopback(),
    families: [4, 6],
  },
  {
    name: 'deny all egress: policyTypes [Egress] without rules',
    policies: () => np('x', 'deny-egress', 'podSelector: {}\npolicyTypes: [Egress]'),
    expect: (r) => r.set('x/*', '*', false).loopback(),
  },
  {
    name: 'policyTypes [Ingress, Egress] without rules denies both ways',
    policies: () => np('x', 'deny-both', 'podSelector: {}\npolicyTypes: [Ingress, Egress]'),
    expect: (r) => r.set('x/*', '*', false).set('*', 'x/*', false).loopback(),
  },
  {
    name: '`egress: []` without policyTypes does not isolate egress (inference counts rules)',
    policies: () => np('x', 'p', 'podSelector: {}\ningress: [{}]\negress: []'),
    expect: () => undefined,
  },
  {
    name: 'a podSelector peer alone means pods of the policy namespace',
    policies: () => np('x', 'same-ns', 'podSelector: {}\ningress: [{from: [{podSelector: {}}]}]'),
    expect: (r) => r.set('y/*', 'x/*', false).set('z/*', 'x/*', false),
  },
  {
    name: 'namespaceSelector peer: all pods of the selected namespaces',
    policies: () => np('x', 'from-y', 'podSelector: {}\ningress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [y]}]}}]}]'),
    expect: (r) => r.set('*', 'x/*', false).set('y/*', 'x/*', true).loopback(),
  },
  {
    name: 'namespaceSelector AND podSelector in one peer',
    policies: () => np('x', 'and', 'podSelector: {matchLabels: {pod: a}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {ns: y}}\n    podSelector: {matchLabels: {pod: b}}'),
    expect: (r) => r.set('*', 'x/a', false).set('y/b', 'x/a', true).loopback(),
  },
  {
    name: 'namespaceSelector OR podSelector as two peers',
    policies: () => np('x', 'or', 'podSelector: {matchLabels: {pod: a}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {ns: y}}\n  - podSelector: {matchLabels: {pod: b}}'),
    expect: (r) => r.set('*', 'x/a', false).set('y/*', 'x/a', true).set('x/b', 'x/a', true).loopback(),
  },
  {
    name: 'empty namespaceSelector with a podSelector: that pod in every namespace',
    policies: () => np('x', 'c-anywhere', 'podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: c}}}]}]'),
    expect: (r) => r.set('*', 'x/a', false).set('*/c', 'x/a', true).loopback(),
  },
  {
    name: 'matchExpressions: NotIn, In, Exists, DoesNotExist',
    policies: () =>
      np('z', 'exprs', 'podSelector: {matchExpressions: [{key: pod, operator: Exists}, {key: tier, operator: DoesNotExist}]}\ningress:\n- from:\n  - namespaceSelector: {matchExpressions: [{key: ns, operator: In, values: [x, z]}]}\n    podSelector: {matchExpressions: [{key: pod, operator: NotIn, values: [a]}]}'),
    expect: (r) => r.set('*', 'z/*', false).set('x/b', 'z/*', true).set('x/c', 'z/*', true).set('z/b', 'z/*', true).set('z/c', 'z/*', true).loopback(),
  },
  {
    name: 'a numeric port without protocol means TCP',
    policies: () => np('x', 'tcp80', 'podSelector: {}\ningress: [{ports: [{port: 80}]}]'),
    expect: (r, c) => (c.port === 80 && c.protocol === 'TCP' ? undefined : void r.set('*', 'x/*', false).loopback()),
    families: [4, 6],
  },
  {
    name: 'an explicit UDP port',
    policies: () => np('x', 'udp80', 'podSelector: {}\ningress: [{ports: [{port: 80, protocol: UDP}]}]'),
    expect: (r, c) => (c.port === 80 && c.protocol === 'UDP' ? undefined : void r.set('*', 'x/*', false).loopback()),
  },
  {
    name: 'a named port resolves on each destination pod (web is 80 in x, 81 in z)',
    policies: () => np('x', 'web', 'podSelector: {}\ningress: [{ports: [{port: web}]}]') + np('z', 'web', 'podSelector: {}\ningress: [{ports: [{port: web}]}]'),
    expect: (r, c) => {
      if (!(c.port === 80 && c.protocol === 'TCP')) r.set('*', 'x/*', false);
      if (!(c.port === 81 && c.protocol === 'TCP')) r.set('*', 'z/*', false);
      r.loopback();
    },
    families: [4, 6],
  },
  {
    name: 'a named UDP port',
    policies: () => np('x', 'dns', 'podSelector: {}\ningress: [{ports: [{port: serve-81-udp, protocol: UDP}]}]'),
    expect: (r, c) => (c.port === 81 && c.protocol === 'UDP' ? undefined : void r.set('*', 'x/*', false).loopback()),
  },
  {
    name: 'endPort: a TCP range 80-81',
    policies: () => np('x', 'range', 'podSelector: {}\ningress: [{ports: [{port: 80, endPort: 81}]}]'),
    expect: (r, c) => (c.protocol === 'TCP' ? undefined : void r.set('*', 'x/*', false).loopback()),
  },
  {
    name: 'endPort equal to port is that port alone',
    policies: () => np('x', 'range', 'podSelector: {}\ningress: [{ports: [{port: 81, endPort: 81, protocol: UDP}]}]'),
    expect: (r, c) => (c.protocol === 'UDP' && c.port === 81 ? undefined : void r.set('*', 'x/*', false).loopback()),
  },
  {
    name: 'SCTP only: TCP and UDP are denied',
    policies: () => np('x', 'sctp', 'podSelector: {}\ningress: [{ports: [{protocol: SCTP}]}]'),
    expect: (r) => r.set('*', 'x/*', false).loopback(),
  },
  {
    name: "ipBlock: node-2's pod block except one pod, by address (pods included)",
    policies: (c) => {
      const excepted = PODS.find((p) => c.nodeOf(p) === 'node-2' && p.startsWith('y/')) as string;
      return np('x', 'block', `podSelector: {}\ningress: [{from: [{ipBlock: {cidr: "${c.block('node-2', 4)}", except: ["${c.addr(excepted, 4)}/32"]}}]}]`);
    },
    expect: (r) => {
      r.set('*', 'x/*', false);
      const excepted = PODS.find((p) => ctx.nodeOf(p) === 'node-2' && p.startsWith('y/'));
      for (const p of PODS) if (ctx.nodeOf(p) === 'node-2' && p !== excepted) r.set(p, 'x/*', true);
      r.loopback();
    },
  },
  {
    name: 'ipBlock in IPv6: one family allowed, the other not',
    policies: (c) => np('x', 'block6', `podSelector: {}\ningress: [{from: [{ipBlock: {cidr: "${c.block('node-1', 6)}"}}]}]`),
    expect: (r, c) => {
      r.set('*', 'x/*', false);
      if (c.family === 6) for (const p of PODS) if (ctx.nodeOf(p) === 'node-1') r.set(p, 'x/*', true);
      r.loopback();
    },
    families: [4, 6],
  },
  {
    name: 'egress to one address (/32) only',
    policies: (c) => np('x', 'to-zc', `podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress: [{to: [{ipBlock: {cidr: ${c.addr('z/c', 4)}/32}}]}]`),
    expect: (r, c) => {
      r.set('x/a', '*', false);
      if (c.family === 4) r.set('x/a', 'z/c', true);
      r.loopback();
    },
    families: [4, 6],
  },
  {
    name: 'egress with a named port resolves on the destination',
    policies: () => np('y', 'web-out', 'podSelector: {}\npolicyTypes: [Egress]\negress: [{ports: [{port: web}]}]'),
    expect: (r, c) => {
      if (!(c.protocol === 'TCP' && c.port === 80)) r.set('y/*', 'x/*', false).set('y/*', 'y/*', false);
      if (!(c.protocol === 'TCP' && c.port === 81)) r.set('y/*', 'z/*', false);
      r.loopback();
    },
  },
  {
    name: "a connection needs the source's egress AND the destination's ingress",
    policies: () => np('x', 'out-to-z', 'podSelector: {}\npolicyTypes: [Egress]\negress: [{to: [{namespaceSelector: {matchLabels: {ns: z}}}]}]') + np('z', 'in-from-y', 'podSelector: {}\ningress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]'),
    expect: (r) => r.set('x/*', '*', false).set('*', 'z/*', false).set('y/*', 'z/*', true).loopback(),
  },
  {
    name: 'a rule with ports but no peers, and a rule with peers but no ports',
    policies: () => np('x', 'mixed', 'podSelector: {matchLabels: {pod: a}}\ningress:\n- ports: [{port: 81}]\n- from: [{podSelector: {matchLabels: {pod: b}}}]'),
    expect: (r, c) => (c.port === 81 && c.protocol === 'TCP' ? undefined : void r.set('*', 'x/a', false).set('x/b', 'x/a', true).loopback()),
  },
  {
    name: 'policies are a union: an empty rule allows all, next to a deny-all',
    policies: () => np('x', 'deny', 'podSelector: {}') + np('x', 'open-a', 'podSelector: {matchLabels: {pod: a}}\ningress: [{}]'),
    expect: (r) => r.set('*', 'x/b', false).set('*', 'x/c', false).loopback(),
  },
  {
    name: 'policies are a union across rules and policies',
    policies: () => np('y', 'deny', 'podSelector: {}') + np('y', 'a-from-x', 'podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {matchLabels: {ns: x}}}]}]') + np('y', 'b-81', 'podSelector: {matchLabels: {pod: b}}\ningress: [{ports: [{port: 81, protocol: UDP}]}]'),
    expect: (r, c) => {
      r.set('*', 'y/*', false).set('x/*', 'y/a', true);
      if (c.port === 81 && c.protocol === 'UDP') r.set('*', 'y/b', true);
      r.loopback();
    },
  },
  {
    name: 'WeftClusterPolicy: Deny wins over a NetworkPolicy that allows',
    policies: () => np('z', 'allow-all', 'podSelector: {}\ningress: [{}]') + wcp('no-x-to-z', 'priority: 10\nsubject: {namespaces: {matchLabels: {ns: z}}}\ningress: [{name: not-from-x, action: Deny, from: [{namespaces: {matchLabels: {ns: x}}}]}]'),
    expect: (r) => r.set('x/*', 'z/*', false),
  },
  {
    name: 'WeftClusterPolicy: priority order, Allow over isolation, Pass to NetworkPolicies',
    policies: () =>
      np('y', 'from-x-z', 'podSelector: {}\ningress: [{from: [{namespaceSelector: {matchExpressions: [{key: ns, operator: In, values: [x, z]}]}}]}]') +
      wcp('pass-z', 'priority: 1\nsubject: {namespaces: {matchLabels: {ns: y}}}\ningress: [{action: Pass, from: [{namespaces: {matchLabels: {ns: z}}}]}]') +
      wcp('allow-a-80', 'priority: 5\nsubject: {namespaces: {matchLabels: {ns: y}}}\ningress: [{action: Allow, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {pod: a}}}}], ports: [{portNumber: {port: 80, protocol: TCP}}]}]') +
      wcp('deny-x-z', 'priority: 10\nsubject: {namespaces: {matchLabels: {ns: y}}}\ningress: [{action: Deny, from: [{namespaces: {matchExpressions: [{key: ns, operator: In, values: [x, z]}]}}]}]'),
    expect: (r, c) => {
      r.set('*', 'y/*', false).set('z/*', 'y/*', true);
      if (c.port === 80 && c.protocol === 'TCP') r.set('x/a', 'y/*', true).set('y/a', 'y/*', true);
      r.loopback();
    },
  },
  {
    name: 'WeftClusterPolicy egress with a named port (any protocol)',
    policies: () => wcp('x-no-web', 'priority: 3\nsubject: {pods: {namespaceSelector: {matchLabels: {ns: x}}, podSelector: {}}}\negress: [{action: Deny, to: [{namespaces: {}}], ports: [{namedPort: web}]}]'),
    expect: (r, c) => {
      if (c.port === 80 && c.protocol === 'TCP') r.set('x/*', 'x/*', false).set('x/*', 'y/*', false);
      if (c.port === 81 && c.protocol === 'TCP') r.set('x/*', 'z/*', false);
      r.loopback();
    },
  },
];

// On etcd over VXLAN, and on the Kubernetes API (the stand-in) with the nodes' pod traffic
// encrypted by WireGuard: policy must mean the same over either store, and over decrypted
// traffic exactly as over VXLAN's.
const RUNS = [
  { datastore: 'etcd', encryption: undefined },
  { datastore: 'kubernetes', encryption: 'wireguard' },
] as const;
for (const { datastore, encryption } of RUNS) describe(`NetworkPolicy conformance on ${datastore}${encryption ? `, encrypted by ${encryption}` : ''} (two-node lab, x/y/z × a/b/c, TCP/UDP 80/81)`, { skip, timeout: 15 * 60_000 }, () => {
  before(async () => {
    lab = await startLab({ nodes: 2, backend: 'vxlan', datastore, ...(encryption ? { encryption } : {}) });
    for (const ns of NAMESPACES) await lab.ns(ns, { ns });
    for (const [i, p] of PODS.entries()) {
      const [ns, name] = p.split('/') as [string, string];
      await lab.pod({ namespace: ns, name, node: `node-${(i % 2) + 1}`, labels: { pod: name }, ports: portsFor(ns) });
    }
    const blocks = new Map<string, string[]>();
    for (const n of lab.state().nodes) blocks.set(n.name, (await getHealth(n.socket)).cluster?.blocks ?? []);
    ctx = {
      state: lab.state(),
      addr: (pod, family) => {
        const p = lab.state().pods.find((x) => `${x.namespace}/${x.name}` === pod);
        return p?.addresses.find((a) => a.includes(':') === (family === 6)) ?? pod;
      },
      nodeOf: (pod) => lab.state().pods.find((x) => `${x.namespace}/${x.name}` === pod)?.node ?? '',
      block: (node, family) => blocks.get(node)?.find((b) => b.includes(':') === (family === 6)) ?? '',
    };
  });
  after(async () => {
    await lab?.down();
  });

  for (const c of cases) {
    it(c.name, async () => {
      await setPolicies(ctx.state, c.policies(ctx));
      await check(c.name, c.expect, c.families);
    });
  }

  it('sequence: pod labels move pods into and out of a selector', async () => {
    await setPolicies(ctx.state, np('x', 'from-b', 'podSelector: {}\ningress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]'));
    await check('step 1: only x/b reaches x', (r) => r.set('*', 'x/*', false).set('x/b', 'x/*', true).loopback());
    await podLabel(lab.name, { namespace: 'x', name: 'c' }, { pod: 'b' }, []);
    await check('step 2: x/c labelled pod=b joins', (r) => r.set('*', 'x/*', false).set('x/b', 'x/*', true).set('x/c', 'x/*', true).loopback());
    await podLabel(lab.name, { namespace: 'x', name: 'c' }, { pod: 'c' }, []);
    await check('step 3: and leaves again', (r) => r.set('*', 'x/*', false).set('x/b', 'x/*', true).loopback());
  });

  it('sequence: namespace labels move a namespace into and out of a selector', async () => {
    await setPolicies(ctx.state, np('x', 'from-blue', 'podSelector: {}\ningress: [{from: [{namespaceSelector: {matchLabels: {team: blue}}}]}]'));
    await check('step 1: no namespace is blue', (r) => r.set('*', 'x/*', false).loopback());
    await nsLabel(lab.name, 'y', { team: 'blue' }, []);
    await check('step 2: y is blue', (r) => r.set('*', 'x/*', false).set('y/*', 'x/*', true).loopback());
    await nsLabel(lab.name, 'y', {}, ['team']);
    await check('step 3: y is not blue any more', (r) => r.set('*', 'x/*', false).loopback());
  });

  it('sequence: a policy created, updated, deleted', async () => {
    await setPolicies(ctx.state, np('x', 'p', 'podSelector: {}\ningress: [{ports: [{port: 80}]}]'));
    await check('created: TCP 80 only', (r, c) => (c.port === 80 && c.protocol === 'TCP' ? undefined : void r.set('*', 'x/*', false).loopback()));
    await setPolicies(ctx.state, np('x', 'p', 'podSelector: {}\ningress: [{ports: [{port: 81}]}]'));
    await check('updated: TCP 81 only', (r, c) => (c.port === 81 && c.protocol === 'TCP' ? undefined : void r.set('*', 'x/*', false).loopback()));
    await setPolicies(ctx.state, '');
    await check('deleted: all open', () => undefined);
  });

  it('a new pod is isolated from its first packet, and a peer as soon as it exists; a reused address carries no old identity', async () => {
    await setPolicies(ctx.state, np('x', 'from-y-b', 'podSelector: {}\ningress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]}]'));
    const d = await lab.pod({ namespace: 'x', name: 'd', labels: { pod: 'd' }, node: 'node-1', ports: portsFor('x') });
    const target = d.addresses.find((a) => !a.includes(':')) as string;
    // The first probes after the ADD returned: y/a must never get through, y/b must.
    const [fromA, fromB] = await Promise.all([lab.probe('y/a', target, 80, 'TCP'), lab.probe('y/b', target, 80, 'TCP')]);
    assert.equal(fromA.ok, false, 'y/a reached the new pod');
    assert.equal(fromB.ok, true, `y/b did not reach the new pod: ${fromB.error}`);
    // A new pod labelled like an allowed peer is allowed at once, wherever it runs.
    const e = await lab.pod({ namespace: 'y', name: 'e', labels: { pod: 'b' }, node: 'node-2', ports: portsFor('y') });
    assert.equal((await lab.probe('y/e', target, 80, 'TCP')).ok, true);
    // y/e goes; its address is handed to the next pod on node-2, which is no pod=b.
    const oldAddress = e.addresses.find((a) => !a.includes(':'));
    await podDelete(lab.name, { namespace: 'y', name: 'e' });
    const f = await lab.pod({ namespace: 'y', name: 'f', labels: { pod: 'f' }, node: 'node-2', ports: portsFor('y') });
    const reused = f.addresses.includes(oldAddress as string);
    assert.equal((await lab.probe('y/f', target, 80, 'TCP')).ok, false, `y/f (${reused ? 'on the reused address' : 'on a new address'}) reached x/d`);
    await podDelete(lab.name, { namespace: 'y', name: 'f' });
    await podDelete(lab.name, { namespace: 'x', name: 'd' });
  });

  it('a policy change cuts the tracked connections it no longer allows, and no others', async () => {
    // Allowed by a rule first: conntrack remembers that verdict (the ct mark) for this table.
    await setPolicies(ctx.state, np('x', 'all', 'podSelector: {}\ningress: [{}]'));
    const netnsOf = (pod: string): string => lab.state().pods.find((p) => `${p.namespace}/${p.name}` === pod)?.netns as string;
    // Two UDP "connections" into x/a, each from a fixed source port: one from y/a, one from x/b.
    assert.match(udpFromPort(netnsOf('y/a'), ctx.addr('x/a', 4), 80, 40001), /^x\/a /);
    assert.match(udpFromPort(netnsOf('x/b'), ctx.addr('x/a', 4), 80, 40002), /^x\/a /);
    await setPolicies(ctx.state, np('x', 'same-ns', 'podSelector: {}\ningress: [{from: [{podSelector: {}}]}]'));
    // The new table has a new generation: the remembered verdicts no longer count.
    assert.equal(udpFromPort(netnsOf('y/a'), ctx.addr('x/a', 4), 80, 40001), '', 'the denied connection from y/a kept flowing');
    assert.match(udpFromPort(netnsOf('x/b'), ctx.addr('x/a', 4), 80, 40002), /^x\/a /, 'the still-allowed connection from x/b was disturbed');
    await setPolicies(ctx.state, '');
  });

  it("the node reaches its own pods under deny-all (kubelet probes); another node does not; ICMP needs a rule without ports", async () => {
    await setPolicies(ctx.state, np('x', 'deny', 'podSelector: {}') + np('y', 'tcp80', 'podSelector: {}\ningress: [{ports: [{port: 80}]}]') + np('z', 'from-x', 'podSelector: {}\ningress: [{from: [{namespaceSelector: {matchLabels: {ns: x}}}]}]'));
    const xa = ctx.addr('x/a', 4);
    const own = lab.state().nodes.find((n) => n.name === ctx.nodeOf('x/a'));
    const other = lab.state().nodes.find((n) => n.name !== ctx.nodeOf('x/a'));
    assert.match(tcpRequest(own?.netns as string, xa, 80), /^x\/a /, 'the own node was refused');
    assert.equal(tcpRequest(other?.netns as string, xa, 80), '', 'another node got through a deny-all');
    const netnsOf = (pod: string): string => lab.state().pods.find((p) => `${p.namespace}/${p.name}` === pod)?.netns as string;
    assert.equal(ping(netnsOf('x/b'), ctx.addr('y/a', 4)), false, 'ping passed a rule that only lists TCP 80');
    assert.equal(ping(netnsOf('x/b'), ctx.addr('z/a', 4)), true, 'ping did not pass a rule without ports');
    assert.equal(ping(netnsOf('x/b'), ctx.addr('z/a', 6)), true, 'ping6 did not pass a rule without ports');
    await setPolicies(ctx.state, '');
  });
});
