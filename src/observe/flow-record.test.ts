import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseManifests } from '../model/manifest.js';
import type { NamespaceObject, NetworkPolicyObject, NodeObject, PodObject, WeftClusterPolicyObject } from '../model/objects.js';
import { dropPrefix, FLOW_GROUPS } from '../policy/compile.js';
import { buildSnapshot } from '../policy/from-objects.js';
import { ipv4, tcp } from '../../test/helpers/packets.js';
import { flowRecordOf, parseNflogLine, type NflogPacket } from './flow-record.js';
import { B_FROM_C, NO_TELNET } from '../../test/helpers/flow-policies.js';

const ns = (name: string): NamespaceObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: {} } });
const pod = (namespace: string, name: string, ip: string, labels: Record<string, string>, node: string): PodObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace, name, labels },
  spec: { nodeName: node, containers: [{ name: 'c' }] },
  status: { phase: 'Running', podIPs: [{ ip }] },
});
const node = (name: string, ip: string): NodeObject => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, annotations: { 'weft.io/node-ips': ip } } });

const objects = parseManifests(`${B_FROM_C}---${NO_TELNET}`, 'test');
const snapshot = buildSnapshot({
  namespaces: [ns('x')],
  pods: [pod('x', 'b', '10.244.1.2', { app: 'b' }, 'n2'), pod('x', 'a', '10.244.0.2', { app: 'a' }, 'n1')],
  weftEndpoints: [],
  policies: objects.filter((o): o is NetworkPolicyObject => o.kind === 'NetworkPolicy'),
  clusterPolicies: objects.filter((o): o is WeftClusterPolicyObject => o.kind === 'WeftClusterPolicy'),
  nodes: [node('n1', '198.18.0.11'), node('n2', '198.18.0.12')],
}).snapshot;

const packet = (group: number, prefix: string, payload: Uint8Array): NflogPacket => ({ group, prefix, payload, inDev: 'weft.vxlan', outDev: 'weftabc' });
const aToB = (dport: number): Uint8Array => ipv4([10, 244, 0, 2], [10, 244, 1, 2], 6, tcp(41000, dport, 0x02));
const T = Date.parse('2026-11-30T10:00:00.000Z');

describe('parseNflogLine', () => {
  it('splits a reader line: group, devices, prefix and payload from hex', () => {
    const p = parseNflogLine('pkt 4710 4 weft.vxlan weftabc 77656674 4500');
    assert.deepEqual({ ...p, payload: [...(p?.payload ?? [])] }, { group: 4710, inDev: 'weft.vxlan', outDev: 'weftabc', prefix: 'weft', payload: [0x45, 0] });
    assert.equal(parseNflogLine('pkt 4712 4 - - - -')?.prefix, '');
    assert.equal(parseNflogLine('lost'), undefined);
    assert.equal(parseNflogLine('pkt x'), undefined);
  });
});

describe('flowRecordOf', () => {
  it('names a NetworkPolicy drop with the policy and the trace words, and both ends', () => {
    const r = flowRecordOf(packet(FLOW_GROUPS.drop, dropPrefix('isolated', 'ingress'), aToB(80)), 'n2', T, snapshot);
    assert.equal(r?.verdict, 'dropped');
    assert.equal(r?.dropReason, 'policy-isolated');
    assert.equal(r?.direction, 'ingress');
    assert.deepEqual(r?.policies, ['x/b-from-c']);
    assert.match(r?.explanation ?? '', /^ingress to x\/b: BLOCKED — isolated by x\/b-from-c/);
    assert.match(r?.explanation ?? '', /pods \[app=c\]/);
    assert.equal(r?.source.pod, 'x/a');
    assert.equal(r?.source.node, 'n1');
    assert.deepEqual(r?.destination.labels, { app: 'b' });
    assert.equal(r?.destination.port, 80);
    assert.equal(r?.time, '2026-11-30T10:00:00.000Z');
  });

  it('names the WeftClusterPolicy rule that denied', () => {
    const r = flowRecordOf(packet(FLOW_GROUPS.drop, dropPrefix('denied', 'ingress'), aToB(23)), 'n2', T, snapshot);
    assert.equal(r?.dropReason, 'policy-denied');
    assert.deepEqual(r?.policies, ['WeftClusterPolicy no-telnet']);
    assert.match(r?.explanation ?? '', /WeftClusterPolicy no-telnet \(priority 10\) ingress\[0\] "telnet": Deny/);
  });

  it('says when the policies in force now would allow what the table dropped', () => {
    const r = flowRecordOf(packet(FLOW_GROUPS.drop, dropPrefix('isolated', 'egress'), aToB(80)), 'n1', T, snapshot);
    assert.match(r?.explanation ?? '', /the policies in force now allow egress/);
  });

  it('records a new connection as forwarded, egress on the sender\'s node and ingress on the receiver\'s', () => {
    const fwd = (n: string): string | undefined => flowRecordOf(packet(FLOW_GROUPS.forward, 'weft new', aToB(80)), n, T, snapshot)?.direction;
    assert.equal(fwd('n1'), 'egress');
    assert.equal(fwd('n2'), 'ingress');
    assert.equal(flowRecordOf(packet(FLOW_GROUPS.forward, 'weft new', aToB(80)), 'n1', T, snapshot)?.verdict, 'forwarded');
  });

  it('turns the kernel\'s ICMP error into a drop of the packet it quotes', () => {
    const inner = ipv4([10, 244, 0, 2], [10, 244, 1, 99], 1, [8, 0, 0, 0, 0, 1, 0, 1]);
    const err = ipv4([198, 18, 0, 11], [10, 244, 0, 2], 1, [3, 1, 0, 0, 0, 0, 0, 0, ...inner]);
    const r = flowRecordOf(packet(FLOW_GROUPS.kernel, '', err), 'n1', T, snapshot);
    assert.equal(r?.verdict, 'dropped');
    assert.equal(r?.dropReason, 'host-unreachable');
    assert.equal(r?.source.pod, 'x/a');
    assert.equal(r?.destination.address, '10.244.1.99');
    assert.deepEqual(r?.icmp, { type: 8, code: 0 });
  });

  it('ignores lines that are none of Weft\'s: another prefix, another group, no IP header', () => {
    assert.equal(flowRecordOf(packet(FLOW_GROUPS.drop, 'someone else', aToB(1)), 'n1', T, snapshot), undefined);
    assert.equal(flowRecordOf(packet(99, 'weft new', aToB(1)), 'n1', T, snapshot), undefined);
    assert.equal(flowRecordOf(packet(FLOW_GROUPS.forward, 'weft new', new Uint8Array([1, 2])), 'n1', T, snapshot), undefined);
  });

  it('still records without a snapshot (before the first sync), ends as addresses', () => {
    const r = flowRecordOf(packet(FLOW_GROUPS.forward, 'weft new', aToB(80)), 'n1', T, undefined);
    assert.equal(r?.source.pod, undefined);
    assert.equal(r?.source.address, '10.244.0.2');
  });
});
