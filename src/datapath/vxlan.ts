import { createHash } from 'node:crypto';
import { bridgeBatch, fdbShow } from '../kernel/bridge.js';
import { ip, ipBatch, ipc, isIpNotFound, type IpCommand } from '../kernel/ip.js';
import { nodeAddressOf } from '../ipam/pool.js';
import type { Backend } from './backend.js';
import type { Peer } from './peer.js';
import { ROUTE_PROTO, weftRoutes } from './routes.js';

/**
 * The VXLAN backend: one kernel VXLAN device per node, no learning; for each live peer a static
 * FDB entry (its VTEP MAC -> its underlay address), a permanent neighbour (its block's node
 * address -> that MAC) and a route per block via that node address, onlink. The device holds
 * this node's own block node addresses, so the node's traffic to remote pods has a pod-range
 * source that remote nodes route back. Pod MTU = uplink MTU - 50 (IPv4 underlay overhead).
 */
export const VXLAN_DEV = 'weft.vxlan';
export const VXLAN_OVERHEAD = 50;

export interface VxlanConfig {
  vni: number;
  port: number;
  /** IPv4 underlay address of this node (the VTEP). */
  localIp: string;
  uplinkDev: string;
  uplinkMtu: number;
  mac: string;
  /** This node's own blocks. */
  blocks: string[];
}

