import { CniError, ErrorCode } from '../cni/errors.js';
import { parseJsonConfig, validateNetworkName } from '../cni/netconf.js';
import { compareVersions, parseSemver, SUPPORTED_VERSIONS } from '../cni/version.js';

/**
 * A network configuration list as a runtime loads it (libcni semantics, pure): version choice,
 * flags, plugin objects kept as raw JSON so unknown keys survive, and the per-plugin request
 * config each command sends.
 */
export interface PluginEntry {
  type: string;
  raw: Record<string, unknown>;
}

export interface NetworkConfigList {
  name: string;
  /** The version chosen for this runtime (highest of cniVersion ∪ cniVersions it supports). */
  cniVersion: string;
  disableCheck: boolean;
  disableGC: boolean;
  plugins: PluginEntry[];
  /** The file's exact bytes, cached with results as libcni does. */
  bytes: Buffer;
}

function invalid(msg: string, details?: string): never {
  throw new CniError(ErrorCode.InvalidNetworkConfig, msg, details);
}

function flag(v: unknown, key: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  if (v === 'true') return true; // libcni also takes the strings
  if (v === 'false') return false;
  return invalid(`"${key}" must be true or false, got ${JSON.stringify(v)}`);
}

/** Picks the highest version both the file and this runtime accept. */
export function chooseVersion(cniVersion: string, cniVersions: readonly string[], supported = SUPPORTED_VERSIONS): string {
  for (const v of cniVersions) {
    if (!parseSemver(v)) invalid(`"cniVersions" has an invalid version ${JSON.stringify(v)}`);
  }
  const candidates = [cniVersion, ...cniVersions].filter((v) => supported.includes(v));
  if (candidates.length === 0) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `the network config's versions [${[cniVersion, ...cniVersions].join(', ')}] are not supported`,
      `supported: ${supported.join(', ')}`,
    );
  }
  return candidates.sort(compareVersions)[candidates.length - 1] as string;
}

function pluginEntry(v: unknown, where: string): PluginEntry {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) invalid(`${where} must be an object`);
  const raw = v as Record<string, unknown>;
  const type = raw['type'];
  if (typeof type !== 'string' || type === '') invalid(`${where} has no "type"`);
  if (type.includes('/') || type.includes('\\')) invalid(`${where} has an invalid "type" ${JSON.stringify(type)}`, 'a plugin type is a file name, not a path');
  return { type, raw };
}

export function parseConfList(bytes: Buffer): NetworkConfigList {
  const raw = parseJsonConfig(bytes);
  const name = validateNetworkName(raw['name']);
  const v = raw['cniVersion'];
  if (v !== undefined && typeof v !== 'string') invalid(`"cniVersion" must be a string, got ${JSON.stringify(v)}`);
  const vs = raw['cniVersions'];
  if (vs !== undefined && (!Array.isArray(vs) || vs.some((x) => typeof x !== 'string'))) {
    invalid('"cniVersions" must be a list of version strings');
  }
  const plugins = raw['plugins'];
  if (!Array.isArray(plugins) || plugins.length === 0) invalid(`network ${name} has no plugins`, 'a conflist needs a non-empty "plugins" list');
  return {
    name,
    cniVersion: chooseVersion(typeof v === 'string' && v !== '' ? v : '0.1.0', (vs as string[] | undefined) ?? []),
    disableCheck: flag(raw['disableCheck'], 'disableCheck'),
    disableGC: flag(raw['disableGC'], 'disableGC'),
    plugins: plugins.map((p, i) => pluginEntry(p, `plugins[${i}]`)),
    bytes,
  };
}

/** A legacy single-plugin .conf, wrapped as a list of one (what libcni does). */
export function parseLegacyConf(bytes: Buffer): NetworkConfigList {
  const raw = parseJsonConfig(bytes);
  const name = validateNetworkName(raw['name']);
  const v = raw['cniVersion'];
  const version = typeof v === 'string' && v !== '' ? v : '0.1.0';
  return {
    name,
    cniVersion: chooseVersion(version, []),
    disableCheck: false,
    disableGC: false,
    plugins: [pluginEntry(raw, 'the config')],
    bytes,
  };
}

export type RuntimeCommand = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS';

export interface BuildOptions {
  command: RuntimeCommand;
  prevResult?: unknown;
  capabilityArgs?: Record<string, unknown>;
  validAttachments?: Array<{ containerID: string; ifname: string }>;
  /** Pod labels, passed as args.cni.labels (the CONVENTIONS.md location). */
  labels?: Record<string, string>;
}

/**
 * The request config for one plugin (libcni buildOneConfig): name and cniVersion forced,
 * prevResult and runtimeConfig (only declared capabilities the runtime has values for) for
 * ADD/DEL/CHECK; the valid-attachment list under both keys for GC.
 */
export function buildPluginConfig(list: NetworkConfigList, plugin: PluginEntry, opts: BuildOptions): Buffer {
  const conf: Record<string, unknown> = { ...plugin.raw, name: list.name, cniVersion: list.cniVersion };
  if (opts.command === 'GC') {
    const valid = opts.validAttachments ?? [];
    conf['cni.dev/valid-attachments'] = valid;
    conf['cni.dev/attachments'] = valid;
  } else if (opts.command !== 'STATUS') {
    if (opts.prevResult !== undefined) conf['prevResult'] = opts.prevResult;
    const caps = plugin.raw['capabilities'];
    const rc: Record<string, unknown> = {};
    if (typeof caps === 'object' && caps !== null) {
      for (const [cap, on] of Object.entries(caps as Record<string, unknown>)) {
        if (on === true && opts.capabilityArgs && cap in opts.capabilityArgs) rc[cap] = opts.capabilityArgs[cap];
      }
    }
    if (Object.keys(rc).length > 0) conf['runtimeConfig'] = rc;
    if (opts.labels && Object.keys(opts.labels).length > 0) {
      const args = (typeof conf['args'] === 'object' && conf['args'] !== null ? { ...(conf['args'] as Record<string, unknown>) } : {}) as Record<string, unknown>;
      const cni = (typeof args['cni'] === 'object' && args['cni'] !== null ? { ...(args['cni'] as Record<string, unknown>) } : {}) as Record<string, unknown>;
      cni['labels'] = Object.entries(opts.labels).map(([key, value]) => ({ key, value }));
      args['cni'] = cni;
      conf['args'] = args;
    }
  }
  return Buffer.from(JSON.stringify(conf));
}
