/**
 * Encryption between nodes: WireGuard carries pod traffic in place of the backend's own
 * transport. One device per node (the kernel's where it has one, else wireguard-go); each peer
 * is another node, its public key and endpoint from its Node object, its pod blocks (both
 * families) as allowed IPs, so a packet is only ever accepted from the node that holds its
 * source block. A route per peer block sends pod traffic into the device; an `unreachable`
 * route for each cluster pod range catches what no peer covers (a node that has not published
 * a key yet): pod traffic between nodes is never sent in clear. The device holds this node's
 * own block node addresses, so the node's own traffic to remote pods has a source that peers
 * accept. Pod MTU = uplink MTU - 60 (IPv4 underlay) or - 80 (IPv6): 32 bytes of WireGuard,
 * 8 of UDP, 20 or 40 of outer IP.
 */
import { join } from 'node:path';
import { ip, ipBatch, ipc, type IpCommand } from '../kernel/ip.js';
import { createKernelDevice, linkKind, startUserspaceDevice, wgSetIdentity, wgSetPeers, wgSetPrivateKey, wgShow, WireGuardError, type WgDeviceState, type WgPeerChange, type WireGuardImplementation } from '../kernel/wireguard.js';
import { nodeAddressOf } from '../ipam/pool.js';
import { Mutex } from '../util/mutex.js';
import type { Backend, BackendPublished } from './backend.js';
import type { Peer } from './peer.js';
import { ROUTE_PROTO, weftRoutes } from './routes.js';
import { keyFile, loadOrCreateKeyPair, storeNewKeyPair, type KeyPair } from './wireguard-key.js';

export const WIREGUARD_DEV = 'weft.wg';
/** wireguard-go's output, in the state dir. */
export const WIREGUARD_GO_LOG = 'wireguard-go.log';
export const WIREGUARD_OVERHEAD = { ipv4: 60, ipv6: 80 } as const;
/**
 * Seconds between keepalives to each peer. Besides keeping stateful firewalls open, setting it
 * on a new peer makes the device start a handshake at once: after a peer's key changes, the
 * new session is up one round trip after the new key is seen, not when traffic next asks.
 */
export const PERSISTENT_KEEPALIVE = 25;

export interface WireGuardConfig {
  dev: string;
  port: number;
  stateDir: string;
  uplinkMtu: number;
  /** This node's underlay address peers send to (IPv4 preferred). */
  endpointIp: string;
  /** This node's own blocks. */
  blocks: string[];
  /** The cluster's pod ranges: what no peer covers is unreachable, never sent in clear. */
  clusterCidrs: string[];
}

export interface WgPeerConfig {
  name: string;
  publicKey: string;
  endpoint: string;
  allowedIps: string[];
}

export interface WireGuardState {
  peers: WgPeerConfig[];
  /** Peer block -> the device it is routed into. */
  routes: string[];
}

/** `ip:port`, the IPv6 form bracketed (pure). */
export function endpointOf(ipAddr: string, port: number): string {
  return ipAddr.includes(':') ? `[${ipAddr}]:${port}` : `${ipAddr}:${port}`;
}

/**
 * The peers and routes for these nodes (pure). A node without a key, one whose key is this
 * node's, and every node of a key two nodes claim are left out and reported: WireGuard keys
 * peers by public key, and one key for two nodes would hand one node's traffic to the other.
 */
export function wireguardDesired(peers: Peer[], ownPublicKey: string): { state: WireGuardState; problems: string[] } {
  const problems: string[] = [];
  const byKey = new Map<string, string[]>();
  for (const p of peers) if (p.wireguard) byKey.set(p.wireguard.publicKey, [...(byKey.get(p.wireguard.publicKey) ?? []), p.name]);
  const state: WireGuardState = { peers: [], routes: [] };
  for (const p of peers) {
    const wg = p.wireguard;
    if (!wg) {
      problems.push(`node ${p.name} publishes no WireGuard key: its pods are unreachable from here until it does (pod traffic is never sent unencrypted)`);
      continue;
    }
    if (wg.publicKey === ownPublicKey) {
      problems.push(`node ${p.name} publishes this node's own WireGuard public key: not a peer`);
      continue;
    }
    const holders = byKey.get(wg.publicKey) ?? [];
    if (holders.length > 1) {
      problems.push(`nodes ${holders.join(' and ')} publish the same WireGuard public key: none of them is a peer until each has its own (node ${p.name} left out)`);
      continue;
    }
    state.peers.push({ name: p.name, publicKey: wg.publicKey, endpoint: wg.endpoint, allowedIps: [...p.blocks].sort() });
    state.routes.push(...p.blocks);
  }
  return { state, problems };
}

