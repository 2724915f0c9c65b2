import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { parseResult } from '../../src/cni/convert.js';
import type { Result } from '../../src/cni/result.js';
import { addressOf } from '../../src/cni/result.js';
import type { NetworkConfigList } from '../../src/cniruntime/conflist.js';
import type { CniRuntime, RuntimeConf } from '../../src/cniruntime/runtime.js';
import {
  createPodNetns,
  podConf,
  sandboxNetwork,
  sandboxRuntime,
  startSandbox,
  stopSandbox,
  type Sandbox,
  type SandboxOptions,
} from '../../src/lab/sandbox.js';
import { CLI, ipJson, PLUGIN_BINARY } from './env.js';

/**
 * A test node: the sandbox plus conveniences. Every test that makes one removes it in a
 * finally/after hook, also when it fails.
 */
export interface TestNode {
  sb: Sandbox;
  list: NetworkConfigList;
  rt: CniRuntime;
  plugin: string;
  /** Creates a pod netns and ADDs it; returns the parsed result. */
  addPod(name: string, extra?: Partial<RuntimeConf>): Promise<{ netns: string; result: Result; addresses: string[] }>;
  conf(name: string, extra?: Partial<RuntimeConf>): RuntimeConf;
  stop(): Promise<void>;
}

export const DUAL_STACK = ['10.244.7.0/24', 'fd00:244:7::/64'];

export async function startTestNode(o: Partial<SandboxOptions> = {}): Promise<TestNode> {
  const sb = await startSandbox({ podCidrs: DUAL_STACK, cliEntry: CLI, pluginBinary: PLUGIN_BINARY, ...o });
  const list = await sandboxNetwork(sb);
  const rt = sandboxRuntime(sb);
  const node: TestNode = {
    sb,
    list,
    rt,
    plugin: join(sb.binDir, 'weft'),
    conf: (name, extra = {}) => podConf(`ctr-${name}`, `/run/netns/${sb.prefix}-${name}`, extra),
    async addPod(name, extra = {}) {
      const netns = await createPodNetns(sb, name);
      const raw = await rt.add(list, podConf(`ctr-${name}`, netns, extra));
      const result = parseResult(raw, list.cniVersion, 'result');
      return { netns, result, addresses: (result.ips ?? []).map((i) => addressOf(i.address)) };
    },
    stop: () => stopSandbox(sb),
  };
  return node;
}

/** What the node netns holds that belongs to pods: veths, host routes to pod ranges. */
export function nodeLeftovers(node: TestNode): { links: string[]; routes: string[] } {
  const links = ipJson(node.sb.nodeNetns, ['link', 'show', 'type', 'veth']).map((l) => String(l['ifname']));
  const routes = [...ipJson(node.sb.nodeNetns, ['route', 'show']), ...ipJson(node.sb.nodeNetns, ['-6', 'route', 'show'])]
    .map((r) => String(r['dst']))
    .filter((d) => d.startsWith('10.244.') || d.startsWith('fd00:244:'));
  return { links, routes };
}

/** Reservation files and attachment records in the agent's state dir. */
export async function stateLeftovers(node: TestNode): Promise<{ reservations: string[]; records: string[] }> {
  const list = async (d: string): Promise<string[]> => (await fs.readdir(d).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));
  return {
    reservations: await list(join(node.sb.stateDir, 'ipam', 'reservations')),
    records: await list(join(node.sb.stateDir, 'attachments')),
  };
}
