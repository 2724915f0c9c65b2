import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseManifests } from '../model/manifest.js';
import type { NetworkPolicyObject, PodObject } from '../model/objects.js';
import { compilePolicy, generationInForce, mergeRanges } from './compile.js';
import { buildSnapshot } from './from-objects.js';

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
  });
});

describe('the generation of a table in force', () => {
  it('is read back from allow_in as nft -j lists it', () => {
    const chain = [{ metainfo: {} }, { chain: { name: 'allow_in' } }, { rule: { chain: 'allow_in', expr: [{ mangle: { key: { ct: { key: 'mark' } }, value: { '|': [{ '&': [{ ct: { key: 'mark' } }, 0xffff64dd] }, 0x64dd] } } }, { accept: null }] } }];
    assert.equal(generationInForce(chain), 0x64dd);
    assert.equal(generationInForce([{ chain: { name: 'allow_in' } }]), undefined);
  });
});

