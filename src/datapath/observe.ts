import { ipc, ipJsonBatch } from '../kernel/ip.js';
import type { OpenNetns } from '../kernel/netns.js';

/** What `ip -json` reports, reduced to the fields CHECK compares. */
export interface ObservedLink {
  name: string;
  mac: string;
  mtu: number;
  up: boolean;
  kind: string | undefined;
}

export interface ObservedAddress {
  dev: string;
  address: string;
  prefix: number;
}

export interface ObservedRoute {
  dst: string;
  /** One entry per nexthop (a multipath route has several). */
  nexthops: Array<{ gateway: string | undefined; dev: string | undefined }>;
}

export interface ObservedNetns {
  links: ObservedLink[];
  addresses: ObservedAddress[];
  routes: ObservedRoute[];
}

type Json = Record<string, unknown>;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function links(v: unknown): ObservedLink[] {
  return (v as Json[]).map((l) => ({
    name: str(l['ifname']) ?? '',
    mac: str(l['address']) ?? '',
    mtu: typeof l['mtu'] === 'number' ? l['mtu'] : 0,
    up: Array.isArray(l['flags']) && (l['flags'] as unknown[]).includes('UP'),
    kind: str((l['linkinfo'] as Json | undefined)?.['info_kind']),
  }));
}

function addresses(v: unknown): ObservedAddress[] {
  const out: ObservedAddress[] = [];
  for (const l of v as Json[]) {
    for (const a of (l['addr_info'] as Json[] | undefined) ?? []) {
      out.push({ dev: str(l['ifname']) ?? '', address: str(a['local']) ?? '', prefix: Number(a['prefixlen']) });
    }
  }
  return out;
}

function routes(v: unknown): ObservedRoute[] {
  return (v as Json[])
    .filter((r) => (r['type'] === undefined || r['type'] === 'unicast') && (r['table'] === undefined || r['table'] === 'main'))
    .map((r) => {
      const hops = Array.isArray(r['nexthops'])
        ? (r['nexthops'] as Json[]).map((h) => ({ gateway: str(h['gateway']), dev: str(h['dev']) }))
        : [{ gateway: str(r['gateway']), dev: str(r['dev']) }];
      return { dst: str(r['dst']) ?? '', nexthops: hops };
    });
}

/** One process per netns: links, addresses, main-table routes of both families. */
export async function observeNetns(netns?: OpenNetns): Promise<ObservedNetns> {
  const [l, a, r] = await ipJsonBatch([ipc`link show`, ipc`addr show`, ipc`route show table all`], {
    details: true,
    ...(netns !== undefined ? { netns } : {}),
  });
  return { links: links(l), addresses: addresses(a), routes: routes(r) };
}
