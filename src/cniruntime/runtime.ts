import { convertResult, parseResult } from '../cni/convert.js';
import { validateContainerId, validateIfName } from '../cni/env.js';
import { CniError, ErrorCode } from '../cni/errors.js';
import { versionAtLeast } from '../cni/version.js';
import { ResultCache } from './cache.js';
import { buildPluginConfig, type NetworkConfigList, type PluginEntry, type RuntimeCommand } from './conflist.js';
import { execPlugin, findPlugin, type ExecEnv } from './invoke.js';

/**
 * A CNI runtime (what libcni is to containerd): runs a conflist's plugins in order with
 * prevResult, DEL in reverse with the cached result, CHECK/GC/STATUS with libcni's version
 * rules. Tests and the lab drive Weft through it, so they use the exact exec protocol.
 */
export interface RuntimeConf {
  containerId: string;
  netns: string;
  ifName: string;
  /** CNI_ARGS as ordered pairs. */
  args: Array<[string, string]>;
  capabilityArgs: Record<string, unknown>;
  /** Pod labels for args.cni.labels. */
  labels?: Record<string, string>;
}

export interface RuntimeOptions {
  /** Directories searched for plugin binaries (CNI_PATH). */
  path: string[];
  cacheDir: string;
  timeoutMs?: number;
  /** Run plugins inside this netns (the node's), instead of the caller's own. */
  netns?: string;
}

export function formatCniArgs(args: Array<[string, string]>): string {
  return args.map(([k, v]) => `${k}=${v}`).join(';');
}

export class CniRuntime {
  private readonly cache: ResultCache;

  constructor(private readonly opts: RuntimeOptions) {
    this.cache = new ResultCache(opts.cacheDir);
  }

  private env(command: RuntimeCommand, rt?: RuntimeConf): ExecEnv {
    return {
      command,
      containerId: rt?.containerId ?? '',
      netns: rt?.netns ?? '',
      ifName: rt?.ifName ?? '',
      args: rt ? formatCniArgs(rt.args) : '',
      path: this.opts.path,
    };
  }

  private async exec(
    list: NetworkConfigList,
    plugin: PluginEntry,
    command: RuntimeCommand,
    rt: RuntimeConf | undefined,
    extra: { prevResult?: unknown; validAttachments?: Array<{ containerID: string; ifname: string }> } = {},
  ): Promise<unknown> {
    const file = await findPlugin(plugin.type, this.opts.path);
    const stdin = buildPluginConfig(list, plugin, {
      command,
      ...(extra.prevResult !== undefined ? { prevResult: extra.prevResult } : {}),
      ...(rt ? { capabilityArgs: rt.capabilityArgs } : {}),
      ...(rt?.labels ? { labels: rt.labels } : {}),
      ...(extra.validAttachments ? { validAttachments: extra.validAttachments } : {}),
    });
    const out = await execPlugin(file, plugin.type, this.env(command, rt), stdin, this.opts.timeoutMs, this.opts.netns);
    return out.value;
  }

  /** libcni checks the attachment key before executing anything (the name was checked at load). */
  private validate(rt: RuntimeConf): void {
    validateContainerId(rt.containerId);
    validateIfName(rt.ifName);
  }

  /** ADD every plugin in order; returns the final result exactly as the last plugin printed it. */
  async add(list: NetworkConfigList, rt: RuntimeConf): Promise<unknown> {
    this.validate(rt);
    let prev: unknown;
    for (const plugin of list.plugins) {
      const value = await this.exec(list, plugin, 'ADD', rt, prev !== undefined ? { prevResult: prev } : {});
      if (value === undefined) {
        throw new CniError(ErrorCode.Internal, `plugin ${plugin.type} printed no result for ADD`);
      }
      parseResult(value, list.cniVersion, `the result of plugin ${plugin.type}`);
      prev = value;
    }
    await this.cache.write({
      kind: 'cniCacheV1',
      containerId: rt.containerId,
      ifName: rt.ifName,
      networkName: list.name,
      config: list.bytes.toString('base64'),
      ...(rt.netns ? { netns: rt.netns } : {}),
      cniArgs: rt.args,
      capabilityArgs: rt.capabilityArgs,
      result: prev,
    });
    return prev;
  }

