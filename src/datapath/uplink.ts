import { ip } from '../kernel/ip.js';

/**
 * The node's uplink: the interface that holds its underlay address (where VXLAN packets leave,
 * and whose MTU bounds the pods').
 */
export interface Uplink {
  dev: string;
  mtu: number;
  /** The node's underlay addresses, IPv4 first. */
  ips: string[];
}

interface AddrJson {
  ifname: string;
  mtu: number;
  addr_info?: Array<{ local: string; family: string; scope: string }>;
}

export async function findUplink(nodeIps: string[]): Promise<Uplink> {
  const links = JSON.parse(await ip(['-json', 'addr', 'show'])) as AddrJson[];
  let ips = nodeIps;
  if (ips.length === 0) {
    // Not given: the global addresses of the interface the default route leaves by.
    const routes = JSON.parse(await ip(['-json', 'route', 'show', 'default'])) as Array<{ dev?: string }>;
    const dev = routes[0]?.dev;
    const link = links.find((l) => l.ifname === dev);
    ips = (link?.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => a.local);
    if (ips.length === 0) throw new Error('cannot find this node\'s address: there is no default route with a global address; give --node-ip');
  }
  const link = links.find((l) => (l.addr_info ?? []).some((a) => a.local === ips[0]));
  if (!link) throw new Error(`no interface on this node has the address ${ips[0]} (from --node-ip)`);
  for (const a of ips.slice(1)) {
    if (!links.some((l) => (l.addr_info ?? []).some((x) => x.local === a))) throw new Error(`no interface on this node has the address ${a} (from --node-ip)`);
  }
  const sorted = [...ips].sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')));
  return { dev: link.ifname, mtu: link.mtu, ips: sorted };
}