/** A stable VTEP MAC per node name (locally administered, unicast). */
export function vtepMac(nodeName: string): string {
  const d = createHash('sha256').update(`weft-vtep\u0000${nodeName}`).digest();
  return [((d[0] as number) & 0xfc) | 0x02, ...d.subarray(1, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export interface VxlanState {
  /** VTEP MAC -> underlay address. */
  fdb: Map<string, string>;
  /** Remote block node address -> VTEP MAC. */
  neigh: Map<string, string>;
  /** Remote block -> its node address. */
  routes: Map<string, string>;
}

/** What the kernel should hold for these peers (pure). Peers without a MAC or IPv4 address are skipped. */
export function vxlanDesired(peers: Peer[]): { state: VxlanState; problems: string[] } {
  const state: VxlanState = { fdb: new Map(), neigh: new Map(), routes: new Map() };
  const problems: string[] = [];
  for (const p of peers) {
    const v4 = p.ips.find((a) => !a.includes(':'));
    if (!p.vxlanMac || !v4) {
      problems.push(`node ${p.name} publishes no ${p.vxlanMac ? 'IPv4 underlay address' : 'VXLAN MAC'}; is it running the vxlan backend?`);
      continue;
    }
    state.fdb.set(p.vxlanMac, v4);
    for (const b of p.blocks) {
      const gw = nodeAddressOf(b);
      state.neigh.set(gw, p.vxlanMac);
      state.routes.set(b, gw);
    }
  }
  return { state, problems };
}

/** The commands that turn `have` into `want` (pure): adds before the routes that use them, removals after. */
export function vxlanCommands(want: VxlanState, have: VxlanState): { bridge: IpCommand[]; ipAdd: IpCommand[]; ipDel: IpCommand[]; bridgeDel: IpCommand[] } {
  const bridge: IpCommand[] = [];
  const bridgeDel: IpCommand[] = [];
  const ipAdd: IpCommand[] = [];
  const ipDel: IpCommand[] = [];
  for (const [mac, dst] of want.fdb) if (have.fdb.get(mac) !== dst) bridge.push(ipc`fdb replace ${mac} dev ${VXLAN_DEV} dst ${dst} self permanent`);
  for (const [mac, dst] of have.fdb) if (!want.fdb.has(mac)) bridgeDel.push(ipc`fdb del ${mac} dev ${VXLAN_DEV} dst ${dst} self`);
  for (const [addr, mac] of want.neigh) if (have.neigh.get(addr) !== mac) ipAdd.push(ipc`neigh replace ${addr} lladdr ${mac} dev ${VXLAN_DEV} nud permanent`);
  for (const [dst, gw] of want.routes) if (have.routes.get(dst) !== gw) ipAdd.push(ipc`route replace ${dst} via ${gw} dev ${VXLAN_DEV} onlink proto ${ROUTE_PROTO}`);
  for (const [dst] of have.routes) if (!want.routes.has(dst)) ipDel.push(ipc`route del ${dst} dev ${VXLAN_DEV} proto ${ROUTE_PROTO}`);
  for (const [addr] of have.neigh) if (!want.neigh.has(addr)) ipDel.push(ipc`neigh del ${addr} dev ${VXLAN_DEV}`);
  return { bridge, ipAdd, ipDel, bridgeDel };
}

interface LinkJson {
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; port?: number; local?: string; link?: string; learning?: boolean } };
}

export class VxlanBackend implements Backend {
  readonly type = 'vxlan' as const;
  readonly podMtu: number;

  constructor(private readonly cfg: VxlanConfig) {
    this.podMtu = cfg.uplinkMtu - VXLAN_OVERHEAD;
  }

  private async device(): Promise<LinkJson | undefined> {
    try {
      return (JSON.parse(await ip(['-json', '-details', 'link', 'show', 'dev', VXLAN_DEV])) as LinkJson[])[0];
    } catch (err) {
      if (isIpNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Creates the device, or keeps the existing one if it matches (a restart must not disturb traffic). */
  async setup(): Promise<void> {
    const c = this.cfg;
    const have = await this.device();
    const d = have?.linkinfo?.info_data;
    const matches = have?.linkinfo?.info_kind === 'vxlan' && d?.id === c.vni && d?.port === c.port && d?.local === c.localIp && have.address === c.mac;
    const cmds: IpCommand[] = [];
    if (have && !matches) cmds.push(ipc`link del dev ${VXLAN_DEV}`);
    if (!have || !matches) {
      cmds.push(ipc`link add name ${VXLAN_DEV} address ${c.mac} mtu ${this.podMtu} type vxlan id ${c.vni} dstport ${c.port} local ${c.localIp} dev ${c.uplinkDev} nolearning`);
    } else if (have.mtu !== this.podMtu) {
      cmds.push(ipc`link set dev ${VXLAN_DEV} mtu ${this.podMtu}`);
    }
    cmds.push(ipc`link set dev ${VXLAN_DEV} up`);
    for (const b of c.blocks) {
      const a = nodeAddressOf(b);
      cmds.push(a.includes(':') ? ipc`addr replace ${a}/128 dev ${VXLAN_DEV} nodad` : ipc`addr replace ${a}/32 dev ${VXLAN_DEV}`);
    }
    await ipBatch(cmds);
  }

  async observe(): Promise<VxlanState> {
    const state: VxlanState = { fdb: new Map(), neigh: new Map(), routes: new Map() };
    for (const e of await fdbShow(VXLAN_DEV)) if (e.permanent && e.dst && e.mac !== '00:00:00:00:00:00') state.fdb.set(e.mac, e.dst);
    const neigh = JSON.parse(await ip(['-json', 'neigh', 'show', 'dev', VXLAN_DEV])) as Array<{ dst: string; lladdr?: string; state?: string[] }>;
    for (const n of neigh) if (n.lladdr && (n.state ?? []).includes('PERMANENT')) state.neigh.set(n.dst, n.lladdr);
    for (const r of await weftRoutes()) if (r.dev === VXLAN_DEV && r.gateway) state.routes.set(r.dst, r.gateway);
    return state;
  }

  async reconcile(peers: Peer[]): Promise<{ problems: string[]; changes: number }> {
    if (!(await this.device())) await this.setup();
    const { state: want, problems } = vxlanDesired(peers);
    const cmds = vxlanCommands(want, await this.observe());
    // Each peer's entries are independent: one the kernel refuses is reported and must not hold
    // back the rest (the batches go on past it), nor the loop (it is tried again next time).
    const refused = (err: Error): void => {
      problems.push(`the kernel refused a change towards a peer: ${err.message}`);
    };
    await bridgeBatch(cmds.bridge).catch(refused);
    await ipBatch(cmds.ipAdd, { force: true }).catch(refused);
    await ipBatch(cmds.ipDel, { force: true }).catch(refused);
    await bridgeBatch(cmds.bridgeDel).catch(refused);
    return { problems, changes: cmds.bridge.length + cmds.ipAdd.length + cmds.ipDel.length + cmds.bridgeDel.length };
  }

  async teardown(): Promise<void> {
    await ip(['link', 'del', 'dev', VXLAN_DEV]).catch(() => undefined);
  }
}
