import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseManifests } from '../model/manifest.js';
import type { NetworkPolicyObject, PodObject, WeftClusterPolicyObject } from '../model/objects.js';
import { CompileCache, compilePolicy, generationInForce, mergeRanges, needsNewGeneration, versionInForce, withGeneration, withVersions } from './compile.js';
import { buildSnapshot } from './from-objects.js';
import { scenarioArb, type GenContext, type Scenario } from '../../test/helpers/policy-gen.js';

/** The compiler's shape guarantees (pure); that its output loads and enforces is tested on the kernel. */
describe('policy compiler (pure)', () => {
  it('mergeRanges keeps exactly the same ports, as sorted disjoint non-adjacent ranges', () => {
    const range = fc.tuple(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 20 })).map(([lo, n]) => [lo, lo + n] as [number, number]);
    fc.assert(
      fc.property(fc.array(range, { minLength: 1, maxLength: 8 }), (list) => {
        const merged = mergeRanges(list);
        const covered = (rs: Array<[number, number]>, p: number): boolean => rs.some(([lo, hi]) => p >= lo && p <= hi);
        for (let p = 1; p <= 221; p++) assert.equal(covered(merged, p), covered(list, p), `port ${p}`);
        merged.forEach(([lo, hi], i) => {
          assert.ok(lo <= hi);
          if (i > 0) assert.ok(lo > (merged[i - 1] as [number, number])[1] + 1);
        });
      }),
    );
  });

  const pods = (n: number): PodObject[] =>
    Array.from({ length: n }, (_, i) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { namespace: 'x', name: `p${i}`, labels: { app: i % 2 ? 'web' : 'db' } },
      spec: { nodeName: i < 2 ? 'me' : 'other', containers: [{ name: 'c' }] },
      status: { podIPs: [{ ip: `10.1.${i >> 8}.${i & 255}` }] },
    }));
  const policies = (n: number): NetworkPolicyObject[] =>
    parseManifests(
      Array.from(
        { length: n },
        (_, j) => `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p${j}, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: db}}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.2.0.0/16]}}]
    ports: [{port: 80}, {port: 8000, endPort: 8100}, {port: 8050, endPort: 8200}]
`,
      ).join(''),
      't',
    ) as NetworkPolicyObject[];
  const table = (nPods: number, nPolicies: number): ReturnType<typeof compilePolicy> =>
    compilePolicy({
      snapshot: buildSnapshot({ namespaces: [], pods: pods(nPods), weftEndpoints: [], policies: policies(nPolicies), clusterPolicies: [], nodes: [] }).snapshot,
      localBlocks: ['10.1.0.0/24'],
      attachments: [{ hostIf: 'w0', addresses: ['10.1.0.0'], endpoint: 'x/p0' }, { hostIf: 'w1', addresses: ['10.1.0.1'], endpoint: 'x/p1' }],
    });

  it('flow recording: drops log before they drop, allowed connections are recorded in the allow chains, no other base chain but the kernel refusals', () => {
    const snapshot = buildSnapshot({ namespaces: [], pods: pods(4), weftEndpoints: [], policies: policies(1), clusterPolicies: [], nodes: [] }).snapshot;
    const input = { snapshot, localBlocks: ['10.1.0.0/24', 'fd00::/64'], attachments: [{ hostIf: 'w0', addresses: ['10.1.0.0'], endpoint: 'x/p0' }, { hostIf: 'w1', addresses: ['10.1.0.1'], endpoint: 'x/p1' }] };
    const on = compilePolicy({ ...input, flows: true });
    const off = compilePolicy(input);
    const chain = (t: typeof on, name: string): string[] | undefined => t.chains.find((c) => c.name === name)?.rules;
    assert.deepEqual(chain(on, 'drop_isolated_in'), ['limit rate 100/second burst 200 packets log prefix "weft drop isolated ingress" group 4710 snaplen 96', 'counter drop']);
    assert.deepEqual(chain(off, 'drop_isolated_in'), ['counter drop']);
    assert.deepEqual(chain(on, 'allow_in')?.slice(0, -1), ['ct state new jump record_new']);
    assert.deepEqual(chain(on, 'allow_out')?.slice(0, -1), ['ct state new ip daddr != @local4 jump record_new', 'ct state new ip6 daddr != @local6 jump record_new']);
    assert.equal(chain(off, 'allow_in')?.length, 1);
    assert.deepEqual(chain(on, 'record_new'), ['limit rate 1000/second burst 2000 packets log prefix "weft new" group 4711 snaplen 96 return', 'counter']);
    assert.equal(chain(off, 'record_new'), undefined);
    // Base chains: the policy's, and with recording only the kernel refusals' on output.
    const hooks = (t: typeof on): string[] => t.chains.filter((c) => c.base).map((c) => c.name).sort();
    assert.deepEqual(hooks(off), ['egress_fwd', 'egress_input', 'ingress_fwd']);
    assert.deepEqual(hooks(on), ['egress_fwd', 'egress_input', 'flows_output', 'ingress_fwd']);
    // x/p0 (db) is selected by no policy: its connections are allowed through the allow chain too.
    const epOut = on.sets.find((x) => x.name === 'ep_out4')?.elements ?? [];
    assert.ok(epOut.includes('"w0" . 10.1.0.0 : goto allow_out'), epOut.join('\n'));
    // A new generation keeps the recording rules.
    assert.deepEqual(chain(withGeneration(on, input.localBlocks, 9), 'allow_in')?.slice(0, -1), ['ct state new jump record_new']);
    assert.equal(chain(withGeneration(off, input.localBlocks, 9), 'allow_in')?.length, 1);
  });

  it('rules grow with policies, not with endpoints; endpoints are set elements', () => {
    const a = table(10, 5);
    const b = table(1000, 5);
    const rules = (t: typeof a): number => t.chains.reduce((n, c) => n + c.rules.length, 0);
    assert.equal(rules(a), rules(b));
    const elements = (t: typeof a): number => t.sets.reduce((n, s) => n + s.elements.length, 0);
    assert.equal(elements(b) - elements(a), (1000 - 10) / 2, 'each added db pod is one element of the peer set');
  });

  it('port and except lists are shared named sets, merged; rules carry no anonymous sets', () => {
    const t = table(10, 50);
    const pt = t.sets.filter((s) => s.name.startsWith('pt_'));
    const ex = t.sets.filter((s) => s.name.startsWith('ex_'));
    assert.deepEqual(pt.map((s) => s.elements), [['80', '8000-8200']]);
    assert.deepEqual(ex.map((s) => s.elements), [['10.1.0.0/16', '10.2.0.0/16']]);
    const anonymous = t.chains.flatMap((c) => c.rules).filter((r) => r.replace(/comment ".*"$/, '').includes('{'));
    assert.deepEqual(anonymous, []);
  });
});

