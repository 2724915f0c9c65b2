import { existsSync, promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { compareVersions, SUPPORTED_VERSIONS, versionAtLeast } from '../cni/version.js';
import { execPlugin, findPlugin } from '../cniruntime/invoke.js';
import { removeWeftState } from '../datapath/cleanup.js';
import { FORWARDING_SYSCTL } from '../datapath/datapath.js';
import { WIREGUARD_GO_LOG } from '../datapath/wireguard.js';
import { WIREGUARD_KEY_FILE } from '../datapath/wireguard-key.js';
import { TEMP_PREFIX, writeFileAtomic } from '../util/atomic-file.js';
import { writeSysctl } from '../kernel/sysctl.js';
import { pidFileHolder } from '../util/lock-file.js';
import { UserError } from '../util/user-error.js';
import { findBuiltFile } from '../util/built-file.js';

/**
 * `weft install` / `weft uninstall`: put the plugin — the compiled forwarder, dist/weft-cni —
 * into a CNI bin dir and a conflist into a CNI conf dir, so that a standard runtime finds and
 * runs it; and take them out again — with `--all`, everything else of Weft on the node too.
 */
export const CONFLIST_FILE = '10-weft.conflist';
export const PLUGIN_FILE = 'weft';
export const DEFAULT_BIN_DIR = '/opt/cni/bin';
export const DEFAULT_CONF_DIR = '/etc/cni/net.d';
/** Where Debian and upstream put the reference plugins, searched for --chain plugins. */
export const REFERENCE_PLUGIN_DIRS = ['/usr/lib/cni', '/opt/cni/bin'];

/** Default config of each plugin `--chain` knows. */
const CHAIN_DEFAULTS: Readonly<Record<string, Record<string, unknown>>> = {
  portmap: { type: 'portmap', capabilities: { portMappings: true } },
  bandwidth: { type: 'bandwidth', capabilities: { bandwidth: true } },
  tuning: { type: 'tuning' },
};

export interface ChainedPlugin {
  type: string;
  supportedVersions: string[];
}

export interface ConflistOptions {
  name: string;
  socket: string;
  mtu?: number;
  chain: ChainedPlugin[];
}

/**
 * The conflist. Its versions are what every plugin in it supports: cniVersion is the newest of
 * those up to 1.0.0 (what runtimes built on libcni < 1.2 understand), and cniVersions adds the
 * newer ones (libcni >= 1.2 picks the highest). Debian's reference plugins stop at 1.0.0, so a
 * chain with them stays at 1.0.0.
 */
export function renderConflist(o: ConflistOptions): Record<string, unknown> {
  let common = [...SUPPORTED_VERSIONS];
  for (const p of o.chain) common = common.filter((v) => p.supportedVersions.includes(v));
  if (common.length === 0) {
    throw new UserError(`the chained plugins share no CNI version with weft (${o.chain.map((p) => `${p.type}: ${p.supportedVersions.join(',')}`).join('; ')})`);
  }
  common.sort(compareVersions);
  const legacy = common.filter((v) => !versionAtLeast(v, '1.0.1'));
  const cniVersion = (legacy.length ? legacy[legacy.length - 1] : common[common.length - 1]) as string;
  const newer = common.filter((v) => versionAtLeast(v, '1.0.0'));
  const weft: Record<string, unknown> = { type: PLUGIN_FILE, socket: o.socket, capabilities: { ips: true, mac: true } };
  if (o.mtu !== undefined) weft['mtu'] = o.mtu;
  const conf: Record<string, unknown> = { cniVersion };
  if (newer.length > 1) conf['cniVersions'] = newer;
  conf['name'] = o.name;
  conf['plugins'] = [weft, ...o.chain.map((p) => CHAIN_DEFAULTS[p.type] ?? { type: p.type })];
  return conf;
}

/** dist/weft-cni, found from wherever this module runs (the bundle or the tsc build). */
export function findPluginBinary(): string {
  const found = findBuiltFile('weft-cni');
  if (!found) throw new Error('cannot find the plugin dist/weft-cni: run `npm run build` first');
  return found;
}

async function probeVersions(type: string, dirs: string[]): Promise<ChainedPlugin> {
  let file: string;
  try {
    file = await findPlugin(type, dirs);
  } catch {
    throw new UserError(`--chain ${type}: no such plugin in ${dirs.join(', ')} (Debian: apt-get install containernetworking-plugins)`);
  }
  const out = await execPlugin(file, type, { command: 'VERSION', containerId: '', netns: '', ifName: '', args: '', path: dirs }, Buffer.from('{"cniVersion":"1.1.0"}'));
  const v = out.value as { supportedVersions?: unknown } | undefined;
  const supported = Array.isArray(v?.supportedVersions) ? (v.supportedVersions as unknown[]).filter((s): s is string => typeof s === 'string') : [];
  return { type, supportedVersions: supported };
}

export interface InstallOptions {
  binDir: string;
  confDir: string;
  socket: string;
  name: string;
  mtu?: number;
  chain: string[];
  /** Extra directories to search for chained plugins. */
  pluginDirs?: string[];
  /** The plugin to install; dist/weft-cni by default. */
  pluginBinary?: string;
}

export interface InstallReport {
  plugin: string;
  conflist: string;
  cniVersion: string;
}

export async function install(o: InstallOptions): Promise<InstallReport> {
  const binary = o.pluginBinary ?? findPluginBinary();
  await fs.mkdir(o.binDir, { recursive: true, mode: 0o755 });
  await fs.mkdir(o.confDir, { recursive: true, mode: 0o755 });
  const searchDirs = [o.binDir, ...(o.pluginDirs ?? []), ...REFERENCE_PLUGIN_DIRS];
  const chain: ChainedPlugin[] = [];
  for (const type of o.chain) chain.push(await probeVersions(type, searchDirs));
  const conf = renderConflist({ name: o.name, socket: o.socket, ...(o.mtu !== undefined ? { mtu: o.mtu } : {}), chain });

  const plugin = join(o.binDir, PLUGIN_FILE);
  // Written to a temp file and renamed: a runtime exec'ing the old file never sees "text file busy".
  writeFileAtomic(plugin, await fs.readFile(binary), 0o755);
  await fs.chmod(plugin, 0o755);
  const conflist = join(o.confDir, CONFLIST_FILE);
  writeFileAtomic(conflist, JSON.stringify(conf, null, 2) + '\n', 0o644);
  return { plugin, conflist, cniVersion: conf['cniVersion'] as string };
}

export interface UninstallOptions {
  binDir: string;
  confDir: string;
  keepPlugin: boolean;
  /** Also the agent's kernel state (datapath/cleanup.ts), its state dir and socket: the agent must be stopped. */
  all?: { stateDir: string; socket: string };
}

/** The node's sysctls as they were before an agent first turned them on (agent.ts writes it). */
export const SYSCTLS_BEFORE_FILE = 'sysctls-before.json';

/** What an agent keeps in its state dir (agent.ts, attachment-store.ts, ipam/, policy-controller.ts). */
const STATE_ENTRIES = ['agent.pid', 'boot-id', 'policy-table.json', SYSCTLS_BEFORE_FILE, 'attachments', 'ipam', WIREGUARD_KEY_FILE, `${WIREGUARD_KEY_FILE}.next`, WIREGUARD_GO_LOG];

/**
 * Refuses, before anything is removed: a running agent (its pid file names a live process), a
 * --state-dir that is not a directory or holds what no agent writes (a mistyped path), a
 * --socket that is not a socket.
 */
async function checkForAll(stateDir: string, socket: string): Promise<void> {
  const holder = pidFileHolder(await fs.readFile(join(stateDir, 'agent.pid'), 'utf8').catch(() => ''));
  if (holder !== undefined) throw new UserError(`an agent (pid ${holder}) is running on state dir ${stateDir}: stop it first`);
  const dir = await fs.lstat(stateDir).catch(() => undefined);
  if (dir && !dir.isDirectory()) throw new UserError(`--state-dir ${stateDir} is not a directory; nothing was removed`);
  const entries = dir ? await fs.readdir(stateDir) : [];
  const foreign = entries.filter((e) => !STATE_ENTRIES.includes(e) && !e.startsWith(TEMP_PREFIX));
  if (foreign.length > 0) throw new UserError(`--state-dir ${stateDir} holds files an agent does not write (${foreign.slice(0, 5).join(', ')}): is it the agent's state dir? Nothing was removed`);
  const sock = await fs.lstat(socket).catch(() => undefined);
  if (sock && !sock.isSocket()) throw new UserError(`--socket ${socket} is not a socket; nothing was removed`);
}

/** Removes what install wrote; idempotent. Refuses to remove a conflist that is not Weft's. */
export async function uninstall(o: UninstallOptions): Promise<string[]> {
  if (o.all) await checkForAll(o.all.stateDir, o.all.socket);
  const removed: string[] = [];
  const conflist = join(o.confDir, CONFLIST_FILE);
  const text = await fs.readFile(conflist, 'utf8').catch(() => undefined);
  if (text !== undefined) {
    let ours = false;
    try {
      const c = JSON.parse(text) as { plugins?: Array<{ type?: unknown }> };
      ours = (c.plugins ?? []).some((p) => p.type === PLUGIN_FILE);
    } catch {
      ours = false;
    }
    if (!ours) throw new UserError(`${conflist} is not a weft conflist; not removing it`);
    await fs.rm(conflist, { force: true });
    removed.push(conflist);
  }
  const plugin = join(o.binDir, PLUGIN_FILE);
  if (!o.keepPlugin && existsSync(plugin)) {
    await fs.rm(plugin, { force: true });
    removed.push(plugin);
  }
  if (o.all) removed.push(...(await removeWeftState()), ...(await removeAgentFiles(o.all.stateDir, o.all.socket)));
  return removed;
}

/**
 * The sysctls put back as they were before Weft, then the agent's state dir and socket. A
 * directory that is a mount point (a container's volume) cannot go: it is emptied instead.
 */
async function removeAgentFiles(stateDir: string, socket: string): Promise<string[]> {
  const removed: string[] = [];
  let before: Record<string, unknown> = {};
  try {
    before = JSON.parse(await fs.readFile(join(stateDir, SYSCTLS_BEFORE_FILE), 'utf8').catch(() => '{}')) as Record<string, unknown>;
  } catch {
    /* unreadable: the values before Weft are not known, and forwarding stays as it is */
  }
  if (typeof before !== 'object' || before === null) before = {};
  for (const [key, value] of Object.entries(before)) {
    // Only the sysctls an agent turns on, whatever else the file may say.
    if (!(Object.values(FORWARDING_SYSCTL) as string[]).includes(key) || typeof value !== 'string' || !/^[01]$/.test(value)) continue;
    await writeSysctl(key, value);
    removed.push(`sysctl ${key} (back to ${value})`);
  }
  if (existsSync(stateDir)) {
    for (const e of await fs.readdir(stateDir)) await fs.rm(join(stateDir, e), { recursive: true, force: true });
    removed.push(stateDir);
    await removeDirIfFree(stateDir);
  }
  if (existsSync(socket)) {
    await fs.rm(socket, { force: true });
    removed.push(socket);
  }
  if ((await fs.readdir(dirname(socket)).catch(() => ['?'])).length === 0 && (await removeDirIfFree(dirname(socket)))) removed.push(dirname(socket));
  return removed;
}

/** rmdir, where the directory is not a mount point in use (EBUSY): true when it is gone. */
async function removeDirIfFree(dir: string): Promise<boolean> {
  try {
    await fs.rmdir(dir);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EBUSY') return false;
    throw err;
  }
}
