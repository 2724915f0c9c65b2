import type { Result, ResultInterface, ResultIP, ResultRoute, DnsConfig } from '../cni/result.js';
import { isDnsEmpty } from '../cni/result.js';
import { ipc, type IpCommand } from '../kernel/ip.js';

/**
 * The routed-veth attachment (design §4) as data: the ip commands for the node side and for the
 * pod side, and the CNI result. No bridge: the pod has a /32 (and /128) and a default route via a
 * link-local gateway answered by the node end of its veth, so every packet to or from a pod takes
 * the node's L3 path.
 */
export const GATEWAY_V4 = '169.254.1.1';
export const GATEWAY_V6 = 'fe80::1';

export interface PodAddress {
  family: 4 | 6;
  address: string;
  prefix: number;
}

export interface AttachmentPlan {
  hostIf: string;
  ifName: string;
  netns: string;
  mtu: number;
  hostMac: string;
  podMac: string;
  addresses: PodAddress[];
}

/**
 * Node side, run in the node's netns: the pair (peer created directly in the pod), the gateway
 * addresses, host routes. The gateways are real addresses of the node end, so the node answers
 * the pod's ARP/ND itself: no proxy ARP (which needs a route to 169.254.1.1 elsewhere) and no
 * static neighbour in the pod (the kernel flushes those, permanent ones included, when a chained
 * plugin such as tuning changes the pod's MAC). 169.254.1.1 has host scope, so the node never
 * picks it as the source of its own traffic to pods; fe80::1 is nodad, so the node has a usable
 * link-local source for neighbour solicitations at once (the kernel's own is tentative ~1 s).
 * `podNetns` names the pod's netns for `ip` (a descriptor's /proc/self/fd path, never the
 * runtime's path text).
 */
export function hostSetupCommands(p: AttachmentPlan, podNetns: string): IpCommand[] {
  // The first command only creates the pair: attach() sets hostIfSysctls between it and the rest.
  const cmds = [
    ipc`link add name ${p.hostIf} mtu ${p.mtu} address ${p.hostMac} type veth peer name ${p.ifName} mtu ${p.mtu} address ${p.podMac} netns ${podNetns}`,
    ipc`link set dev ${p.hostIf} up`,
  ];
  if (p.addresses.some((a) => a.family === 4)) cmds.push(ipc`addr add ${GATEWAY_V4}/32 dev ${p.hostIf} scope host`);
  if (p.addresses.some((a) => a.family === 6)) cmds.push(ipc`addr add ${GATEWAY_V6}/64 dev ${p.hostIf} nodad`);
  for (const a of p.addresses) {
    cmds.push(a.family === 4 ? ipc`route add ${a.address}/32 dev ${p.hostIf} scope link` : ipc`route add ${a.address}/128 dev ${p.hostIf}`);
  }
  return cmds;
}

/**
 * IPv6 settings of the node end, set after the pair exists and before it is up. The node end is
 * a host, not a router, on this link: a router's interface joins the all-routers groups and
 * anycast addresses whose teardown makes deleting the pair ~20 ms slower (docs/benchmarks.md
 * §1), while forwarding between interfaces depends only on net.ipv6.conf.all.forwarding. A host
 * interface would accept a pod's Router Advertisements and redirects, which would let a pod
 * install routes on the node: both are off (also on IPv4-only nodes, where the kernel's default
 * accepts them). A later write of all.forwarding (by anyone) sets every interface's forwarding
 * again; that costs only the faster DEL: a router interface ignores RAs and redirects anyway.
 */
export function hostIfSysctls(hostIf: string): Array<readonly [key: string, value: string]> {
  const conf = `net.ipv6.conf.${hostIf}`;
  return [
    [`${conf}.accept_ra`, '0'],
    [`${conf}.accept_redirects`, '0'],
    [`${conf}.forwarding`, '0'],
  ];
}

/**
 * Pod side, run inside the pod's netns. The address comes before the onlink default route (the
 * kernel checks an onlink gateway against the local table, which exists only once the netns has
 * an IPv4 address). Default routes are appended, so a second attachment in the same pod (eth1)
 * adds a fallback instead of failing.
 */
export function podSetupCommands(p: AttachmentPlan): IpCommand[] {
  const cmds = [ipc`link set dev ${p.ifName} up`];
  for (const a of p.addresses) {
    cmds.push(a.family === 4 ? ipc`addr add ${a.address}/32 dev ${p.ifName}` : ipc`addr add ${a.address}/128 dev ${p.ifName} nodad`);
  }
  for (const a of p.addresses) {
    cmds.push(a.family === 4 ? ipc`route append default via ${GATEWAY_V4} dev ${p.ifName} onlink` : ipc`route append default via ${GATEWAY_V6} dev ${p.ifName}`);
  }
  return cmds;
}

export interface ResultInputs {
  cniVersion: string;
  dns?: DnsConfig;
  /** When Weft is chained after another plugin, its result comes first. */
  prevResult?: Result;
}

/** The ADD result: [host veth, pod interface] appended to any prevResult, ips pointing at the pod end. */
export function buildResult(p: AttachmentPlan, inputs: ResultInputs): Result {
  const prev = inputs.prevResult;
  const interfaces: ResultInterface[] = [...(prev?.interfaces ?? [])];
  interfaces.push({ name: p.hostIf, mac: p.hostMac, mtu: p.mtu });
  const podIdx = interfaces.push({ name: p.ifName, mac: p.podMac, mtu: p.mtu, sandbox: p.netns }) - 1;
  const ips: ResultIP[] = [...(prev?.ips ?? [])];
  const routes: ResultRoute[] = [...(prev?.routes ?? [])];
  for (const a of p.addresses) {
    const gw = a.family === 4 ? GATEWAY_V4 : GATEWAY_V6;
    ips.push({ address: `${a.address}/${a.prefix}`, gateway: gw, interface: podIdx });
    routes.push({ dst: a.family === 4 ? '0.0.0.0/0' : '::/0', gw });
  }
  const result: Result = { cniVersion: inputs.cniVersion, interfaces, ips, routes };
  const dns = !isDnsEmpty(inputs.dns) ? inputs.dns : prev?.dns;
  if (dns && !isDnsEmpty(dns)) result.dns = dns;
  return result;
}