  /** The cached final result, in the list's version (for DEL and CHECK's prevResult). */
  async cachedResult(list: NetworkConfigList, containerId: string, ifName: string): Promise<unknown> {
    const entry = await this.cache.read(list.name, containerId, ifName);
    if (!entry || entry.result === undefined || entry.result === null) return undefined;
    const raw = entry.result as Record<string, unknown>;
    const v = typeof raw['cniVersion'] === 'string' ? raw['cniVersion'] : list.cniVersion;
    if (v === list.cniVersion) return raw;
    return convertResult(parseResult(raw, v, 'the cached result'), list.cniVersion);
  }

  async check(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    this.validate(rt);
    if (!versionAtLeast(list.cniVersion, '0.4.0')) {
      throw new CniError(ErrorCode.IncompatibleVersion, `configuration version "${list.cniVersion}" does not support the CHECK command`);
    }
    if (list.disableCheck) return;
    const prev = await this.cachedResult(list, rt.containerId, rt.ifName);
    if (prev === undefined) {
      throw new CniError(ErrorCode.Internal, `no cached result for container ${rt.containerId} interface ${rt.ifName} in network ${list.name}`);
    }
    for (const plugin of list.plugins) await this.exec(list, plugin, 'CHECK', rt, { prevResult: prev });
  }

  /** DEL in reverse order, every plugin with the cached result; the cache goes only when all succeed. */
  async del(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    this.validate(rt);
    const prev = versionAtLeast(list.cniVersion, '0.4.0')
      ? await this.cachedResult(list, rt.containerId, rt.ifName)
      : undefined;
    for (const plugin of [...list.plugins].reverse()) {
      await this.exec(list, plugin, 'DEL', rt, prev !== undefined ? { prevResult: prev } : {});
    }
    await this.cache.remove(list.name, rt.containerId, rt.ifName);
  }

  /**
   * DELs every cached attachment not in `valid`, then (1.1.0+) sends GC to every plugin with the
   * valid list; keeps going on errors and reports them all.
   */
  async gc(list: NetworkConfigList, valid: Array<{ containerId: string; ifName: string }>): Promise<void> {
    if (list.disableGC) return;
    const keep = new Set(valid.map((v) => `${v.containerId}\u0000${v.ifName}`));
    const errors: string[] = [];
    for (const entry of await this.cache.list(list.name)) {
      if (keep.has(`${entry.containerId}\u0000${entry.ifName}`)) continue;
      try {
        await this.del(list, {
          containerId: entry.containerId,
          ifName: entry.ifName,
          netns: entry.netns ?? '',
          args: entry.cniArgs ?? [],
          capabilityArgs: entry.capabilityArgs ?? {},
        });
      } catch (err) {
        errors.push(`DEL ${entry.containerId}/${entry.ifName}: ${(err as Error).message}`);
      }
    }
    if (versionAtLeast(list.cniVersion, '1.1.0')) {
      const attachments = valid.map((v) => ({ containerID: v.containerId, ifname: v.ifName }));
      for (const plugin of list.plugins) {
        try {
          await this.exec(list, plugin, 'GC', undefined, { validAttachments: attachments });
        } catch (err) {
          errors.push(`GC ${plugin.type}: ${(err as Error).message}`);
        }
      }
    }
    if (errors.length > 0) throw new CniError(ErrorCode.Internal, errors.join('; '));
  }

  /** STATUS of every plugin in order (1.1.0+; older lists succeed without running anything). */
  async status(list: NetworkConfigList): Promise<void> {
    if (!versionAtLeast(list.cniVersion, '1.1.0')) return;
    for (const plugin of list.plugins) await this.exec(list, plugin, 'STATUS', undefined);
  }
}