describe('policy compiler: the verdict cache', () => {
  it('a new generation changes only the mark rules; allowing rules go through the marking chains', async () => {
    const { diffScript } = await import('../nftables/ruleset.js');
    const snapshot = buildSnapshot({
      namespaces: [],
      pods: [{ apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'x', name: 'a', labels: { app: 'web' } }, spec: { nodeName: 'me', containers: [{ name: 'c' }] }, status: { podIPs: [{ ip: '10.1.0.2' }] } }],
      weftEndpoints: [],
      policies: parseManifests('apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{podSelector: {}}]}]\n', 't') as NetworkPolicyObject[],
      clusterPolicies: [],
      nodes: [],
    }).snapshot;
    const t = (generation: number): ReturnType<typeof compilePolicy> => compilePolicy({ snapshot, localBlocks: ['10.1.0.0/24'], attachments: [{ hostIf: 'w0', addresses: ['10.1.0.2'], endpoint: 'x/a' }], generation });
    const a = t(7);
    const b = t(0xffff);
    const rules = (x: typeof a, name: string): string[] => x.chains.find((c) => c.name === name)?.rules ?? [];
    assert.ok(rules(a, 'ingress_fwd').includes('ct mark and 0x0000ffff == 0x00000007 accept'));
    assert.deepEqual(rules(b, 'allow_out'), ['ct mark set ct mark and 0x0000ffff or 0xffff0000 accept']);
    assert.ok(a.chains.filter((c) => c.name.startsWith('p_')).every((c) => c.rules.every((r) => !/\baccept\b/.test(r.replace(/comment ".*"$/, '')) && /goto allow_(in|out)/.test(r))));
    const changed = (diffScript(a, b) ?? []).filter((l) => l.startsWith('flush chain')).map((l) => l.split(' ').pop());
    assert.deepEqual(changed.sort(), ['allow_in', 'allow_out', 'egress', 'ingress_fwd']);
    assert.throws(() => t(0), RangeError);
    assert.throws(() => t(0x10000), RangeError);
    // The agent compiles once and swaps the generation in: the same table as compiling with it.
    assert.deepEqual(withGeneration(a, ['10.1.0.0/24'], 0xffff), b);
    assert.throws(() => withGeneration(a, ['10.1.0.0/24'], 0), RangeError);
    // Versions are elements, only ever added between generations: counting up rewrites no rule.
    assert.deepEqual(diffScript(a, withVersions(a, [1, 2])), ['add element inet weft_policy version { 0x00000002 }']);
    assert.deepEqual(withVersions(a, [1, 2]), compilePolicy({ snapshot, localBlocks: ['10.1.0.0/24'], attachments: [{ hostIf: 'w0', addresses: ['10.1.0.2'], endpoint: 'x/a' }], generation: 7, versions: [1, 2] }));
    assert.equal(versionInForce([{ metainfo: {} }, { set: { family: 'inet', name: 'version', table: 'weft_policy', type: 'mark', elem: [3, 9, 4] } }]), 9);
    assert.equal(versionInForce([{ set: { family: 'inet', name: 'version', table: 'weft_policy', type: 'mark' } }]), undefined);
    assert.throws(() => withVersions(a, [0]), RangeError);
  });
});