/**
 * The peer changes that turn `have` into `want` (pure): new and changed peers set whole,
 * peers no longer wanted removed, the rest untouched (their sessions go on).
 */
export function peerChanges(want: WgPeerConfig[], have: WgDeviceState['peers']): WgPeerChange[] {
  const h = new Map(have.map((p) => [p.publicKey, p]));
  const wanted = new Set(want.map((w) => w.publicKey));
  const out: WgPeerChange[] = [];
  for (const w of want) {
    const p = h.get(w.publicKey);
    const same = p !== undefined && p.endpoint === w.endpoint && p.persistentKeepalive === PERSISTENT_KEEPALIVE && [...p.allowedIps].sort().join(',') === w.allowedIps.join(',');
    if (!same) out.push({ publicKey: w.publicKey, endpoint: w.endpoint, allowedIps: w.allowedIps, persistentKeepalive: PERSISTENT_KEEPALIVE });
  }
  for (const p of have) if (!wanted.has(p.publicKey)) out.push({ publicKey: p.publicKey, remove: true });
  return out;
}

export interface WireGuardStatus {
  implementation: WireGuardImplementation | undefined;
  device: string;
  publicKey: string;
  port: number;
  /** Configured peers: node, and seconds since its last handshake (absent: none yet). */
  peers: Array<{ node: string; handshakeSecondsAgo?: number }>;
}

export class WireGuardBackend implements Backend {
  readonly type = 'wireguard' as const;
  readonly podMtu: number;
  private keys: KeyPair;
  private implementation: WireGuardImplementation | undefined;
  private readonly mutex = new Mutex();
  private configured: WgPeerConfig[] = [];
  private lastDevice: WgDeviceState | undefined;

  constructor(private readonly cfg: WireGuardConfig) {
    this.podMtu = cfg.uplinkMtu - (cfg.endpointIp.includes(':') ? WIREGUARD_OVERHEAD.ipv6 : WIREGUARD_OVERHEAD.ipv4);
    this.keys = loadOrCreateKeyPair(cfg.stateDir);
  }

  private published(): BackendPublished {
    return { wireguard: { publicKey: this.keys.publicKey, endpoint: endpointOf(this.cfg.endpointIp, this.cfg.port) } };
  }

  /**
   * The device, kept when it is there (an agent restart must not drop the tunnel or its
   * sessions): the kernel's, else a running wireguard-go's; else made, kernel first.
   */
  private async ensureDevice(): Promise<void> {
    const { dev } = this.cfg;
    const kind = await linkKind(dev);
    if (kind === 'wireguard') {
      this.implementation = 'kernel';
      return;
    }
    if (kind === 'tun' && (await wgShow(dev).catch(() => undefined))) {
      this.implementation = 'wireguard-go';
      return;
    }
    if (kind !== undefined) await ip(['link', 'del', 'dev', dev]);
    if (await createKernelDevice(dev)) {
      this.implementation = 'kernel';
      return;
    }
    await startUserspaceDevice(dev, join(this.cfg.stateDir, WIREGUARD_GO_LOG));
    this.implementation = 'wireguard-go';
  }

  setup(): Promise<void> {
    return this.mutex.run(() => this.setupLocked());
  }

