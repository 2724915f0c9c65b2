import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CLEANUP_CHECK, fullMtuPayload, judge, phasePolicy, planChecks, reportNames, SETUP_CHECK, summarize, summaryLine, tableHeader, tableRow,
  type Check, type CheckResult, type Topology,
} from './connectivity-plan.js';

const topology: Topology = {
  client: { id: 'ns/client', addresses: ['10.244.0.2', 'fd00:10:244::2'] },
  sameNodeServer: { id: 'ns/echo-same-node', addresses: ['10.244.0.3', 'fd00:10:244::3'] },
  otherNodeServer: { id: 'ns/echo-other-node', addresses: ['10.244.1.2', 'fd00:10:244:1::2'] },
  clientNode: { name: 'node-1', ips: ['198.18.0.11', 'fd00:198:18::b'] },
  otherNode: { name: 'node-2', ips: ['198.18.0.12', 'fd00:198:18::c'] },
  external: { ips: ['203.0.113.10', 'fd00:203:113::10'] },
  ports: { tcp: 80, udp: 53 },
  podMtu: 1450,
};
const oneNode: Topology = { ...topology };
delete oneNode.otherNodeServer;
delete oneNode.otherNode;

const byName = (checks: Check[], name: string): Check => {
  const c = checks.find((x) => x.name === name);
  assert.ok(c, `a check named ${name}`);
  return c;
};

describe('connectivity plan', () => {
  it('covers pod to pod on one node and across, both families, TCP/UDP/ICMP; names are unique', () => {
    const checks = planChecks(topology);
    assert.equal(new Set(checks.map((c) => c.name)).size, checks.length);
    for (const where of ['same-node', 'cross-node']) for (const f of ['IPv4', 'IPv6']) for (const p of ['TCP', 'UDP', 'ICMP']) byName(checks, `pod-to-pod/${where}/${f}/${p}`);
    const cross6 = byName(checks, 'pod-to-pod/cross-node/IPv6/TCP');
    assert.equal(cross6.address, 'fd00:10:244:1::2');
    assert.deepEqual(cross6.expect, { kind: 'reach', answeredBy: 'ns/echo-other-node', seenFrom: 'fd00:10:244::2' });
    assert.ok(checks.every((c) => c.skip === undefined), 'nothing skipped with two nodes');
    assert.ok(checks.every((c) => c.address !== ''), 'every check has a destination');
  });

  it('sends the DF ping at the full pod MTU: payload = MTU - 28 (IPv4), - 48 (IPv6)', () => {
    const checks = planChecks(topology);
    assert.equal(byName(checks, 'pod-mtu/cross-node/IPv4/ICMP-DF').payloadBytes, 1422);
    assert.equal(byName(checks, 'pod-mtu/cross-node/IPv6/ICMP-DF').payloadBytes, 1402);
    assert.equal(fullMtuPayload(1500, 4), 1472);
  });

  it('expects masquerade to the outside: the node address seen, never the pod address', () => {
    const c = byName(planChecks(topology), 'pod-to-outside/masquerade/IPv6/UDP');
    assert.equal(c.address, 'fd00:203:113::10');
    assert.deepEqual(c.expect, { kind: 'reach', seenFrom: 'fd00:198:18::b', masqueradedFrom: 'fd00:10:244::2' });
  });

  it('orders the phases: no policy, default deny (blocked), allow (TCP reach, UDP still blocked)', () => {
    const checks = planChecks(topology);
    const phases = checks.map((c) => c.phase);
    assert.deepEqual([...new Set(phases)], ['no-policy', 'default-deny', 'allow-client']);
    assert.deepEqual(phases, [...phases].sort((a, b) => ['no-policy', 'default-deny', 'allow-client'].indexOf(a) - ['no-policy', 'default-deny', 'allow-client'].indexOf(b)));
    assert.ok(checks.filter((c) => c.phase === 'default-deny').every((c) => c.expect.kind === 'blocked'));
    assert.equal(byName(checks, 'policy/allow-client/cross-node/IPv6/TCP').expect.kind, 'reach');
    assert.equal(byName(checks, 'policy/allow-client/same-node/IPv4/UDP-not-allowed').expect.kind, 'blocked');
  });

  it('with one node, skips what crosses nodes and says why; the rest still runs', () => {
    const checks = planChecks(oneNode);
    const skipped = checks.filter((c) => c.skip);
    assert.ok(skipped.length > 0);
    assert.ok(skipped.every((c) => /cross-node|other-node/.test(c.name)), skipped.map((c) => c.name).join());
    assert.ok(checks.filter((c) => /same-node|own-node|outside/.test(c.name)).every((c) => !c.skip));
    assert.equal(planChecks(oneNode).length, planChecks(topology).length, 'the same checks are reported');
    assert.deepEqual(judge(byName(checks, 'pod-to-pod/cross-node/IPv4/TCP'), { kind: 'error', error: 'x' }, 1000), { status: 'skipped', reason: 'the cluster has one node: nothing to cross to' });
  });

  it('names every step: setup first, policy in force before its phase, cleanup last', () => {
    const names = reportNames();
    assert.equal(names[0], SETUP_CHECK);
    assert.equal(names.at(-1), CLEANUP_CHECK);
    assert.ok(names.indexOf('policy/default-deny/in-force') < names.indexOf('policy/default-deny/same-node/IPv4/TCP'));
    assert.ok(names.indexOf('pod-to-outside/masquerade/IPv4/TCP') < names.indexOf('policy/default-deny/in-force'));
  });

  it('makes a default-deny ingress policy and an allow for the client label and TCP port', () => {
    assert.equal(phasePolicy('no-policy', 'ns', 80), undefined);
    assert.deepEqual(phasePolicy('default-deny', 'ns', 80)?.spec, { podSelector: {}, policyTypes: ['Ingress'] });
    const allow = phasePolicy('allow-client', 'ns', 80);
    assert.equal(allow?.metadata.namespace, 'ns');
    assert.deepEqual(allow?.spec?.ingress, [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ protocol: 'TCP', port: 80 }] }]);
  });
});

