/**
 * How a node reaches the other nodes' pod blocks: one interface, one implementation per
 * backend type, chosen from an explicit registry (a new backend is one entry here and one run
 * of the backend contract suite, src/datapath/backend.contract.ts).
 */
import type { BackendSettings, BackendType } from './backend-type.js';
import { HostGwBackend } from './host-gw.js';
import type { Peer } from './peer.js';
import type { Uplink } from './uplink.js';
import { VxlanBackend, vtepMac } from './vxlan.js';

export interface Backend {
  readonly type: BackendType;
  /** The MTU pods get: the uplink's less this backend's overhead. */
  readonly podMtu: number;
  /** Creates what the backend needs before any peer (a device); idempotent. */
  setup(): Promise<void>;
  /** Makes the kernel route to exactly these peers; returns what it refused and how many changes it made. */
  reconcile(peers: Peer[]): Promise<{ problems: string[]; changes: number }>;
  /** Removes everything the backend made (the node leaves). */
  teardown(): Promise<void>;
}

export interface BackendContext {
  nodeName: string;
  uplink: Uplink;
  /** This node's own pod blocks. */
  blocks: string[];
  settings: BackendSettings;
}

/** What this node publishes on its Node object for its peers' backends (e.g. its VTEP MAC). */
export interface BackendEntry {
  create(ctx: BackendContext): Backend;
  published(nodeName: string): { vxlanMac?: string };
}

export const BACKEND_REGISTRY: Readonly<Record<BackendType, BackendEntry>> = {
  vxlan: {
    create: (ctx) => {
      const v4 = ctx.uplink.ips.find((a) => !a.includes(':'));
      if (!v4) throw new Error('the vxlan backend needs an IPv4 underlay address on this node (--node-ip)');
      return new VxlanBackend({
        vni: ctx.settings.vni ?? 1,
        port: ctx.settings.port ?? 8472,
        localIp: v4,
        uplinkDev: ctx.uplink.dev,
        uplinkMtu: ctx.uplink.mtu,
        mac: vtepMac(ctx.nodeName),
        blocks: ctx.blocks,
      });
    },
    published: (nodeName) => ({ vxlanMac: vtepMac(nodeName) }),
  },
  'host-gw': {
    create: (ctx) => new HostGwBackend(ctx.uplink.mtu),
    published: () => ({}),
  },
};
