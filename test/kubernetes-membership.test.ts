import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { allocatedBlocks, claimBlocksReporting, ensureClusterNetwork, leaveCluster, registerNode, removeGoneNode, renewLease, type NodeInfo } from '../src/cluster/membership.js';
import { peersFrom } from '../src/cluster/peers.js';
import { admitted } from '../src/datastore/admitted-store.js';
import { kubeconfigConnection } from '../src/datastore/kube-connection.js';
import { KubernetesStore } from '../src/datastore/kubernetes-store.js';
import { isStoreError, type Store } from '../src/datastore/store.js';
import { SYSTEM_NAMESPACE, WEFT_API, type ClusterNetworkObject, type IPBlockObject, type NodeObject } from '../src/model/objects.js';
import { ROOT } from './helpers/env.js';
import { standinFixture } from './helpers/kube-run.js';

/**
 * On the Kubernetes API, Nodes are the kubelet's: an agent joining, renewing, leaving, and
 * judging a silent peer only ever changes Weft's annotations on its own Node — never its spec
 * (podCIDRs belong to the controller manager) or status, never creates or deletes one — while
 * its blocks, lease and endpoints are Weft's own objects. Against the API stand-in.
 */
describe('membership on the Kubernetes API: Nodes belong to the kubelet', () => {
  const api = standinFixture('weft-kmember-');
  let store: Store | undefined;
  const info: NodeInfo = { name: 'n1', ips: ['198.18.0.11'], backend: 'vxlan', vxlanMac: '02:00:00:00:00:0b' };
  const kubeletNode = (name: string, cidr: string, ip: string): NodeObject =>
    ({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name } }, spec: { podCIDR: cidr, podCIDRs: [cidr] }, status: { addresses: [{ type: 'InternalIP', address: ip }, { type: 'Hostname', address: name }] } }) as NodeObject;

  before(async () => {
    await api.kubectl(['apply', '-f', join(ROOT, 'deploy', 'crds.yaml')]);
    store = admitted(new KubernetesStore(kubeconfigConnection(api.kubeconfig())));
    // What the cluster has before any agent: the kubelets' Nodes (with the controller manager's podCIDRs).
    await store.create(kubeletNode('n1', '10.244.7.0/24', '198.18.0.11'));
    await store.create(kubeletNode('n2', '10.244.8.0/24', '198.18.0.12'));
  });
  after(async () => {
    await store?.close();
  });

  it('without the weft-system namespace, the lease cannot be written, and the message says how to create it', async () => {
    await assert.rejects(renewLease(store as Store, 'n1', 40), (e: unknown) => isStoreError(e, 'NotFound') && /namespace weft-system does not exist \(create it: kubectl create namespace weft-system\)/.test((e as Error).message));
  });

  it('joining annotates the kubelet\'s Node: blocks in weft.io/pod-cidrs, spec and status untouched; peers route to those blocks', async () => {
    const s = store as Store;
    await s.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: SYSTEM_NAMESPACE } });
    const network = await ensureClusterNetwork(s, { podCIDRs: ['10.250.0.0/16'], blockSize: { ipv4: 24, ipv6: 64 }, backend: { type: 'vxlan' }, leaseDurationSeconds: 40 });
    await renewLease(s, 'n1', 40);
    const before = (await s.get<NodeObject>('Node', 'n1')) as NodeObject;
    await registerNode(s, info);
    const { blocks } = await claimBlocksReporting(s, 'n1', network);
    await registerNode(s, info, blocks);
    const after = (await s.get<NodeObject>('Node', 'n1')) as NodeObject;
    assert.deepEqual(after.spec, before.spec, "the controller manager's podCIDRs stay");
    assert.deepEqual(after.status?.addresses, before.status?.addresses, "the kubelet's status stays");
    assert.equal(after.metadata.uid, before.metadata.uid, 'the same Node, never re-created');
    assert.deepEqual(after.metadata.annotations, { 'weft.io/backend': 'vxlan', 'weft.io/node-ips': '198.18.0.11', 'weft.io/vxlan-mac': '02:00:00:00:00:0b', 'weft.io/pod-cidrs': '10.250.0.0/24' });
    const holders = new Map((await s.list<IPBlockObject>('IPBlock')).items.map((b) => [b.spec.cidr, b.spec.node]));
    const { peers, problems } = peersFrom((await s.list<NodeObject>('Node')).items, 'n2', holders, { podCIDRs: network.spec.podCIDRs, blockSize: network.spec.blockSize, ownIps: ['198.18.0.12'] });
    assert.deepEqual(peers.map((p) => `${p.name} ${p.blocks.join(',')} ${p.ips.join(',')}`), ['n1 10.250.0.0/24 198.18.0.11']);
    assert.deepEqual(problems, [], 'n2, which no agent joined yet, is not a peer and not a problem');
  });

  it('a node whose Node does not exist cannot join: the kubelet registers nodes, and the message says which name to give', async () => {
    await assert.rejects(registerNode(store as Store, { ...info, name: 'n9' }), (e: unknown) => isStoreError(e, 'NotFound') && /there is no Node n9: on Kubernetes the kubelet registers nodes.*--node-name/.test((e as Error).message));
    assert.equal(await (store as Store).get('Node', 'n9'), undefined, 'and none was created');
  });

  it('ipam kubernetes: the blocks are the Node\'s spec.podCIDRs, waited for; a range or block size that does not match says which flag fixes it', async () => {
    const s = store as Store;
    const net = (podCIDRs: string[], v4 = 24): ClusterNetworkObject => ({ apiVersion: WEFT_API, kind: 'ClusterNetwork', metadata: { name: 'default' }, spec: { podCIDRs, blockSize: { ipv4: v4, ipv6: 64 }, backend: { type: 'vxlan' }, leaseDurationSeconds: 40, ipam: 'kubernetes' } });
    const quiet = { waiting: (): void => undefined, pollMs: 20 };
    assert.deepEqual(await allocatedBlocks(s, 'n2', net(['10.244.0.0/16']), quiet), ['10.244.8.0/24']);
    await assert.rejects(allocatedBlocks(s, 'n2', net(['10.250.0.0/16']), quiet), /lies outside the cluster's pod range 10\.250\.0\.0\/16: give --cluster-cidr the range the controller manager allocates from/);
    await assert.rejects(allocatedBlocks(s, 'n2', net(['10.244.0.0/16'], 25), quiet), /is a \/24, the cluster's blocks are \/25: give --block-size-v4 24/);
    await assert.rejects(allocatedBlocks(s, 'n2', net(['10.244.0.0/16', 'fd00:10:244::/56']), quiet), /have no IPv6 block/);
    // A Node the controller manager has not served yet: waited for, and said so.
    await s.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n3' } } as NodeObject);
    const said: string[] = [];
    const waiting = allocatedBlocks(s, 'n3', net(['10.244.0.0/16']), { waiting: (m) => said.push(m), pollMs: 20 });
    await new Promise((r) => setTimeout(r, 150));
    const n3 = (await s.get<NodeObject>('Node', 'n3')) as NodeObject;
    await s.update({ ...n3, spec: { podCIDR: '10.244.9.0/24', podCIDRs: ['10.244.9.0/24'] } });
    assert.deepEqual(await waiting, ['10.244.9.0/24']);
    assert.match(said[0] ?? '', /waiting for Node n3's spec\.podCIDRs: with --ipam kubernetes the controller manager allocates them/);
  });

  it('a silent agent\'s Node is never deleted; leaving removes only Weft\'s annotations, blocks and lease', async () => {
    const s = store as Store;
    const n1 = (await s.get<NodeObject>('Node', 'n1')) as NodeObject;
    assert.equal(await removeGoneNode(s, n1, undefined), false);
    assert.ok(await s.get('Node', 'n1'), 'still there');
    await leaveCluster(s, 'n1');
    const left = (await s.get<NodeObject>('Node', 'n1')) as NodeObject;
    assert.equal(left.metadata.uid, n1.metadata.uid);
    assert.deepEqual(left.metadata.annotations ?? {}, {});
    assert.deepEqual(left.spec?.podCIDRs, ['10.244.7.0/24']);
    assert.deepEqual((await s.list<IPBlockObject>('IPBlock')).items.filter((b) => b.spec.node === 'n1'), []);
    assert.equal(await s.get('Lease', 'n1', SYSTEM_NAMESPACE), undefined);
  });
});