describe('the generation of a table in force', () => {
  it('is read back from allow_in as nft -j lists it', () => {
    const chain = [{ metainfo: {} }, { chain: { name: 'allow_in' } }, { rule: { chain: 'allow_in', expr: [{ mangle: { key: { ct: { key: 'mark' } }, value: { '|': [{ '&': [{ ct: { key: 'mark' } }, 0xffff64dd] }, 0x64dd] } } }, { accept: null }] } }];
    assert.equal(generationInForce(chain), 0x64dd);
    assert.equal(generationInForce([{ chain: { name: 'allow_in' } }]), undefined);
  });
});

describe('policy compiler: when a change starts a new generation', () => {
  const none = { clusterPolicies: [] };
  const cluster = { clusterPolicies: [{ name: 'c', priority: 1, subject: { namespaces: { matchLabels: {}, matchExpressions: [] }, pods: { matchLabels: {}, matchExpressions: [] } }, ingress: [], egress: [] }] };
  const widening = ['add element inet weft_policy ep_in4 { "w1" . 10.1.0.3 : accept }', 'add element inet weft_policy s_0123456789_4 { 10.1.0.3 }', 'add element inet weft_policy np_http_tcp_6 { fd00::3 . 80 }', 'add element inet weft_policy version { 0x00000002 }'];
  it('not for elements that can only allow more, while only NetworkPolicies are in force', () => {
    assert.equal(needsNewGeneration(widening, none), false);
    // A new isolated pod: its own chain, and the first chain of a policy on this node with its set, made and filled in the same change.
    const made = ['add chain inet weft_policy n_w1_i', 'add chain inet weft_policy p_0123456789_i', 'add set inet weft_policy s_9876543210_4 { type ipv4_addr; comment "pods [app=a] in namespace x"; }', 'add element inet weft_policy s_9876543210_4 { 10.1.0.7 }', 'add rule inet weft_policy n_w1_i jump p_0123456789_i', 'add rule inet weft_policy n_w1_i counter drop', 'add rule inet weft_policy p_0123456789_i ip saddr @s_9876543210_4 goto allow_in'];
    assert.equal(needsNewGeneration([...widening, ...made], none), false);
  });
  it('for anything removed or rewritten, for other sets, and for any change while a WeftClusterPolicy is in force', () => {
    assert.equal(needsNewGeneration([...widening, 'delete element inet weft_policy s_0123456789_4 { 10.1.0.9 }'], none), true);
    assert.equal(needsNewGeneration(['flush chain inet weft_policy p_0123456789_i', 'add rule inet weft_policy p_0123456789_i accept'], none), true);
    assert.equal(needsNewGeneration(['add rule inet weft_policy n_w1_i counter drop'], none), true, 'a rule added to a chain that existed');
    assert.equal(needsNewGeneration(['add element inet weft_policy ex_0123456789_4 { 10.9.0.0/16 }'], none), true, 'an element of a set that existed and is no selector');
    assert.equal(needsNewGeneration(['add element inet weft_policy local4 { 10.2.0.0/24 }'], none), true, 'a new local range drops its unknown addresses');
    assert.equal(needsNewGeneration(widening, cluster), true);
  });
});

