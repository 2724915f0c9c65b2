/**
 * The Success result, in the newest schema (1.1.0). Everything inside Weft works in this shape;
 * convert.ts turns it into whatever version the caller asked for, only at the edges.
 */
export interface ResultInterface {
  name: string;
  mac?: string;
  mtu?: number;
  /** The netns path for container-side interfaces; absent means the host. */
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface ResultIP {
  /** CIDR keeping the host bits, e.g. 10.1.0.5/32. */
  address: string;
  gateway?: string;
  /** Index into interfaces. */
  interface?: number;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface DnsConfig {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  cniVersion: string;
  interfaces?: ResultInterface[];
  ips?: ResultIP[];
  routes?: ResultRoute[];
  dns?: DnsConfig;
}

export function isDnsEmpty(dns: DnsConfig | undefined): boolean {
  if (!dns) return true;
  return (
    (dns.nameservers?.length ?? 0) === 0 &&
    (dns.domain ?? '') === '' &&
    (dns.search?.length ?? 0) === 0 &&
    (dns.options?.length ?? 0) === 0
  );
}

/** The address part of a CIDR string ("10.0.0.5/32" -> "10.0.0.5"). */
export function addressOf(cidr: string): string {
  const slash = cidr.indexOf('/');
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

export function isIPv6(addr: string): boolean {
  return addr.includes(':');
}

/** The internal form: the newest schema, whatever version it was read from. */
export function asInternal(r: Result): Result {
  return { ...r, cniVersion: '1.1.0' };
}
