import { endProcess } from '../kernel/exec.js';
import { ipBatch, ipc } from '../kernel/ip.js';
import { createNamedNetns, deleteNamedNetns, listNamedNetns, netnsPids } from '../kernel/netns.js';
import { sysctlIn } from '../kernel/sysctl.js';

/**
 * The lab's network, all in namespaces it creates:
 *
 *   <prefix>-ext ──ext0── <prefix>-sw (br0: the underlay, and the router to "outside")
 *                              │ n1 … nK
 *                        <prefix>-node-1 … (eth0 on the underlay, default route via the switch)
 *
 * The underlay uses the benchmarking ranges (198.18.0.0/24, fd00:198:18::/64); the external host
 * TEST-NET-3 (203.0.113.0/24, fd00:203:113::/64). The external host has no route to pod ranges:
 * a pod's packet can only get an answer from it if the node masqueraded it.
 */
export const UNDERLAY = { v4: '198.18.0', v6: 'fd00:198:18:', gwV4: '198.18.0.1', gwV6: 'fd00:198:18::1' } as const;
export const EXTERNAL = { v4: '203.0.113.10', v6: 'fd00:203:113::10', routerV4: '203.0.113.1', routerV6: 'fd00:203:113::1' } as const;

export function nodeIps(index: number): string[] {
  return [`${UNDERLAY.v4}.${10 + index}`, `${UNDERLAY.v6}:${(10 + index).toString(16)}`];
}

const path = (ns: string): string => `/run/netns/${ns}`;

export async function createSwitch(sw: string, ext: string): Promise<void> {
  await createNamedNetns(sw);
  await ipBatch([ipc`link set lo up`, ipc`link add br0 type bridge`], { netns: path(sw) });
  // Link-local addresses usable at once here too (see createNodeNetns): the switch routes a
  // pod's first IPv6 packet to the external host, and answers for the underlay's gateway.
  await sysctlIn(path(sw), 'net.ipv6.conf.br0.accept_dad', '0');
  await ipBatch(
    [
      ipc`link set br0 up`,
      ipc`addr add ${UNDERLAY.gwV4}/24 dev br0`,
      ipc`addr add ${UNDERLAY.gwV6}/64 dev br0 nodad`,
    ],
    { netns: path(sw) },
  );
  await sysctlIn(path(sw), 'net.ipv4.ip_forward', '1');
  await sysctlIn(path(sw), 'net.ipv6.conf.all.forwarding', '1');
  await createNamedNetns(ext);
  await ipBatch([ipc`link set lo up`], { netns: path(ext) });
  await ipBatch([ipc`link add ext0 type veth peer name eth0 netns ${path(ext)}`], { netns: path(sw) });
  await sysctlIn(path(sw), 'net.ipv6.conf.ext0.accept_dad', '0');
  await sysctlIn(path(ext), 'net.ipv6.conf.eth0.accept_dad', '0');
  await ipBatch(
    [
      ipc`link set ext0 up`,
      ipc`addr add ${EXTERNAL.routerV4}/24 dev ext0`,
      ipc`addr add ${EXTERNAL.routerV6}/64 dev ext0 nodad`,
    ],
    { netns: path(sw) },
  );
  await ipBatch(
    [
      ipc`addr add ${EXTERNAL.v4}/24 dev eth0`,
      ipc`addr add ${EXTERNAL.v6}/64 dev eth0 nodad`,
      ipc`link set eth0 up`,
      // Only towards the underlay: pod ranges are unknown out here.
      ipc`route add ${UNDERLAY.v4}.0/24 via ${EXTERNAL.routerV4}`,
      ipc`route add ${UNDERLAY.v6}:/64 via ${EXTERNAL.routerV6}`,
    ],
    { netns: path(ext) },
  );
}

export async function createNodeNetns(sw: string, nodeNs: string, index: number): Promise<string[]> {
  const ips = nodeIps(index);
  await createNamedNetns(nodeNs);
  await ipBatch([ipc`link add n${index} type veth peer name eth0 netns ${path(nodeNs)}`, ipc`link set n${index} master br0`, ipc`link set n${index} up`], { netns: path(sw) });
  // The underlay's link-local address usable at once (the lab owns this segment: no duplicates).
  // A node forwarding a pod's first IPv6 packet solicits its peer from that address, and the
  // kernel sends no solicitation while it is tentative: the packet waited, and a UDP probe
  // right after `lab up` timed out (3 to 9 in 12 fresh labs, measured).
  await sysctlIn(path(nodeNs), 'net.ipv6.conf.eth0.accept_dad', '0');
  await ipBatch(
    [
      ipc`link set lo up`,
      ipc`addr add ${ips[0] as string}/24 dev eth0`,
      ipc`addr add ${ips[1] as string}/64 dev eth0 nodad`,
      ipc`link set eth0 up`,
      ipc`route add default via ${UNDERLAY.gwV4}`,
      ipc`route add default via ${UNDERLAY.gwV6}`,
    ],
    { netns: path(nodeNs) },
  );
  return ips;
}

/** Every netns of the lab, found by prefix (works without the lab's state file). */
export async function labNamespaces(prefix: string): Promise<string[]> {
  return (await listNamedNetns()).filter((n) => n.startsWith(`${prefix}.`));
}

/** Ends every process inside the lab's namespaces (by PID), then deletes the namespaces. */
export async function destroyNamespaces(prefix: string): Promise<{ namespaces: number; processes: number }> {
  const namespaces = await labNamespaces(prefix);
  let processes = 0;
  for (const ns of namespaces) {
    const pids = await netnsPids(ns);
    processes += pids.length;
    await Promise.all(pids.map((p) => endProcess(p, 3000)));
  }
  for (const ns of namespaces) await deleteNamedNetns(ns);
  return { namespaces: namespaces.length, processes };
}
