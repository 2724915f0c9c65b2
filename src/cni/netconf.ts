import { parseDns, parseResult } from './convert.js';
import { CniError, ErrorCode } from './errors.js';
import type { DnsConfig, Result } from './result.js';
import {
  assertSupportedVersion,
  assertVersionAllowsCommand,
  DEFAULT_VERSION_WHEN_ABSENT,
} from './version.js';
import type { Command } from './env.js';

export interface AttachmentKey {
  containerId: string;
  ifName: string;
}

/** Capability arguments Weft reads, decoded from runtimeConfig case-insensitively. */
export interface RuntimeConfig {
  ips?: string[];
  mac?: string;
}

/** A plugin's request config, parsed: the spec's well-known keys plus everything else in `raw`. */
export interface NetConf {
  cniVersion: string;
  name: string;
  type?: string;
  capabilities: Record<string, boolean>;
  ipam?: Record<string, unknown>;
  dns?: DnsConfig;
  args?: Record<string, unknown>;
  runtimeConfig: RuntimeConfig;
  prevResult?: Result;
  /** GC only. Undefined when the runtime sent neither key: then GC deletes nothing. */
  validAttachments?: AttachmentKey[];
  /** The whole object as received, unknown keys included. */
  raw: Record<string, unknown>;
}

const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function validateNetworkName(name: unknown): string {
  if (name === undefined || name === null || name === '') {
    throw new CniError(ErrorCode.InvalidNetworkConfig, 'missing network name', 'the config needs "name"');
  }
  if (typeof name !== 'string') {
    throw new CniError(ErrorCode.DecodingFailure, `"name" must be a string, got ${JSON.stringify(name)}`);
  }
  if (!NETWORK_NAME.test(name)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, 'invalid characters found in network name', name);
  }
  return name;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Go's encoding/json matches keys case-insensitively (exact match first), and containerd's
 * go-cni sends capability keys capitalised ("HostPort", "Servers"); so do we.
 */
export function getCaseInsensitive(obj: Record<string, unknown>, key: string): unknown {
  if (key in obj) return obj[key];
  const lower = key.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) return obj[k];
  return undefined;
}

function decodeError(msg: string, details?: string): never {
  throw new CniError(ErrorCode.DecodingFailure, msg, details);
}

function stringList(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
    decodeError(`${where} must be a list of strings, got ${JSON.stringify(v)}`);
  }
  return v as string[];
}

function parseRuntimeConfig(v: unknown): RuntimeConfig {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) decodeError(`"runtimeConfig" must be an object, got ${JSON.stringify(v)}`);
  const rc: RuntimeConfig = {};
  const ips = stringList(getCaseInsensitive(v, 'ips'), 'runtimeConfig.ips');
  if (ips.length) rc.ips = ips;
  const mac = getCaseInsensitive(v, 'mac');
  if (mac !== undefined && mac !== null && mac !== '') {
    if (typeof mac !== 'string') decodeError(`runtimeConfig.mac must be a string, got ${JSON.stringify(mac)}`);
    rc.mac = mac;
  }
  return rc;
}

function parseCapabilities(v: unknown): Record<string, boolean> {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) decodeError(`"capabilities" must be an object of booleans, got ${JSON.stringify(v)}`);
  const out: Record<string, boolean> = {};
  for (const [k, b] of Object.entries(v)) {
    if (typeof b !== 'boolean') decodeError(`capabilities.${k} must be true or false, got ${JSON.stringify(b)}`);
    out[k] = b;
  }
  return out;
}

function parseAttachments(v: unknown, key: string): AttachmentKey[] {
  if (!Array.isArray(v)) decodeError(`"${key}" must be a list of {"containerID","ifname"} objects`);
  return v.map((a) => {
    if (!isObject(a) || typeof a['containerID'] !== 'string' || typeof a['ifname'] !== 'string') {
      decodeError(`each entry of "${key}" must be {"containerID": string, "ifname": string}, got ${JSON.stringify(a)}`);
    }
    return { containerId: a['containerID'] as string, ifName: a['ifname'] as string };
  });
}

/** Parses stdin bytes into JSON, mapping failures to code 6 as the reference does. */
/**
 * The words for a config that is not one JSON object. The plugin executable (the forwarder)
 * says them too — it must find the agent's socket in the config before the agent can — so they
 * are generated into it from here.
 */
