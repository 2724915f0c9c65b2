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
import { cidrContains, parseCidr } from '../ipam/cidr.js';
import { nodeAddressOf } from '../ipam/pool.js';
import { Mutex } from '../util/mutex.js';
import type { Backend, BackendPublished } from './backend.js';
import type { Peer } from './peer.js';
import { ROUTE_PROTO, weftRoutes, type ObservedRoute } from './routes.js';
import { commitStagedKey, dropStagedKey, keyFile, loadOrCreateKeyPair, stagedKeyFile, stageNewKeyPair } from './wireguard-key.js';

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
/** How long a replaced peer stays after its successor takes its blocks: its in-flight packets go out. */
const PEER_DRAIN_MS = 50;

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
 * Which node keeps a public key several nodes publish (pure): the one whose Node object is
 * oldest — a newer node copying a key (public, so anyone may) cannot push out the node that has
 * it. Undefined where that cannot be told (a Node without a creation time, or a tie): none then.
 */
function keyOwner(claimants: Peer[]): string | undefined {
  if (claimants.some((p) => p.createdAt === undefined)) return undefined;
  const sorted = [...claimants].sort((a, b) => Date.parse(a.createdAt as string) - Date.parse(b.createdAt as string));
  const [first, second] = sorted;
  return first && second && Date.parse(first.createdAt as string) < Date.parse(second.createdAt as string) ? first.name : undefined;
}

/**
 * The peers and routes for these nodes (pure). A node without a key, one whose key is this
 * node's, and a node whose key another node has too (all but the oldest of them) are left out
 * and reported: WireGuard keys peers by public key, and one key for two nodes would hand one
 * node's traffic to the other.
 */
