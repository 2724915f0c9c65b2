import type { Peer } from '../datapath/peer.js';
import { NODE_ANNOTATIONS, type NodeObject } from '../model/objects.js';

export type { Peer };

/**
 * The other nodes this node must reach (pure): every node with pod blocks, except itself, with
 * what its peers' backends need from it — whatever its agent is doing. A node's routes stay
 * while its Node object exists; a crashed or upgrading agent changes nothing here (its liveness
 * is reported, see liveness.ts). A node leaves when its Node object is removed.
 *
 * Where the cluster's blocks are leased through IPBlock objects, `holders` (block → node) is
 * the truth: a Node's podCIDRs count only where that node holds the block, so a Node object
 * naming someone else's block (a mistake, or a forgery) never steers another node's traffic.
 */
export function peersFrom(nodes: NodeObject[], self: string, holders?: ReadonlyMap<string, string>): { peers: Peer[]; problems: string[] } {
  const peers: Peer[] = [];
  const problems: string[] = [];
  for (const n of nodes) {
    const name = n.metadata.name;
    if (name === self) continue;
    const listed = n.spec?.podCIDRs ?? [];
    const blocks = holders === undefined ? [...listed] : listed.filter((b) => holders.get(b) === name);
    for (const b of listed) {
      if (holders === undefined || holders.get(b) === name) continue;
      const holder = holders.get(b);
      problems.push(`node ${name} lists pod block ${b}, which ${holder ? `node ${holder} holds` : 'no IPBlock gives it'}: not routed to ${name}`);
    }
    if (blocks.length === 0) continue;
    const ann = n.metadata.annotations ?? {};
    const ips = (ann[NODE_ANNOTATIONS.nodeIPs] ?? (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address).join(','))
      .split(',')
      .filter((s) => s !== '')
      .sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')));
    peers.push({ name, ips, blocks, vxlanMac: ann[NODE_ANNOTATIONS.vxlanMac], backend: ann[NODE_ANNOTATIONS.backend] });
  }
  return { peers: peers.sort((a, b) => a.name.localeCompare(b.name)), problems };
}