describe('connectivity judging', () => {
  const checks = planChecks(topology);
  const tcp = byName(checks, 'pod-to-pod/cross-node/IPv4/TCP');
  const masq = byName(checks, 'pod-to-outside/masquerade/IPv4/TCP');
  const denied = byName(checks, 'policy/default-deny/cross-node/IPv4/TCP');
  const df = byName(checks, 'pod-mtu/cross-node/IPv4/ICMP-DF');

  it('passes an answer from the right pod that saw the client address', () => {
    assert.deepEqual(judge(tcp, { kind: 'probe', ok: true, reply: 'ns/echo-other-node 10.244.0.2' }, 1000), { status: 'passed' });
  });

  it('fails, saying why: no answer, a refusal, the wrong pod, a translated source', () => {
    assert.deepEqual(judge(tcp, { kind: 'probe', ok: false, error: 'timeout' }, 1500), { status: 'failed', reason: 'no answer within 1500 ms' });
    assert.match(judge(tcp, { kind: 'probe', ok: false, error: 'ECONNREFUSED' }, 1000).reason ?? '', /refused/);
    assert.match(judge(tcp, { kind: 'probe', ok: true, reply: 'ns/echo-same-node 10.244.0.2' }, 1000).reason ?? '', /answered by "ns\/echo-same-node"/);
    assert.match(judge(tcp, { kind: 'probe', ok: true, reply: 'ns/echo-other-node 198.18.0.11' }, 1000).reason ?? '', /saw source 198\.18\.0\.11.*nothing translates/);
    assert.match(judge(tcp, { kind: 'error', error: 'the pod server went away' }, 1000).reason ?? '', /could not run: the pod server went away/);
  });

  it('masquerade: the node address passes; the pod address is named as not masqueraded', () => {
    assert.equal(judge(masq, { kind: 'probe', ok: true, reply: 'external 198.18.0.11' }, 1000).status, 'passed');
    assert.deepEqual(judge(masq, { kind: 'probe', ok: true, reply: 'external 10.244.0.2' }, 1000), { status: 'failed', reason: "not masqueraded: the outside saw the pod's own address 10.244.0.2" });
    const v6 = byName(checks, 'pod-to-outside/masquerade/IPv6/UDP');
    assert.equal(judge(v6, { kind: 'probe', ok: true, reply: 'external fd00:198:18:0:0:0:0:b' }, 1000).status, 'passed', 'addresses compare by value');
  });

  it('blocked: only a drop passes; an answer or a refusal means the packet got through', () => {
    const reached = new Map([[denied.reachedBefore as string, 'passed' as const]]);
    assert.deepEqual(judge(denied, { kind: 'probe', ok: false, error: 'timeout' }, 1000, reached), { status: 'passed' });
    assert.match(judge(denied, { kind: 'probe', ok: true, reply: 'ns/echo-other-node 10.244.0.2' }, 1000, reached).reason ?? '', /reachable, but policy should block it/);
    assert.match(judge(denied, { kind: 'probe', ok: false, error: 'ECONNREFUSED' }, 1000, reached).reason ?? '', /not dropped/);
    assert.equal(judge(denied, { kind: 'error', error: 'boom' }, 1000, reached).status, 'failed');
  });

  it('blocked proves nothing where the same path did not answer without policy: inconclusive, failed', () => {
    assert.ok(denied.reachedBefore, 'a blocked check names its path\'s check without policy');
    for (const before of [new Map([[denied.reachedBefore as string, 'failed' as const]]), new Map<string, 'passed'>()]) {
      const v = judge(denied, { kind: 'probe', ok: false, error: 'timeout' }, 1000, before);
      assert.equal(v.status, 'failed');
      assert.match(v.reason ?? '', /^inconclusive: the same path did not answer without policy/);
    }
  });

  it('ICMP: the DF ping failure names the packet size and what ping said', () => {
    assert.equal(judge(df, { kind: 'ping', ok: true }, 1000).status, 'passed');
    assert.deepEqual(judge(df, { kind: 'ping', ok: false, error: 'local error: message too long, mtu=1400' }, 1000), { status: 'failed', reason: '1450-byte packet with DF: local error: message too long, mtu=1400' });
  });
});

