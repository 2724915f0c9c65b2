import { CniError, ErrorCode } from './errors.js';
import { addressOf, isDnsEmpty, isIPv6, type DnsConfig, type Result, type ResultRoute } from './result.js';
import { DEFAULT_VERSION_WHEN_ABSENT, resultFamily, type ResultFamily } from './version.js';

/** JSON-ready object; the printed form of a result in some version. */
export type JsonObject = Record<string, unknown>;

function dnsOut(dns: DnsConfig | undefined): DnsConfig | undefined {
  if (isDnsEmpty(dns) || !dns) return undefined;
  const out: DnsConfig = {};
  if (dns.nameservers?.length) out.nameservers = [...dns.nameservers];
  if (dns.domain) out.domain = dns.domain;
  if (dns.search?.length) out.search = [...dns.search];
  if (dns.options?.length) out.options = [...dns.options];
  return out;
}

function routeOut(r: ResultRoute, full: boolean): JsonObject {
  const o: JsonObject = { dst: r.dst };
  if (r.gw !== undefined) o['gw'] = r.gw;
  if (full) {
    for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
      if (r[k] !== undefined) o[k] = r[k];
    }
  }
  return o;
}

/**
 * Prints a result in version `to`. 1.1.0 keeps every field; 1.0.0, 0.3.x and 0.4.0 drop the
 * fields their schema lacks; 0.3.x/0.4.0 add "version" to each IP; 0.1.0/0.2.0 use ip4/ip6 with
 * at most one address per family (more is an error, as in the reference).
 */
export function convertResult(result: Result, to: string): JsonObject {
  const family = resultFamily(to);
  const full = to === '1.1.0';
  if (family === 'legacy') return toLegacy(result, to);
  const out: JsonObject = { cniVersion: to };
  if (result.interfaces?.length) {
    out['interfaces'] = result.interfaces.map((i) => {
      const o: JsonObject = { name: i.name };
      if (i.mac !== undefined) o['mac'] = i.mac;
      if (full && i.mtu !== undefined) o['mtu'] = i.mtu;
      if (i.sandbox !== undefined && i.sandbox !== '') o['sandbox'] = i.sandbox;
      if (full && i.socketPath !== undefined) o['socketPath'] = i.socketPath;
      if (full && i.pciID !== undefined) o['pciID'] = i.pciID;
      return o;
    });
  }
  if (result.ips?.length) {
    out['ips'] = result.ips.map((ip) => {
      const o: JsonObject = {};
      if (family === 'v04') o['version'] = isIPv6(addressOf(ip.address)) ? '6' : '4';
      if (ip.interface !== undefined) o['interface'] = ip.interface;
      o['address'] = ip.address;
      if (ip.gateway !== undefined) o['gateway'] = ip.gateway;
      return o;
    });
  }
  if (result.routes?.length) out['routes'] = result.routes.map((r) => routeOut(r, full));
  const dns = dnsOut(result.dns);
  if (dns) out['dns'] = dns;
  return out;
}

function toLegacy(result: Result, to: string): JsonObject {
  const v4 = (result.ips ?? []).filter((ip) => !isIPv6(addressOf(ip.address)));
  const v6 = (result.ips ?? []).filter((ip) => isIPv6(addressOf(ip.address)));
  if (v4.length > 1 || v6.length > 1) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `CNI version ${to} does not support more than 1 address per family`,
      'use cniVersion 0.3.0 or newer',
    );
  }
  if (v4.length === 0 && v6.length === 0) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `cannot convert the result to CNI version ${to}: it has no IP addresses`,
      'use cniVersion 0.3.0 or newer',
    );
  }
  const out: JsonObject = { cniVersion: to };
  const block = (ip: { address: string; gateway?: string }, routes: ResultRoute[]): JsonObject => {
    const o: JsonObject = { ip: ip.address };
    if (ip.gateway !== undefined) o['gateway'] = ip.gateway;
    if (routes.length) o['routes'] = routes.map((r) => routeOut(r, false));
    return o;
  };
  const routes = result.routes ?? [];
  const v4routes = routes.filter((r) => !isIPv6(addressOf(r.dst)));
  const v6routes = routes.filter((r) => isIPv6(addressOf(r.dst)));
  if (v4[0]) out['ip4'] = block(v4[0], v4routes);
  if (v6[0]) out['ip6'] = block(v6[0], v6routes);
  const dns = dnsOut(result.dns);
  if (dns) out['dns'] = dns;
  return out;
}

// ---- parsing (any version -> internal) ----

