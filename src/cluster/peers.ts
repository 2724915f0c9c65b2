/**
 * The other nodes this node must reach (pure): every node with pod blocks, except itself, with
 * what its peers' backends need from it — whatever its agent is doing. A node's routes stay
 * while its Node object exists; a crashed or upgrading agent changes nothing here (its liveness
 * is reported, see liveness.ts). A node leaves when its Node object is removed.
 *
 * Nothing a Node object says is routed unchecked — it could be a mistake or a forgery:
 *   - where blocks are leased through IPBlock objects, `holders` (block → node) is the truth: a
 *     Node's podCIDRs count only where that node holds the block;
 *   - with `cluster`, a block must lie inside the cluster's pod ranges and be of the cluster's
 *     block size (never 0.0.0.0/0, never an underlay /32), and an underlay address must be a
 *     unicast address outside the pod ranges that is not this node's own;
 *   - with ipam kubernetes (no IPBlocks), blocks a Node annotates count only where its
 *     spec.podCIDRs has them;
 *   - a WireGuard endpoint must be one of the node's checked underlay addresses.
 * What is left out is reported.
 */
import type { Peer } from '../datapath/peer.js';
import { cidrContains, parseAddress, parseCidr, type Cidr } from '../ipam/cidr.js';
import { WIREGUARD_KEY } from '../datapath/wireguard-key.js';
import { NODE_ANNOTATIONS, nodePodCidrs, parseEndpoint, type NodeObject } from '../model/objects.js';
import { compareText } from '../util/compare-text.js';

export type { Peer };

/** The cluster's shape, which a peer's blocks and addresses are checked against. */
export interface ClusterShape {
  podCIDRs: string[];
  blockSize: { ipv4: number; ipv6: number };
  /** This node's own underlay addresses. */
  ownIps: string[];
}

function blockProblem(block: string, ranges: Cidr[], shape: ClusterShape): string | undefined {
  let c: Cidr;
  try {
    c = parseCidr(block);
  } catch {
    return 'is not a CIDR';
  }
  const size = c.family === 4 ? shape.blockSize.ipv4 : shape.blockSize.ipv6;
  if (c.prefix !== size) return `is not a /${size} block of the cluster`;
  if (!ranges.some((r) => r.family === c.family && cidrContains(r, { family: c.family, value: c.network }))) return `lies outside the cluster's pod ranges (${shape.podCIDRs.join(', ')})`;
  return undefined;
}

function underlayProblem(ip: string, ranges: Cidr[], shape: ClusterShape): string | undefined {
  let a: ReturnType<typeof parseAddress>;
  try {
    a = parseAddress(ip);
  } catch {
    return 'is not an address';
  }
  if (shape.ownIps.includes(ip)) return "is this node's own address";
  if (ranges.some((r) => cidrContains(r, a))) return "lies inside the cluster's pod ranges";
  // IPv4-mapped IPv6 addresses too: ::ffff:127.0.0.1 is loopback by another name.
  const special = a.family === 4 ? ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '255.255.255.255/32'] : ['::/128', '::1/128', '::ffff:0:0/96', 'fe80::/10', 'ff00::/8'];
  if (special.map(parseCidr).some((r) => r.family === a.family && cidrContains(r, a))) return 'is not a unicast address another node can have';
  return undefined;
}

/** A CIDR's canonical text, or the text itself where it is not one (it then matches nothing canonical). */
function canonicalCidr(text: string): string {
  try {
    return parseCidr(text).text;
  } catch {
    return text;
  }
}

/** A node's WireGuard key and endpoint, where both are usable: the endpoint must be one of its checked addresses. */
function wireguardOf(name: string, ann: Record<string, string>, ips: string[], problems: string[]): Peer['wireguard'] {
  const publicKey = ann[NODE_ANNOTATIONS.wireguardPublicKey];
  const endpoint = ann[NODE_ANNOTATIONS.wireguardEndpoint];
  if (publicKey === undefined && endpoint === undefined) return undefined;
  const ep = endpoint === undefined ? undefined : parseEndpoint(endpoint);
  const why =
    publicKey === undefined || !WIREGUARD_KEY.test(publicKey)
      ? 'no usable WireGuard public key'
      : !ep
        ? 'no usable WireGuard endpoint'
        : !ips.includes(ep.address)
          ? `WireGuard endpoint ${endpoint}, which is not one of its addresses (${ips.join(', ') || 'none'})`
          : undefined;
  if (why) {
    problems.push(`node ${name} gives ${why}: not a WireGuard peer`);
    return undefined;
  }
  return { publicKey: publicKey as string, endpoint: endpoint as string };
}

export function peersFrom(nodes: NodeObject[], self: string, holders?: ReadonlyMap<string, string>, cluster?: ClusterShape): { peers: Peer[]; problems: string[] } {
  const peers: Peer[] = [];
  const problems: string[] = [];
  const ranges = (cluster?.podCIDRs ?? []).map(parseCidr);
  for (const n of nodes) {
    const name = n.metadata.name;
    if (name === self) continue;
    const blocks: string[] = [];
    // Without IPBlocks (ipam kubernetes), blocks a node lists in its annotation count only where
    // its spec.podCIDRs (the controller manager's allocation, which a node cannot change) has them.
    // Compared in canonical form: fd00:10:244:0::/64 and fd00:10:244::/64 are one block.
    const allocated = holders === undefined && n.metadata.annotations?.[NODE_ANNOTATIONS.podCIDRs] !== undefined ? new Set((n.spec?.podCIDRs ?? []).map(canonicalCidr)) : undefined;
    for (const b of nodePodCidrs(n)) {
      const holder = holders?.get(b);
      const why =
        holders !== undefined && holder !== name
          ? holder
            ? `node ${holder} holds`
            : 'no IPBlock gives it'
          : allocated && !allocated.has(canonicalCidr(b))
            ? "its Node's spec.podCIDRs (the cluster's allocation) does not hold"
            : cluster
              ? blockProblem(b, ranges, cluster)
              : undefined;
      if (why) problems.push(`node ${name} lists pod block ${b}, which ${why}: not routed to ${name}`);
      else blocks.push(b);
    }
    if (blocks.length === 0) continue;
    const ann = n.metadata.annotations ?? {};
    const listed = (ann[NODE_ANNOTATIONS.nodeIPs] ?? (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address).join(',')).split(',').filter((s) => s !== '');
    const ips: string[] = [];
    for (const ip of listed) {
      const why = cluster ? underlayProblem(ip, ranges, cluster) : undefined;
      if (why) problems.push(`node ${name} gives ${ip} as its address, which ${why}: not used`);
      else ips.push(ip);
    }
    ips.sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')));
    const wireguard = wireguardOf(name, ann, ips, problems);
    const createdAt = n.metadata.creationTimestamp;
    peers.push({ name, ips, blocks, vxlanMac: ann[NODE_ANNOTATIONS.vxlanMac], backend: ann[NODE_ANNOTATIONS.backend], ...(createdAt ? { createdAt } : {}), ...(wireguard ? { wireguard } : {}) });
  }
  return { peers: peers.sort((a, b) => compareText(a.name, b.name)), problems };
}
