import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_NODE_FLAGS } from '../agent/api.js';
import { waitForAgent } from '../agent/health-client.js';
import { install } from '../install/install.js';
import { loadNetwork } from '../cniruntime/loader.js';
import { CniRuntime, type RuntimeConf } from '../cniruntime/runtime.js';
import type { NetworkConfigList } from '../cniruntime/conflist.js';
import { ipBatch, ipc } from '../kernel/ip.js';
import { createNamedNetns, deleteNamedNetns } from '../kernel/netns.js';
import { startDaemon } from '../kernel/exec.js';

/**
 * One node on this machine without touching its root netns: a netns standing in for the node,
 * its own agent (own state dir and socket), the plugin and conflist installed into private dirs,
 * and pods as further netns attached through the CNI runtime. The demo, the tests and the
 * benchmarks build on it; names carry a per-run prefix so parallel runs never collide.
 */
export interface SandboxOptions {
  /** Prefix for every netns and temp dir name; random when absent. */
  prefix?: string;
  podCidrs: string[];
  mtu?: number;
  /** Reference plugins to chain after weft (portmap, bandwidth, tuning). */
  chain?: string[];
  /** The weft CLI entry to run the agent with (dist/weft.mjs). */
  cliEntry: string;
  /** The plugin to install (dist/weft-cni); found automatically when absent. */
  pluginBinary?: string;
  agentArgs?: string[];
  /** Extra environment for the agent process. */
  agentEnv?: Record<string, string>;
  /** Start the agent in a mount namespace of its own (see DaemonOptions.mountNamespace). */
  agentMountNamespace?: 'ip-netns-exec' | 'private';
}

export interface Sandbox {
  prefix: string;
  dir: string;
  nodeNetns: string;
  nodeNetnsPath: string;
  stateDir: string;
  socket: string;
  binDir: string;
  confDir: string;
  cacheDir: string;
  /** CNI_PATH: our bin dir, then Debian's reference plugins. */
  cniPath: string[];
  agentLog: string;
  agent: ChildProcess | undefined;
  pods: Set<string>;
}

/**
 * The sandbox node's own address, on its loopback (a real node owns one: the source of its
 * traffic to pods, such as kubelet probes). From the RFC 2544 benchmarking range, so it can
 * never be mistaken for an address of the machine's own network.
 */
export const SANDBOX_NODE_ADDRESS = '198.18.0.1';

export function randomPrefix(tag: string): string {
  return `${tag}${randomBytes(3).toString('hex')}`;
}

export async function startSandbox(o: SandboxOptions): Promise<Sandbox> {
  const prefix = o.prefix ?? randomPrefix('wft');
  const dir = await fs.mkdtemp(join(tmpdir(), `${prefix}-`));
  const sb: Sandbox = {
    prefix,
    dir,
    nodeNetns: `${prefix}-node`,
    nodeNetnsPath: `/run/netns/${prefix}-node`,
    stateDir: join(dir, 'state'),
    socket: join(dir, 'agent.sock'),
    binDir: join(dir, 'bin'),
    confDir: join(dir, 'net.d'),
    cacheDir: join(dir, 'cache'),
    cniPath: [join(dir, 'bin'), '/usr/lib/cni'],
    agentLog: join(dir, 'agent.log'),
    agent: undefined,
    pods: new Set(),
  };
  try {
    await createNamedNetns(sb.nodeNetns);
    await ipBatch([ipc`link set lo up`, ipc`addr add ${SANDBOX_NODE_ADDRESS}/32 dev lo`], { netns: sb.nodeNetnsPath });
    await install({
      binDir: sb.binDir,
      confDir: sb.confDir,
      socket: sb.socket,
      name: `${prefix}-net`,
      chain: o.chain ?? [],
      ...(o.mtu !== undefined ? { mtu: o.mtu } : {}),
      ...(o.pluginBinary ? { pluginBinary: o.pluginBinary } : {}),
    });
    await startSandboxAgent(sb, o);
    return sb;
  } catch (err) {
    await stopSandbox(sb);
    throw err;
  }
}

export async function startSandboxAgent(sb: Sandbox, o: Pick<SandboxOptions, 'podCidrs' | 'cliEntry' | 'agentArgs' | 'agentEnv' | 'agentMountNamespace'>): Promise<void> {
  const args = [...AGENT_NODE_FLAGS, o.cliEntry, 'agent', '--state-dir', sb.stateDir, '--socket', sb.socket, ...o.podCidrs.flatMap((c) => ['--pod-cidr', c]), ...(o.agentArgs ?? [])];
  const child = await startDaemon(process.execPath, args, {
    netns: sb.nodeNetnsPath,
    logFile: sb.agentLog,
    ...(o.agentMountNamespace ? { mountNamespace: o.agentMountNamespace } : {}),
    ...(o.agentEnv ? { env: { ...process.env, ...o.agentEnv } } : {}),
  });
  sb.agent = child;
  let exit: string | undefined;
  child.once('exit', (code, sig) => {
    exit = `exit ${code ?? sig}`;
  });
  try {
    await waitForAgent(sb.socket, 15_000, () => exit);
  } catch (err) {
    const log = await fs.readFile(sb.agentLog, 'utf8').catch(() => '');
    throw new Error(`${(err as Error).message}\nagent log:\n${log.slice(-2000)}`);
  }
}

/** Ends the agent by its PID: SIGTERM (clean) or SIGKILL (a crash). */
export async function stopSandboxAgent(sb: Sandbox, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const child = sb.agent;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(timer);
  sb.agent = undefined;
}

export async function sandboxNetwork(sb: Sandbox): Promise<NetworkConfigList> {
  return loadNetwork(sb.confDir);
}

export function sandboxRuntime(sb: Sandbox): CniRuntime {
  // Plugins run in the node's netns, as a runtime on that node would run them.
  return new CniRuntime({ path: sb.cniPath, cacheDir: sb.cacheDir, netns: sb.nodeNetnsPath });
}

/** A pod netns with its loopback up (what the runtime's loopback plugin would do). */
export async function createPodNetns(sb: Sandbox, name: string): Promise<string> {
  const ns = `${sb.prefix}-${name}`;
  await createNamedNetns(ns);
  sb.pods.add(ns);
  await ipBatch([ipc`link set lo up`], { netns: `/run/netns/${ns}` });
  return `/run/netns/${ns}`;
}

export async function deletePodNetns(sb: Sandbox, name: string): Promise<void> {
  const ns = `${sb.prefix}-${name}`;
  await deleteNamedNetns(ns);
  sb.pods.delete(ns);
}

export function podConf(containerId: string, netns: string, extra: Partial<RuntimeConf> = {}): RuntimeConf {
  return { containerId, netns, ifName: 'eth0', args: [], capabilityArgs: {}, ...extra };
}

/** Removes everything the sandbox made, whatever state it is in. */
export async function stopSandbox(sb: Sandbox): Promise<void> {
  await stopSandboxAgent(sb, 'SIGTERM').catch(() => undefined);
  for (const ns of [...sb.pods]) await deleteNamedNetns(ns).catch(() => undefined);
  sb.pods.clear();
  await deleteNamedNetns(sb.nodeNetns).catch(() => undefined);
  await fs.rm(sb.dir, { recursive: true, force: true });
}
