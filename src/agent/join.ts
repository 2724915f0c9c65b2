/**
 * Joining a cluster, once at start: the cluster network (created from the flags by the first
 * node), this node's lease, Node object and pod blocks (leased as IPBlocks, or with ipam
 * kubernetes the Node's spec.podCIDRs), and its backend set up. What it returns
 * is what the node's controllers work from; nothing here keeps running.
 */
import { allocatedBlocks, claimBlocksReporting, encryptionMismatch, ensureClusterNetwork, registerNode, renewLease, settingsDiffer, weftOwnsNodes, type ClusterDefaults, type NodeInfo } from '../cluster/membership.js';
import { StoreError, type Store } from '../datastore/store.js';
import { BACKEND_REGISTRY, type Backend } from '../datapath/backend.js';
import { transportOf } from '../datapath/backend-type.js';
import { findUplink, type Uplink } from '../datapath/uplink.js';
import type { ClusterNetworkObject, EncryptionType } from '../model/objects.js';
import type { Logger } from '../util/log.js';
import { UserError } from '../util/user-error.js';

export interface JoinConfig {
  nodeName: string;
  nodeIps: string[];
  defaults: ClusterDefaults | undefined;
  /** The encryption this agent was told to use, if it was told: it must be the cluster's. */
  encryption?: EncryptionType;
  /** Where the agent keeps its state (the WireGuard private key lives there). */
  stateDir: string;
  /** The WireGuard device's name, where not weft.wg (a lab's nodes share one /var/run/wireguard). */
  wireguardDevice?: string;
  log: Logger;
}

export interface JoinedNode {
  nodeName: string;
  network: ClusterNetworkObject;
  uplink: Uplink;
  blocks: string[];
  backend: Backend;
  info: NodeInfo;
  /** What joining had to say that stays true (a block taken over from a gone node). */
  notes: string[];
}

export async function joinCluster(store: Store, cfg: JoinConfig): Promise<JoinedNode> {
  const { nodeName, log } = cfg;
  const network = await ensureClusterNetwork(store, cfg.defaults);
  const differ = cfg.defaults ? settingsDiffer(cfg.defaults, network.spec) : [];
  if (differ.length > 0) {
    log.warn("this agent's cluster settings are not the cluster's, which stand: they are fixed when the first agent joins (ClusterNetwork \"default\")", { differences: differ });
  }
  const refused = encryptionMismatch(cfg.encryption, network.spec);
  if (refused) throw new UserError(refused);
  const uplink = await findUplink(cfg.nodeIps);
  const entry = BACKEND_REGISTRY[transportOf(network.spec)];
  const ctx = {
    nodeName,
    uplink,
    settings: network.spec.backend,
    clusterCidrs: network.spec.podCIDRs,
    stateDir: cfg.stateDir,
    ...(network.spec.encryption ? { encryption: network.spec.encryption } : {}),
    ...(cfg.wireguardDevice ? { wireguardDevice: cfg.wireguardDevice } : {}),
  };
  const prepared = entry.prepare?.(ctx);
  for (const m of prepared?.info ?? []) log.info(m);
  for (const m of prepared?.warn ?? []) log.warn(m);
  const info: NodeInfo = { name: nodeName, ips: uplink.ips, backend: network.spec.backend.type, ...entry.published(ctx) };
  // The lease first: a block whose holder has no lease looks free to other nodes.
  await renewLease(store, nodeName, network.spec.leaseDurationSeconds);
  await registerNode(store, info);
  let blocks: string[];
  let notes: string[] = [];
  if (network.spec.ipam === 'kubernetes') {
    if (weftOwnsNodes(store)) throw new StoreError('Invalid', "the cluster's ipam is kubernetes (blocks from Node.spec.podCIDRs), which only the Kubernetes datastore has: use --datastore kubernetes");
    blocks = await allocatedBlocks(store, nodeName, network, { waiting: (m) => log.warn(m) });
  } else {
    const claimed = await claimBlocksReporting(store, nodeName, network);
    blocks = claimed.blocks;
    notes = claimed.reclaimed.map((r) => `took over pod block ${r.cidr} from node ${r.from}, which is gone (no Node object, lease expired): pods it may still run with addresses of that block would clash`);
    for (const n of notes) log.warn(n);
  }
  await registerNode(store, info, blocks);
  const backend = entry.create({ ...ctx, blocks });
  await backend.setup();
  log.info('joined the cluster', { node: nodeName, backend: network.spec.backend.type, transport: backend.type, blocks, uplink: uplink.dev, underlay: uplink.ips, podMtu: backend.podMtu });
  return { nodeName, network, uplink, blocks, backend, info, notes };
}
