import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { diffScript, fullScript, type NftTable } from '../../src/nftables/ruleset.js';
import type { NamespaceObject, NetworkPolicyObject, PodObject, WeftClusterPolicyObject } from '../../src/model/objects.js';
import { masqueradeTable } from '../../src/datapath/masquerade.js';
import { compilePolicy } from '../../src/policy/compile.js';
import { buildSnapshot } from '../../src/policy/from-objects.js';
import { privilegedSkip } from '../helpers/env.js';
import { scenarioArb, type GenContext, type Scenario } from '../helpers/policy-gen.js';

/**
 * The compiler's output is valid nftables for every generated scenario, and the incremental
 * transaction from any table A to any table B leaves the kernel exactly where a fresh B
 * would — the controller writes diffs, so a wrong diff would silently enforce a stale policy.
 * Real nft, real kernel, in two scratch network namespaces.
 */
const skip = privilegedSkip();
const NS = ['x', 'y', 'z'];
const PODS = NS.flatMap((n) => ['a', 'b', 'c'].map((p) => `${n}/${p}`));
const addresses = (i: number): string[] => [`10.244.${(i % 2) + 1}.${10 + i}`, `fd00:244:${(i % 2) + 1}::${10 + i}`];
const CTX: GenContext = {
  namespaces: NS,
  pods: PODS,
  ranges: ['10.244.0.0/16', '10.244.1.0/24', '10.244.2.0/24', 'fd00:244::/48', 'fd00:244:1::/64'],
  podAddresses: Object.fromEntries(PODS.map((p, i) => [p, addresses(i)])),
};

function table(s: Scenario): NftTable {
  const pods: PodObject[] = PODS.map((p, i) => {
    const [namespace, name] = p.split('/') as [string, string];
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { namespace, name, labels: s.podLabels[p] ?? {} },
      spec: { nodeName: `node-${(i % 2) + 1}`, containers: [{ name: 'c', ports: [{ name: 'web', containerPort: namespace === 'z' ? 81 : 80 }, { name: 'serve-81-udp', containerPort: 81, protocol: 'UDP' }] }] },
      status: { podIPs: addresses(i).map((ip) => ({ ip })) },
    };
  });
  const namespaces: NamespaceObject[] = NS.map((n) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n, labels: s.nsLabels[n] ?? {} } }));
  const { snapshot, problems } = buildSnapshot({
    namespaces,
    pods,
    weftEndpoints: [],
    nodes: [],
    policies: s.objects.filter((o) => o.kind === 'NetworkPolicy') as NetworkPolicyObject[],
    clusterPolicies: s.objects.filter((o) => o.kind === 'WeftClusterPolicy') as WeftClusterPolicyObject[],
  });
  assert.deepEqual(problems, [], 'the generator made an invalid object');
  const local = PODS.map((p, i) => ({ p, i })).filter(({ i }) => i % 2 === 0);
  return compilePolicy({
    snapshot,
    localBlocks: ['10.244.1.0/24', 'fd00:244:1::/64'],
    attachments: local.map(({ p, i }) => ({ hostIf: `weft${String(i).padStart(11, '0')}`, addresses: addresses(i), endpoint: p })),
  });
}

const prefix = `wpk${randomBytes(2).toString('hex')}`;
const nsA = `${prefix}-a`;
const nsB = `${prefix}-b`;

function nft(netns: string, script: string): void {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], { input: script, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nft -f failed in ${netns}: ${r.stderr}\n--- script ---\n${script.slice(0, 4000)}`);
}

/** The live table, without handles and with sets' elements in a stable order. */
function live(netns: string): unknown {
  const out = execFileSync('ip', ['netns', 'exec', netns, 'nft', '-j', 'list', 'table', 'inet', 'weft_policy'], { encoding: 'utf8' });
  const items = (JSON.parse(out) as { nftables: Array<Record<string, Record<string, unknown>>> }).nftables;
  const chains: string[] = [];
  const sets: Record<string, unknown> = {};
  const rules: Record<string, unknown[]> = {};
  for (const it of items) {
    if (it['chain']) chains.push(String(it['chain']['name']));
    for (const k of ['set', 'map']) {
      const s = it[k];
      if (s) sets[String(s['name'])] = { ...s, handle: undefined, elem: ((s['elem'] as unknown[]) ?? []).map((e) => JSON.stringify(e)).sort() };
    }
    const r = it['rule'];
    if (r) (rules[String(r['chain'])] ??= []).push({ ...r, handle: undefined });
  }
  return { chains: chains.sort(), sets, rules };
}

describe('policy compiler on the real kernel', { skip }, () => {
  before(() => {
    for (const n of [nsA, nsB]) execFileSync('ip', ['netns', 'add', n]);
  });
  after(() => {
    for (const n of [nsA, nsB]) spawnSync('ip', ['netns', 'del', n]);
  });

  it('every generated table loads, and the diff from A to B equals a fresh B', () => {
    let diffs = 0;
    fc.assert(
      fc.property(scenarioArb(CTX), scenarioArb(CTX), (a, b) => {
        const ta = table(a);
        const tb = table(b);
        nft(nsA, fullScript(ta));
        const d = diffScript(ta, tb);
        if (d) {
          diffs++;
          nft(nsA, d.join('\n') + '\n');
        } else nft(nsA, fullScript(tb));
        nft(nsB, fullScript(tb));
        assert.deepEqual(live(nsA), live(nsB));
      }),
      { numRuns: Number(process.env['WEFT_PROPERTY_RUNS'] ?? 40) },
    );
    assert.ok(diffs > 0, 'no run exercised the incremental path');
  });

  it('hostile text — a policy name, a rule name with NUL, quotes, braces, newlines — compiles to a table nft -c accepts; masquerade too', () => {
    const hostile = fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), fc.constantFrom('80 } ; add table inet pwned', 'a\u0000b', '"; flush ruleset; "', '#', '\n\r', '{ }', '\\'));
    fc.assert(
      fc.property(hostile, hostile, (ruleName, label) => {
        // What admission lets through (a rule name has no control characters; a label value is
        // label syntax), and what it does not: the renderer must hold either way.
        const wcp = { apiVersion: 'weft.io/v1', kind: 'WeftClusterPolicy', metadata: { name: 'p' }, spec: { priority: 1, subject: { namespaces: {} }, egress: [{ name: ruleName, action: 'Deny', to: [{ networks: ['192.0.2.0/24'] }] }] } };
        const { snapshot } = buildSnapshot({ namespaces: [], pods: [], weftEndpoints: [], nodes: [], policies: [], clusterPolicies: [wcp as WeftClusterPolicyObject] });
        // Names straight into the IR, past admission, as if a bug let them by.
        for (const c of snapshot.clusterPolicies) for (const r of c.egress) r.name = `${ruleName}${label}`;
        const t = compilePolicy({ snapshot, localBlocks: ['10.244.1.0/24'], attachments: [{ hostIf: 'weft00000000000', addresses: ['10.244.1.5'] }] });
        const r = spawnSync('ip', ['netns', 'exec', nsB, 'nft', '-c', '-f', '-'], { input: fullScript(t), encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
      }),
      { numRuns: 60 },
    );
    const m = spawnSync('ip', ['netns', 'exec', nsB, 'nft', '-c', '-f', '-'], { input: fullScript(masqueradeTable(['10.244.0.0/16', 'fd00:10:244::/56'])), encoding: 'utf8' });
    assert.equal(m.status, 0, m.stderr);
  });
});

