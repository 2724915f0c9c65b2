import { ipBatch, ipc, ipJsonBatch, type IpCommand } from '../kernel/ip.js';
import type { Backend } from './backend.js';
import type { Peer } from './peer.js';
import { ROUTE_PROTO, weftRoutes } from './routes.js';

/**
 * The host-gw backend: a route per remote block via that node's underlay address, of the same
 * family. Works only where every node is directly reachable on one L2 segment: a peer reached
 * through a router is refused with a message naming it, and gets no route.
 */
export interface HostGwState {
  /** Remote block -> next hop (the peer's underlay address). */
  routes: Map<string, string>;
}

/** (pure) `direct` says which peer addresses are on-link. */
export function hostGwDesired(peers: Peer[], direct: (addr: string) => string | undefined): { state: HostGwState; problems: string[] } {
  const routes = new Map<string, string>();
  const problems: string[] = [];
  for (const p of peers) {
    for (const b of p.blocks) {
      const v6 = b.includes(':');
      const via = p.ips.find((a) => a.includes(':') === v6);
      if (!via) {
        problems.push(`host-gw: node ${p.name} has no IPv${v6 ? 6 : 4} underlay address, so its block ${b} is unreachable`);
        continue;
      }
      const gateway = direct(via);
      if (gateway !== undefined) {
        problems.push(`host-gw needs every node on one L2 segment: node ${p.name} (${via}) is reached via router ${gateway}; use the vxlan backend`);
        continue;
      }
      routes.set(b, via);
    }
  }
  return { state: { routes }, problems };
}

export function hostGwCommands(want: HostGwState, have: HostGwState): IpCommand[] {
  const cmds: IpCommand[] = [];
  for (const [dst, via] of want.routes) if (have.routes.get(dst) !== via) cmds.push(ipc`route replace ${dst} via ${via} proto ${ROUTE_PROTO}`);
  for (const [dst] of have.routes) if (!want.routes.has(dst)) cmds.push(ipc`route del ${dst} proto ${ROUTE_PROTO}`);
  return cmds;
}

export class HostGwBackend implements Backend {
  readonly type = 'host-gw' as const;
  readonly podMtu: number;

  constructor(uplinkMtu: number) {
    this.podMtu = uplinkMtu;
  }

  async setup(): Promise<void> {
    /* nothing to create: plain routes */
  }

  /** For each address: undefined when it is on-link, else the router it is reached through. */
  private async gateways(addrs: string[]): Promise<Map<string, string | undefined>> {
    const out = new Map<string, string | undefined>();
    if (addrs.length === 0) return out;
    const res = await ipJsonBatch(addrs.map((a) => ipc`route get ${a}`));
    addrs.forEach((a, i) => out.set(a, ((res[i] as Array<{ gateway?: string }>)[0] ?? {}).gateway));
    return out;
  }

  async reconcile(peers: Peer[]): Promise<{ problems: string[]; changes: number }> {
    const gw = await this.gateways([...new Set(peers.flatMap((p) => p.ips))]);
    const { state: want, problems } = hostGwDesired(peers, (a) => gw.get(a));
    const have: HostGwState = { routes: new Map() };
    for (const r of await weftRoutes()) if (r.gateway) have.routes.set(r.dst, r.gateway);
    const cmds = hostGwCommands(want, have);
    // One peer's route the kernel refuses is reported, and must not hold back the others'.
    await ipBatch(cmds, { force: true }).catch((err: Error) => problems.push(`the kernel refused a route towards a peer: ${err.message}`));
    return { problems, changes: cmds.length };
  }

  async teardown(): Promise<void> {
    const cmds = (await weftRoutes()).map((r) => ipc`route del ${r.dst} proto ${ROUTE_PROTO}`);
    await ipBatch(cmds).catch(() => undefined);
  }
}