export const CONFIG_NOT_JSON = {
  empty: 'error parsing network config: stdin is empty',
  syntax: 'error parsing network config: not valid JSON',
  notObject: 'error parsing network config: expected a JSON object',
  details: 'expected one JSON object on stdin',
} as const;

export function parseJsonConfig(bytes: Buffer | string): Record<string, unknown> {
  const text = typeof bytes === 'string' ? bytes : bytes.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    decodeError(text.trim() === '' ? CONFIG_NOT_JSON.empty : CONFIG_NOT_JSON.syntax, CONFIG_NOT_JSON.details);
  }
  if (!isObject(value)) decodeError(CONFIG_NOT_JSON.notObject, CONFIG_NOT_JSON.details);
  return value;
}

/**
 * Parses and checks one plugin's request config in the reference order: JSON (6), name (7),
 * cniVersion type (6), supported version (1), the command's version gate (1), then the rest.
 */
export function parseNetConf(bytes: Buffer | string, command: Command): NetConf {
  const raw = parseJsonConfig(bytes);
  const name = validateNetworkName(raw['name']);
  const v = raw['cniVersion'];
  if (v !== undefined && typeof v !== 'string') {
    decodeError(`decoding version from network config: "cniVersion" must be a string, got ${JSON.stringify(v)}`);
  }
  const cniVersion = v === undefined || v === '' ? DEFAULT_VERSION_WHEN_ABSENT : v;
  assertSupportedVersion(cniVersion);
  assertVersionAllowsCommand(command, cniVersion);

  const conf: NetConf = {
    cniVersion,
    name,
    capabilities: parseCapabilities(raw['capabilities']),
    runtimeConfig: parseRuntimeConfig(raw['runtimeConfig']),
    raw,
  };
  const type = raw['type'];
  if (type !== undefined) {
    if (typeof type !== 'string') decodeError(`"type" must be a string, got ${JSON.stringify(type)}`);
    conf.type = type;
  }
  const ipam = raw['ipam'];
  if (ipam !== undefined && ipam !== null) {
    if (!isObject(ipam)) decodeError(`"ipam" must be an object, got ${JSON.stringify(ipam)}`);
    conf.ipam = ipam;
  }
  const dns = parseDns(raw['dns'], 'network config');
  if (dns) conf.dns = dns;
  const args = raw['args'];
  if (args !== undefined && args !== null) {
    if (!isObject(args)) decodeError(`"args" must be an object, got ${JSON.stringify(args)}`);
    conf.args = args;
  }
  if (raw['prevResult'] !== undefined && raw['prevResult'] !== null && command !== 'GC' && command !== 'STATUS') {
    conf.prevResult = parseResult(raw['prevResult'], cniVersion, 'prevResult');
  }
  if (command === 'GC') {
    // libcni sends both keys with the same list; the older one alone is accepted too.
    if (raw['cni.dev/valid-attachments'] !== undefined) {
      conf.validAttachments = parseAttachments(raw['cni.dev/valid-attachments'], 'cni.dev/valid-attachments');
    } else if (raw['cni.dev/attachments'] !== undefined) {
      conf.validAttachments = parseAttachments(raw['cni.dev/attachments'], 'cni.dev/attachments');
    }
  }
  return conf;
}

/** args.cni.ips (the CONVENTIONS.md location for requested addresses). */
export function argsCniIps(conf: NetConf): string[] {
  const cni = conf.args?.['cni'];
  if (!isObject(cni)) return [];
  return stringList(cni['ips'], 'args.cni.ips');
}

/** args.cni.mac (as the bridge plugin reads it). */
export function argsCniMac(conf: NetConf): string | undefined {
  const cni = conf.args?.['cni'];
  if (!isObject(cni)) return undefined;
  const mac = cni['mac'];
  if (mac === undefined || mac === null || mac === '') return undefined;
  if (typeof mac !== 'string') decodeError(`args.cni.mac must be a string, got ${JSON.stringify(mac)}`);
  return mac;
}

/** args.cni.labels, [{key, value}] by convention. */
export function argsCniLabels(conf: NetConf): Record<string, string> {
  const cni = conf.args?.['cni'];
  if (!isObject(cni)) return {};
  const labels = cni['labels'];
  if (!Array.isArray(labels)) return {};
  const out: Record<string, string> = {};
  for (const l of labels) {
    if (isObject(l) && typeof l['key'] === 'string' && typeof l['value'] === 'string') out[l['key']] = l['value'];
  }
  return out;
}
