/**
 * How a node reaches the other nodes' pod blocks: one interface, one implementation per
 * backend type, chosen from an explicit registry (a new backend is one entry here and one run
 * of the backend contract suite, src/datapath/backend.contract.ts).
 */
import { DEFAULT_WIREGUARD_PORT, type BackendSettings, type EncryptionSettings, type TransportType } from './backend-type.js';
import { HostGwBackend } from './host-gw.js';
import type { Peer } from './peer.js';
import type { Uplink } from './uplink.js';
import { VxlanBackend, vtepMac } from './vxlan.js';
import { endpointOf, WIREGUARD_DEV, WireGuardBackend } from './wireguard.js';
import { keyFile, loadOrCreateKeyPair } from './wireguard-key.js';

export interface Backend {
  readonly type: TransportType;
  /** The MTU pods get: the uplink's less this backend's overhead. */
  readonly podMtu: number;
  /** Creates what the backend needs before any peer (a device); idempotent. */
  setup(): Promise<void>;
  /**
   * Makes the kernel route to exactly these peers; returns what it refused, how many changes it
   * made and, where it left some peers out (WireGuard: a node without a key), the ones it routes.
   */
  reconcile(peers: Peer[]): Promise<{ problems: string[]; changes: number; routed?: string[] }>;
  /** Removes everything the backend made (the node leaves). */
  teardown(): Promise<void>;
}

/** What a node publishes for its peers' backends (its VTEP MAC, its WireGuard key and endpoint). */
export interface BackendPublished {
  vxlanMac?: string;
  wireguard?: { publicKey: string; endpoint: string };
}

export interface BackendContext {
  nodeName: string;
  uplink: Uplink;
  /** This node's own pod blocks. */
  blocks: string[];
  settings: BackendSettings;
  /** Set when the cluster encrypts: the wireguard transport's. */
  encryption?: EncryptionSettings;
  /** The cluster's pod ranges. */
  clusterCidrs: string[];
  /** The agent's state dir (the WireGuard key lives there). */
  stateDir: string;
  /** The WireGuard device's name (default weft.wg; a lab gives each node its own). */
  wireguardDevice?: string;
}

export interface BackendEntry {
  /** Makes what the node needs before it publishes anything (WireGuard: its key); what it did, to log. */
  prepare?(ctx: Omit<BackendContext, 'blocks'>): { info: string[]; warn: string[] };
  create(ctx: BackendContext): Backend;
  /** What this node publishes on its Node object, known before it holds blocks (it registers first). */
  published(ctx: Omit<BackendContext, 'blocks'>): BackendPublished;
}

/** The underlay address WireGuard peers send to: IPv4 where the node has one. */
function wireguardEndpointIp(ctx: Omit<BackendContext, 'blocks'>): string {
  const a = ctx.uplink.ips.find((x) => !x.includes(':')) ?? ctx.uplink.ips[0];
  if (!a) throw new Error('WireGuard needs an underlay address on this node (--node-ip)');
  return a;
}

export const BACKEND_REGISTRY: Readonly<Record<TransportType, BackendEntry>> = {
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
    published: (ctx) => ({ vxlanMac: vtepMac(ctx.nodeName) }),
  },
  'host-gw': {
    create: (ctx) => new HostGwBackend(ctx.uplink.mtu),
    published: () => ({}),
  },
  wireguard: {
    prepare: (ctx) => {
      const k = loadOrCreateKeyPair(ctx.stateDir);
      const file = keyFile(ctx.stateDir);
      if (k.replaced) return { info: [], warn: [`${file} held no usable WireGuard key: replaced by a new key pair (public key ${k.publicKey}); peers follow once it is published`] };
      return { info: k.created ? [`made this node's WireGuard key pair in ${file} (public key ${k.publicKey})`] : [], warn: [] };
    },
    create: (ctx) =>
      new WireGuardBackend({
        dev: ctx.wireguardDevice ?? WIREGUARD_DEV,
        port: ctx.encryption?.port ?? DEFAULT_WIREGUARD_PORT,
        stateDir: ctx.stateDir,
        uplinkMtu: ctx.uplink.mtu,
        endpointIp: wireguardEndpointIp(ctx),
        blocks: ctx.blocks,
        clusterCidrs: ctx.clusterCidrs,
      }),
    published: (ctx) => ({ wireguard: { publicKey: loadOrCreateKeyPair(ctx.stateDir).publicKey, endpoint: endpointOf(wireguardEndpointIp(ctx), ctx.encryption?.port ?? DEFAULT_WIREGUARD_PORT) } }),
  },
};