describe('policy compiler with a cache from the previous compile', () => {
  const NS = ['x', 'y', 'z'];
  const PODS = NS.flatMap((n) => ['a', 'b', 'c'].map((p) => `${n}/${p}`));
  const addrs = (i: number): string[] => [`10.244.${(i % 2) + 1}.${10 + i}`, `fd00:244:${(i % 2) + 1}::${10 + i}`];
  const ctx: GenContext = { namespaces: NS, pods: PODS, ranges: ['10.244.0.0/16', '10.244.1.0/24', 'fd00:244::/48', 'fd00:244:1::/64'], podAddresses: Object.fromEntries(PODS.map((p, i) => [p, addrs(i)])) };
  const input = (sc: Scenario, dropped: number): Parameters<typeof buildSnapshot>[0] => ({
    namespaces: NS.map((n) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n, labels: sc.nsLabels[n] ?? {} } })),
    // One pod may be gone: a namespace's endpoints change by membership too, not only by labels.
    pods: PODS.filter((_, i) => i !== dropped).map((p, i): PodObject => {
      const [namespace, name] = p.split('/') as [string, string];
      return {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { namespace, name, labels: sc.podLabels[p] ?? {} },
        spec: { nodeName: `n${i % 2}`, containers: [{ name: 'c', ports: [{ name: 'web', containerPort: 80 + (i % 2), protocol: 'TCP' }] }] },
        status: { phase: 'Running', podIPs: addrs(PODS.indexOf(p)).map((ip) => ({ ip })) },
      };
    }),
    weftEndpoints: [],
    policies: sc.objects.filter((o) => o.kind === 'NetworkPolicy') as NetworkPolicyObject[],
    clusterPolicies: sc.objects.filter((o) => o.kind === 'WeftClusterPolicy') as WeftClusterPolicyObject[],
    nodes: [],
  });
  const attachments = PODS.slice(0, 4).map((p, i) => ({ hostIf: `w${i}`, addresses: addrs(i), endpoint: p }));
  const localBlocks = ['10.244.1.0/24', 'fd00:244:1::/64'];

  it('gives the same table as a compile without it, whatever changed in between (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(scenarioArb(ctx), fc.integer({ min: -1, max: PODS.length - 1 }), fc.boolean()), { minLength: 2, maxLength: 4 }), (steps) => {
        const cache = new CompileCache();
        let prev: Scenario | undefined;
        for (const [generated, dropped, keepLabels] of steps) {
          // Half the steps keep the labels: most namespaces then come out unchanged and their sets are reused.
          const sc = keepLabels && prev ? { ...generated, nsLabels: prev.nsLabels, podLabels: prev.podLabels } : generated;
          prev = sc;
          const snapshot = buildSnapshot(input(sc, dropped)).snapshot;
          assert.deepEqual(compilePolicy({ snapshot, localBlocks, attachments, cache }), compilePolicy({ snapshot, localBlocks, attachments }));
        }
      }),
      { numRuns: 80 },
    );
  });

  it('takes the sets over unchanged namespaces as they were, and rebuilds the one that changed', () => {
    const objs = parseManifests(
      `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {}}, {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]}]
`,
      't',
    ) as NetworkPolicyObject[];
    const sc: Scenario = { objects: objs, nsLabels: {}, podLabels: {} };
    const cache = new CompileCache();
    const first = compilePolicy({ snapshot: buildSnapshot(input(sc, -1)).snapshot, localBlocks, attachments, cache });
    const next = compilePolicy({ snapshot: buildSnapshot(input({ ...sc, podLabels: { 'y/b': { app: 'new' } } }, -1)).snapshot, localBlocks, attachments, cache });
    const set = (t: typeof first, comment: string): unknown => t.sets.find((x) => x.spec.includes(comment) && x.spec.includes('ipv4'));
    assert.ok(set(first, 'namespace x'));
    assert.equal(set(next, 'namespace x'), set(first, 'namespace x'), 'the set over x is the same object');
    assert.notEqual(set(next, 'namespaces ['), set(first, 'namespaces ['), 'the set over y was rebuilt');
  });
});