function fail(what: string, detail: string): never {
  throw new CniError(ErrorCode.DecodingFailure, `could not parse ${what}: ${detail}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(o: Record<string, unknown>, key: string, what: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') fail(what, `"${key}" must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function optUint(o: Record<string, unknown>, key: string, what: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    fail(what, `"${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function optStringArray(o: Record<string, unknown>, key: string, what: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
    fail(what, `"${key}" must be a list of strings`);
  }
  return v as string[];
}

export function parseDns(v: unknown, what: string): DnsConfig | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) fail(what, '"dns" must be an object');
  const dns: DnsConfig = {};
  const ns = optStringArray(v, 'nameservers', what);
  if (ns) dns.nameservers = ns;
  const domain = optString(v, 'domain', what);
  if (domain) dns.domain = domain;
  const search = optStringArray(v, 'search', what);
  if (search) dns.search = search;
  const options = optStringArray(v, 'options', what);
  if (options) dns.options = options;
  return dns;
}

function parseRoute(v: unknown, what: string): ResultRoute {
  if (!isObject(v)) fail(what, 'each route must be an object');
  const dst = optString(v, 'dst', what);
  if (dst === undefined) fail(what, 'a route has no "dst"');
  const r: ResultRoute = { dst };
  const gw = optString(v, 'gw', what);
  if (gw !== undefined) r.gw = gw;
  for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
    const n = optUint(v, k, what);
    if (n !== undefined) r[k] = n;
  }
  return r;
}

function parseRoutes(v: unknown, what: string): ResultRoute[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(what, '"routes" must be a list');
  return v.map((r) => parseRoute(r, what));
}

function parseLegacyBlock(v: unknown, what: string, result: Result): void {
  if (v === undefined || v === null) return;
  if (!isObject(v)) fail(what, '"ip4"/"ip6" must be objects');
  const ip = optString(v, 'ip', what);
  if (ip === undefined) fail(what, '"ip4"/"ip6" need "ip"');
  const entry: { address: string; gateway?: string } = { address: ip };
  const gw = optString(v, 'gateway', what);
  if (gw !== undefined) entry.gateway = gw;
  (result.ips ??= []).push(entry);
  const routes = parseRoutes(v['routes'], what);
  if (routes.length) (result.routes ??= []).push(...routes);
}

const FAMILY_VERSIONS: Record<ResultFamily, string[]> = {
  legacy: ['0.1.0', '0.2.0'],
  v04: ['0.3.0', '0.3.1', '0.4.0'],
  v1: ['1.0.0', '1.1.0'],
};

/**
 * Parses a result (a prevResult, or a plugin's output) into the internal shape.
 * `configVersion` is the version of the config it arrived in: a result without cniVersion
 * inherits it, and one of another schema family is refused, as the reference does.
 */
export function parseResult(value: unknown, configVersion: string, what = 'prevResult'): Result {
  if (!isObject(value)) fail(what, 'it must be a JSON object');
  const declared = optString(value, 'cniVersion', what);
  const version = declared ?? (configVersion || DEFAULT_VERSION_WHEN_ABSENT);
  const family = resultFamily(configVersion || DEFAULT_VERSION_WHEN_ABSENT);
  if (!FAMILY_VERSIONS[family].includes(version)) {
    fail(
      what,
      `result type supports [${FAMILY_VERSIONS[family].join(' ')}] but unmarshalled CNIVersion is "${version}"`,
    );
  }
  const result: Result = { cniVersion: version };
  if (family === 'legacy') {
    parseLegacyBlock(value['ip4'], what, result);
    parseLegacyBlock(value['ip6'], what, result);
  } else {
    const ifs = value['interfaces'];
    if (ifs !== undefined && ifs !== null) {
      if (!Array.isArray(ifs)) fail(what, '"interfaces" must be a list');
      result.interfaces = ifs.map((i) => {
        if (!isObject(i)) fail(what, 'each interface must be an object');
        const name = optString(i, 'name', what);
        if (name === undefined) fail(what, 'an interface has no "name"');
        const o: NonNullable<Result['interfaces']>[number] = { name };
        const mac = optString(i, 'mac', what);
        if (mac !== undefined) o.mac = mac;
        const mtu = optUint(i, 'mtu', what);
        if (mtu !== undefined) o.mtu = mtu;
        const sandbox = optString(i, 'sandbox', what);
        if (sandbox !== undefined) o.sandbox = sandbox;
        const sp = optString(i, 'socketPath', what);
        if (sp !== undefined) o.socketPath = sp;
        const pci = optString(i, 'pciID', what);
        if (pci !== undefined) o.pciID = pci;
        return o;
      });
    }
    const ips = value['ips'];
    if (ips !== undefined && ips !== null) {
      if (!Array.isArray(ips)) fail(what, '"ips" must be a list');
      result.ips = ips.map((ip) => {
        if (!isObject(ip)) fail(what, 'each IP must be an object');
        const address = optString(ip, 'address', what);
        if (address === undefined) fail(what, 'an IP has no "address"');
        const o: NonNullable<Result['ips']>[number] = { address };
        const gw = optString(ip, 'gateway', what);
        if (gw !== undefined) o.gateway = gw;
        const idx = optUint(ip, 'interface', what);
        if (idx !== undefined) {
          if (idx >= (result.interfaces?.length ?? 0)) {
            fail(what, `IP ${address} names interface ${idx}, which is not in "interfaces"`);
          }
          o.interface = idx;
        }
        return o;
      });
    }
    const routes = parseRoutes(value['routes'], what);
    if (routes.length) result.routes = routes;
  }
  const dns = parseDns(value['dns'], what);
  if (dns && !isDnsEmpty(dns)) result.dns = dns;
  return result;
}