describe('connectivity report', () => {
  const results: CheckResult[] = [
    { name: 'a', status: 'passed', ms: 1.25, target: '10.0.0.1:80' },
    { name: 'b', status: 'failed', ms: 1500, reason: 'no answer within 1500 ms' },
    { name: 'c', status: 'skipped', ms: 0, reason: 'one node' },
  ];

  it('exits 1 naming the failed checks; 0 when only passes and skips', () => {
    assert.deepEqual(summarize(results), { passed: 1, failed: 1, skipped: 1, failedChecks: ['b'], exitCode: 1 });
    assert.equal(summarize([results[0] as CheckResult, results[2] as CheckResult]).exitCode, 0);
    assert.equal(summaryLine(summarize(results), 12_345), '3 checks: 1 passed, 1 failed, 1 skipped (12.3 s); failed: b');
    assert.equal(summaryLine(summarize([results[0] as CheckResult]), 800), '1 check: 1 passed, 0 failed, 0 skipped (0.8 s): all passed');
  });

  it('prints aligned rows: the target when passed, the reason otherwise', () => {
    assert.equal(tableHeader(4), 'CHECK  RESULT       MS  DETAIL');
    assert.equal(tableRow(results[0] as CheckResult, 4), 'a     ok          1.3  10.0.0.1:80');
    assert.equal(tableRow(results[1] as CheckResult, 4), 'b     FAIL     1500.0  no answer within 1500 ms');
    assert.equal(tableRow(results[2] as CheckResult, 4), 'c     skip          -  one node');
  });
});
