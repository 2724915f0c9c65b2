/**
 * What this agent expects its node's kernel to hold, for `weft doctor` (GET /v1/doctor): the
 * peers its backend is given (with their blocks, addresses, VTEP MACs and keys), the devices and
 * MTU, its attachments and reservations, the policy table it last applied, the leases it sees and
 * its clock. Doctor compares this with what the kernel holds; the health answer stays small.
 */
import type { Peer } from '../datapath/peer.js';
import { VXLAN_DEV } from '../datapath/vxlan.js';
import { WireGuardBackend } from '../datapath/wireguard.js';
import type { Ipam } from '../ipam/ipam.js';
import type { LeaseObject } from '../model/objects.js';
import type { AttachmentStore } from './attachment-store.js';
import type { JoinedNode } from './join.js';

export const DOCTOR_PATH = '/v1/doctor';

export interface DoctorViewCluster {
  node: string;
  /** vxlan, host-gw or wireguard: what carries pod traffic between nodes. */
  transport: string;
  uplink: { dev: string; mtu: number; ips: string[] };
  blocks: string[];
  clusterCidrs: string[];
  /** The peers the backend was last given and routes (a node left out for a problem is not here). */
  peers: Peer[];
  /** The backend's device (weft.vxlan, the WireGuard device), where it has one. */
  device?: string;
  wireguardPublicKey?: string;
  leaseDurationSeconds: number;
  /** Every node's lease as this agent's cache holds it. */
  leases: Array<{ node: string; renewTime?: string }>;
}

export interface DoctorView {
  /** The agent's clock when it answered (ISO). */
  now: string;
  stateDir: string;
  podMtu: number;
  attachments: Array<{ containerId: string; ifName: string; hostIf: string; state: 'pending' | 'ready'; addresses: string[] }>;
  reservations: Array<{ address: string; containerId?: string; ifName?: string }>;
  cluster?: DoctorViewCluster;
  /** The policy table the agent last applied (generation, highest version); absent: none yet. */
  policyInForce?: { generation: number; version: number };
}

export interface DoctorSources {
  stateDir: string;
  podMtu: number;
  records: AttachmentStore;
  ipam: Ipam;
  cluster?: { joined: JoinedNode; peers: () => Peer[]; leases: () => LeaseObject[] };
  policyInForce?: () => { generation: number; version: number } | undefined;
}

export function doctorView(s: DoctorSources): DoctorView {
  const c = s.cluster;
  const inForce = s.policyInForce?.();
  const backend = c?.joined.backend;
  return {
    now: new Date().toISOString(),
    stateDir: s.stateDir,
    podMtu: s.podMtu,
    attachments: s.records.list().map((r) => ({ containerId: r.containerId, ifName: r.ifName, hostIf: r.hostIf, state: r.state, addresses: r.addresses })),
    reservations: s.ipam.reservations().map((r) => ({ address: r.address, ...(r.owner ? { containerId: r.owner.containerId, ifName: r.owner.ifName } : {}) })),
    ...(c && backend
      ? {
          cluster: {
            node: c.joined.nodeName,
            transport: backend.type,
            uplink: { dev: c.joined.uplink.dev, mtu: c.joined.uplink.mtu, ips: c.joined.uplink.ips },
            blocks: c.joined.blocks,
            clusterCidrs: c.joined.network.spec.podCIDRs,
            peers: c.peers(),
            ...(backend.type === 'vxlan' ? { device: VXLAN_DEV } : {}),
            ...(backend instanceof WireGuardBackend ? { device: backend.status().device, wireguardPublicKey: backend.status().publicKey } : {}),
            leaseDurationSeconds: c.joined.network.spec.leaseDurationSeconds,
            leases: c.leases().map((l) => ({ node: l.metadata.name, ...(l.spec?.renewTime ? { renewTime: l.spec.renewTime } : {}) })),
          },
        }
      : {}),
    ...(inForce ? { policyInForce: inForce } : {}),
  };
}