  private async setupLocked(): Promise<void> {
    const c = this.cfg;
    await this.ensureDevice();
    const have = await wgShow(c.dev);
    if (!have) throw new WireGuardError(c.dev, 'the device vanished while it was being set up');
    // The same key again would change nothing, but is not even sent.
    if (have.publicKey !== this.keys.publicKey || have.listenPort !== c.port) await wgSetIdentity(c.dev, keyFile(c.stateDir), c.port);
    const cmds: IpCommand[] = [ipc`link set dev ${c.dev} mtu ${this.podMtu} up`];
    for (const b of c.blocks) {
      const a = nodeAddressOf(b);
      cmds.push(a.includes(':') ? ipc`addr replace ${a}/128 dev ${c.dev} nodad` : ipc`addr replace ${a}/32 dev ${c.dev}`);
    }
    for (const r of c.clusterCidrs) cmds.push(ipc`route replace unreachable ${r} proto ${ROUTE_PROTO}`);
    await ipBatch(cmds);
  }

  reconcile(peers: Peer[]): Promise<{ problems: string[]; changes: number }> {
    return this.mutex.run(async () => {
      const c = this.cfg;
      let have = await wgShow(c.dev);
      const { state: want, problems } = wireguardDesired(peers, this.keys.publicKey);
      let changes = 0;
      if (!have) {
        // Gone behind the agent's back (deleted, or its wireguard-go killed): made again.
        await this.setupLocked();
        have = await wgShow(c.dev);
        changes++;
      }
      const peerCmds = peerChanges(want.peers, have?.peers ?? []);
      // Removals first: a node's new key takes over the allowed IPs its old key had.
      await wgSetPeers(c.dev, [...peerCmds.filter((x) => 'remove' in x), ...peerCmds.filter((x) => !('remove' in x))]);
      changes += peerCmds.length;
      this.configured = want.peers;
      const routes = await weftRoutes();
      const haveRoutes = new Set(routes.filter((r) => r.dev === c.dev).map((r) => r.dst));
      const haveCatch = new Set(routes.filter((r) => r.type === 'unreachable').map((r) => r.dst));
      const cmds: IpCommand[] = [];
      for (const r of c.clusterCidrs) if (!haveCatch.has(r)) cmds.push(ipc`route replace unreachable ${r} proto ${ROUTE_PROTO}`);
      for (const b of want.routes) if (!haveRoutes.has(b)) cmds.push(ipc`route replace ${b} dev ${c.dev} proto ${ROUTE_PROTO}`);
      for (const b of haveRoutes) if (!want.routes.includes(b)) cmds.push(ipc`route del ${b} dev ${c.dev} proto ${ROUTE_PROTO}`);
      // One peer's route the kernel refuses is reported, and must not hold back the others'.
      await ipBatch(cmds, { force: true }).catch((err: Error) => problems.push(`the kernel refused a route into ${c.dev}: ${err.message}`));
      this.lastDevice = (await wgShow(c.dev).catch(() => undefined)) ?? have;
      return { problems, changes: changes + cmds.length };
    });
  }

  /** A new key pair: stored, set on the device, returned for publishing. Peers follow from the Node object. */
  rotateKey(): Promise<BackendPublished> {
    return this.mutex.run(async () => {
      const pair = storeNewKeyPair(this.cfg.stateDir);
      this.keys = pair;
      await wgSetPrivateKey(this.cfg.dev, keyFile(this.cfg.stateDir));
      return this.published();
    });
  }

  status(now = Date.now()): WireGuardStatus {
    const seen = new Map((this.lastDevice?.peers ?? []).map((p) => [p.publicKey, p.latestHandshake]));
    return {
      implementation: this.implementation,
      device: this.cfg.dev,
      publicKey: this.keys.publicKey,
      port: this.cfg.port,
      peers: this.configured.map((p) => {
        const t = seen.get(p.publicKey) ?? 0;
        return { node: p.name, ...(t > 0 ? { handshakeSecondsAgo: Math.max(0, Math.round(now / 1000 - t)) } : {}) };
      }),
    };
  }

  async teardown(): Promise<void> {
    const c = this.cfg;
    // Deleting the device ends a wireguard-go serving it, and the routes into it.
    await ip(['link', 'del', 'dev', c.dev]).catch(() => undefined);
    const left = (await weftRoutes()).filter((r) => r.type === 'unreachable' || r.dev === c.dev);
    await ipBatch(left.map((r) => ipc`route del ${r.dst} proto ${ROUTE_PROTO}`), { force: true }).catch(() => undefined);
  }
}
