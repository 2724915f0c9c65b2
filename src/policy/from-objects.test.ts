import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NetworkPolicyObject, NodeObject, PodObject, WeftEndpointObject } from '../model/objects.js';
import { buildSnapshot, snapshotFingerprint, type SnapshotInput } from './from-objects.js';

const pod = (name: string, labels: Record<string, string>, ip?: string, extra: Partial<PodObject> = {}): PodObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: 'x', name, labels },
  spec: { nodeName: 'n1', containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }, { containerPort: 9 }] }] },
  status: { phase: 'Running', ...(ip ? { podIPs: [{ ip }] } : {}) },
  ...extra,
});
const we = (podName: string, node: string, addresses: string[], labels?: Record<string, string>): WeftEndpointObject => ({
  apiVersion: 'weft.io/v1',
  kind: 'WeftEndpoint',
  metadata: { namespace: 'x', name: podName },
  spec: { node, containerId: `c-${podName}`, ifName: 'eth0', addresses, podName, ...(labels ? { labels } : {}) },
});
const input = (over: Partial<SnapshotInput>): SnapshotInput => ({ namespaces: [], pods: [], weftEndpoints: [], policies: [], clusterPolicies: [], nodes: [], ...over });

describe('policy snapshot from datastore objects', () => {
  it('Pod labels and named ports, WeftEndpoint addresses; host-network and finished pods are not selectable', () => {
    const { snapshot } = buildSnapshot(
      input({
        pods: [pod('a', { app: 'new' }, '10.0.0.9'), pod('h', {}, '192.168.0.1', { spec: { hostNetwork: true, containers: [] } }), pod('done', {}, '10.0.0.7', { status: { phase: 'Succeeded', podIPs: [{ ip: '10.0.0.7' }] } })],
        weftEndpoints: [we('a', 'n2', ['10.0.0.5'], { app: 'old' }), we('b', 'n2', ['fd00:0::0005'], { app: 'b' })],
      }),
    );
    assert.deepEqual(
      snapshot.endpoints.map((e) => [e.name, e.labels, e.addresses, e.node, e.ports]),
      [
        ['a', { app: 'new' }, ['10.0.0.5'], 'n2', [{ name: 'http', protocol: 'TCP', port: 8080 }]],
        ['b', { app: 'b' }, ['fd00::5'], 'n2', []],
      ],
    );
  });

  it("a Pod's addresses: the kubelet's status.podIPs; else the agent's weft.io/pod-ips, only inside its node's blocks and below any other claim", () => {
    const annotated = (name: string, ips: string, status: PodObject['status'], nodeName?: string): PodObject => ({
      ...pod(name, { app: name }),
      metadata: { namespace: 'x', name, labels: { app: name }, annotations: { 'weft.io/pod-ips': ips } },
      spec: { containers: [], ...(nodeName ? { nodeName } : {}) },
      status,
    });
    const n1: NodeObject = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', annotations: { 'weft.io/backend': 'vxlan', 'weft.io/pod-cidrs': '10.0.0.0/24,fd00::/64' } } };
    const { snapshot } = buildSnapshot(
      input({
        nodes: [n1],
        pods: [
          annotated('early', '10.0.0.9,fd00::9', { phase: 'Pending' }, 'n1'),
          annotated('reported', '10.0.0.1', { phase: 'Running', podIPs: [{ ip: '10.0.0.2' }] }, 'n1'),
          annotated('outside', '192.0.2.1,10.0.0.10', { phase: 'Pending' }, 'n1'),
          annotated('unbound', '10.0.0.11', { phase: 'Pending' }),
          annotated('thief', '10.0.0.2,10.0.0.12', { phase: 'Pending' }, 'n1'),
          annotated('garbage', 'not an address', { phase: 'Pending' }, 'n1'),
        ],
      }),
    );
    assert.deepEqual(snapshot.endpoints.map((e) => [e.name, e.addresses]), [
      ['early', ['10.0.0.9', 'fd00::9']],
      ['outside', ['10.0.0.10']],
      ['reported', ['10.0.0.2']],
      ['thief', ['10.0.0.12']],
    ], 'no address outside n1\'s blocks, none for a Pod bound to no node, and status beats the annotation');
  });

  it("the agent's own records are newer than the datastore's, and a reused address belongs to the fresher claim", () => {
    const { snapshot } = buildSnapshot(
      input({
        pods: [pod('old', {}, '10.0.0.5')],
        weftEndpoints: [we('gone', 'n1', ['10.0.0.6'])],
        local: { node: 'n1', endpoints: [{ namespace: 'x', name: 'new', labels: { app: 'n' }, addresses: ['10.0.0.5'] }, { addresses: ['10.0.0.8'] }] },
      }),
    );
    assert.deepEqual(
      snapshot.endpoints.map((e) => [e.name, e.addresses]),
      [['new', ['10.0.0.5']]],
      "the stale Pod status loses 10.0.0.5; this node's old WeftEndpoint is superseded by its records; an attachment without a pod is not selectable",
    );
  });

  it('an address two claims of one kind share is neither pod\'s, in whatever order they are read', () => {
    const pods = [pod('p', { app: 'p' }, '10.0.0.5'), pod('q', { app: 'q' }, '10.0.0.5'), pod('r', { app: 'r' }, '10.0.0.7')];
    const a = buildSnapshot(input({ pods })).snapshot;
    const b = buildSnapshot(input({ pods: [...pods].reverse() })).snapshot;
    assert.deepEqual(a.endpoints.map((e) => [e.name, e.addresses]), [['r', ['10.0.0.7']]]);
    assert.equal(snapshotFingerprint(a), snapshotFingerprint(b), 'every reader agrees (agents and the CLI read in different orders)');
    // A fresher kind of claim still decides.
    const c = buildSnapshot(input({ pods, weftEndpoints: [we('q', 'n2', ['10.0.0.5'])] })).snapshot;
    assert.deepEqual(c.endpoints.map((e) => [e.name, e.addresses]), [['q', ['10.0.0.5']], ['r', ['10.0.0.7']]]);
  });

  it('invalid policies are reported and left out; the fingerprint ignores order', () => {
    const bad: NetworkPolicyObject = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'x', name: 'bad' }, spec: { podSelector: {}, ingress: [{ ports: [{ port: 80, endPort: 10 }] }] } };
    const good: NetworkPolicyObject = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'x', name: 'good' }, spec: { podSelector: {} } };
    const r = buildSnapshot(input({ policies: [bad, good] }));
    assert.deepEqual(r.snapshot.policies.map((p) => p.name), ['good']);
    assert.match(r.problems[0] ?? '', /networkpolicy x\/bad is ignored: .*endPort/);
    const a = buildSnapshot(input({ weftEndpoints: [we('a', 'n1', ['10.0.0.1']), we('b', 'n1', ['10.0.0.2'])], policies: [good] })).snapshot;
    const b = buildSnapshot(input({ weftEndpoints: [we('b', 'n1', ['10.0.0.2']), we('a', 'n1', ['10.0.0.1'])], policies: [good] })).snapshot;
    assert.equal(snapshotFingerprint(a), snapshotFingerprint(b));
    const c = buildSnapshot(input({ weftEndpoints: [we('b', 'n1', ['10.0.0.2']), we('a', 'n1', ['10.0.0.3'])], policies: [good] })).snapshot;
    assert.notEqual(snapshotFingerprint(a), snapshotFingerprint(c));
  });
});