export function wireguardDesired(peers: Peer[], ownPublicKey: string): { state: WireGuardState; problems: string[] } {
  const problems: string[] = [];
  const byKey = new Map<string, Peer[]>();
  for (const p of peers) if (p.wireguard) byKey.set(p.wireguard.publicKey, [...(byKey.get(p.wireguard.publicKey) ?? []), p]);
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
    const claimants = byKey.get(wg.publicKey) ?? [];
    if (claimants.length > 1) {
      const owner = keyOwner(claimants);
      if (owner !== p.name) {
        const names = claimants.map((x) => x.name).join(' and ');
        problems.push(
          owner
            ? `nodes ${names} publish the same WireGuard public key: node ${p.name} is left out until it has its own (node ${owner}, whose Node is oldest, keeps it)`
            : `nodes ${names} publish the same WireGuard public key: none of them is a peer until each has its own (node ${p.name} left out)`,
        );
        continue;
      }
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

/**
 * Weft's routes into the pod ranges through another device than WireGuard's (pure): left by an
 * unencrypted cluster this node was in before (recreated without `uninstall --all`). More
 * specific than the unreachable catch-all, they would carry pod traffic in clear.
 */
export function clearRoutes(routes: ObservedRoute[], dev: string, clusterCidrs: string[]): ObservedRoute[] {
  const ranges = clusterCidrs.map(parseCidr);
  return routes.filter((r) => {
    if (r.type !== 'unicast' || r.dev === dev || r.dev === undefined) return false;
    const c = parseCidrOrUndefined(r.dst);
    return c !== undefined && ranges.some((x) => x.family === c.family && x.prefix <= c.prefix && cidrContains(x, { family: c.family, value: c.network }));
  });
}

function parseCidrOrUndefined(text: string): ReturnType<typeof parseCidr> | undefined {
  try {
    return parseCidr(text.includes('/') ? text : `${text}/${text.includes(':') ? 128 : 32}`);
  } catch {
    return undefined;
  }
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
  /** The public key in force (the private key stays in its file: `wg` reads it there). */
  private publicKey: string;
  private implementation: WireGuardImplementation | undefined;
  private readonly mutex = new Mutex();
  private configured: WgPeerConfig[] = [];
  private lastDevice: WgDeviceState | undefined;

  constructor(private readonly cfg: WireGuardConfig) {
    this.podMtu = cfg.uplinkMtu - (cfg.endpointIp.includes(':') ? WIREGUARD_OVERHEAD.ipv6 : WIREGUARD_OVERHEAD.ipv4);
    this.publicKey = loadOrCreateKeyPair(cfg.stateDir).publicKey;
  }

  private published(publicKey: string): BackendPublished {
    return { wireguard: { publicKey, endpoint: endpointOf(this.cfg.endpointIp, this.cfg.port) } };
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
    // A TUN of this name that no wireguard-go serves (none answers on its socket) is made again;
    // an error reading it stops the start, rather than deleting a tunnel that may be working.
    if (kind === 'tun' && (await wgShow(dev))) {
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
    if (have.publicKey !== this.publicKey || have.listenPort !== c.port) await wgSetIdentity(c.dev, keyFile(c.stateDir), c.port);
    const cmds: IpCommand[] = [ipc`link set dev ${c.dev} mtu ${this.podMtu} up`];
    for (const b of c.blocks) {
      const a = nodeAddressOf(b);
      cmds.push(a.includes(':') ? ipc`addr replace ${a}/128 dev ${c.dev} nodad` : ipc`addr replace ${a}/32 dev ${c.dev}`);
    }
    for (const r of c.clusterCidrs) cmds.push(ipc`route replace unreachable ${r} proto ${ROUTE_PROTO}`);
    await ipBatch(cmds);
  }

  reconcile(peers: Peer[]): Promise<{ problems: string[]; changes: number; routed: string[] }> {
    return this.mutex.run(async () => {
      const c = this.cfg;
      let have = await wgShow(c.dev);
      const { state: want, problems } = wireguardDesired(peers, this.publicKey);
      let changes = 0;
      if (!have) {
        // Gone behind the agent's back (deleted, or its wireguard-go killed): made again.
        await this.setupLocked();
        have = await wgShow(c.dev);
        changes++;
      }
      const peerCmds = peerChanges(want.peers, have?.peers ?? []);
      const adds = peerCmds.filter((x) => !('remove' in x));
      const removals = peerCmds.filter((x) => 'remove' in x);
      // New and changed peers first: a node's new key takes its blocks over from its old key at
      // once, so new packets wait for the new session. The old key's peer goes a moment later:
      // removing a peer drops what it is still encrypting or sending (a packet lost per rotation
      // was seen in CI when it went in the same step).
      await wgSetPeers(c.dev, adds);
      if (adds.length > 0 && removals.length > 0) await new Promise((r) => setTimeout(r, PEER_DRAIN_MS));
      await wgSetPeers(c.dev, removals);
      changes += peerCmds.length;
      this.configured = want.peers;
      const routes = await weftRoutes();
      const haveRoutes = new Set(routes.filter((r) => r.dev === c.dev).map((r) => r.dst));
      const haveCatch = new Set(routes.filter((r) => r.type === 'unreachable').map((r) => r.dst));
      const cmds: IpCommand[] = [];
      for (const r of c.clusterCidrs) if (!haveCatch.has(r)) cmds.push(ipc`route replace unreachable ${r} proto ${ROUTE_PROTO}`);
      for (const r of clearRoutes(routes, c.dev, c.clusterCidrs)) cmds.push(ipc`route del ${r.dst} dev ${r.dev ?? ''} proto ${ROUTE_PROTO}`);
      for (const b of want.routes) if (!haveRoutes.has(b)) cmds.push(ipc`route replace ${b} dev ${c.dev} proto ${ROUTE_PROTO}`);
      for (const b of haveRoutes) if (!want.routes.includes(b)) cmds.push(ipc`route del ${b} dev ${c.dev} proto ${ROUTE_PROTO}`);
      // One peer's route the kernel refuses is reported, and must not hold back the others'.
      await ipBatch(cmds, { force: true }).catch((err: Error) => problems.push(`the kernel refused a route into ${c.dev}: ${err.message}`));
      // Read again only when the peers changed: a sync that changed nothing runs one `wg`, not two.
      this.lastDevice = peerCmds.length > 0 ? ((await wgShow(c.dev).catch(() => undefined)) ?? have) : have;
      return { problems, changes: changes + cmds.length, routed: want.peers.map((p) => p.name) };
    });
  }

  /**
   * A new key pair, in force on the device, then published (`publish`: the Node object, which
   * peers follow); only then does it replace the key file. In this order only this node's
   * outgoing packets wait, and only until a peer has the new key; publishing first would stop
   * both directions. Should publishing fail, the device goes back to the old key, which the
   * Node still names: a failed rotation changes nothing.
   */
  rotateKey(publish: (p: BackendPublished) => Promise<void>): Promise<BackendPublished> {
    return this.mutex.run(async () => {
      const { dev, stateDir } = this.cfg;
      try {
        const publicKey = stageNewKeyPair(stateDir);
        await wgSetPrivateKey(dev, stagedKeyFile(stateDir));
        const next = this.published(publicKey);
        try {
          await publish(next);
        } catch (err) {
          await wgSetPrivateKey(dev, keyFile(stateDir));
          throw err;
        }
        commitStagedKey(stateDir);
        this.publicKey = publicKey;
        return next;
      } finally {
        dropStagedKey(stateDir);
      }
    });
  }

  status(now = Date.now()): WireGuardStatus {
    const seen = new Map((this.lastDevice?.peers ?? []).map((p) => [p.publicKey, p.latestHandshake]));
    return {
      implementation: this.implementation,
      device: this.cfg.dev,
      publicKey: this.publicKey,
      port: this.cfg.port,
      peers: this.configured.map((p) => {
        const t = seen.get(p.publicKey) ?? 0;
        return { node: p.name, ...(t > 0 ? { handshakeSecondsAgo: Math.max(0, Math.round(now / 1000 - t)) } : {}) };
      }),
    };
  }

  /**
   * The node leaves: the device goes (and with it a wireguard-go serving it, and the routes into
   * it). The unreachable routes stay: pods still on the node must not reach other nodes' pods in
   * clear through the default route. `uninstall --all` removes them with the rest.
   */
  async teardown(): Promise<void> {
    const c = this.cfg;
    await ip(['link', 'del', 'dev', c.dev]).catch(() => undefined);
    const left = (await weftRoutes()).filter((r) => r.dev === c.dev);
    await ipBatch(left.map((r) => ipc`route del ${r.dst} proto ${ROUTE_PROTO}`), { force: true }).catch(() => undefined);
  }
}
