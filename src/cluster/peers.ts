import { NODE_ANNOTATIONS, type LeaseObject, type NodeObject } from '../model/objects.js';
import { isAlive, type LivenessView } from './liveness.js';

/**
 * The other nodes this node must reach (pure): every node with pod blocks and a live lease,
 * except itself, with what its peers' backends need from it.
 */
export interface Peer {
  name: string;
  /** Underlay addresses, IPv4 first. */
  ips: string[];
  blocks: string[];
  vxlanMac: string | undefined;
  backend: string | undefined;
}

export function peersFrom(nodes: NodeObject[], leases: Map<string, LeaseObject>, self: string, view: LivenessView): Peer[] {
  const out: Peer[] = [];
  for (const n of nodes) {
    const name = n.metadata.name;
    if (name === self) continue;
    const blocks = n.spec?.podCIDRs ?? [];
    if (blocks.length === 0) continue;
    if (!isAlive(leases.get(name), view)) continue;
    const ann = n.metadata.annotations ?? {};
    const ips = (ann[NODE_ANNOTATIONS.nodeIPs] ?? (n.status?.addresses ?? []).map((a) => a.address).join(','))
      .split(',')
      .filter((s) => s !== '')
      .sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')));
    out.push({ name, ips, blocks: [...blocks], vxlanMac: ann[NODE_ANNOTATIONS.vxlanMac], backend: ann[NODE_ANNOTATIONS.backend] });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
