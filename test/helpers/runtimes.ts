import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { ipJson } from './env.js';
import type { TestNode } from './node.js';

/** Shared pieces of the real-runtime tests. */
export function missingBinaries(names: string[]): string | undefined {
  const missing = names.filter((n) => spawnSync('sh', ['-c', `command -v ${n}`]).status !== 0);
  return missing.length ? `not installed: ${missing.join(', ')} (scripts/setup.sh installs them)` : undefined;
}

export interface Attachment {
  containerId: string;
  addresses: string[];
  pod?: { namespace?: string; name?: string; uid?: string };
  netns: string;
}

/** The agent's records, as the runtime tests read them (which container got what). */
export async function attachments(node: TestNode): Promise<Attachment[]> {
  const dir = join(node.sb.stateDir, 'attachments');
  const out: Attachment[] = [];
  for (const f of await fs.readdir(dir)) {
    if (!f.endsWith('.json')) continue;
    const rec = JSON.parse(await fs.readFile(join(dir, f), 'utf8')) as Attachment & { state: string };
    if (rec.state === 'ready') out.push(rec);
  }
  return out;
}

export async function waitForAttachment(node: TestNode, containerId: string, timeoutMs = 30_000): Promise<Attachment> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const a = (await attachments(node)).find((x) => x.containerId === containerId);
    if (a) return a;
    if (Date.now() > deadline) throw new Error(`no attachment for ${containerId} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The node netns has no way out: only loopback and pod veths, and no route but to pods. So
 * nothing a test does there can send a packet beyond the namespaces it made.
 */
export function nodeIsSealed(node: TestNode): string[] {
  const problems: string[] = [];
  for (const l of ipJson(node.sb.nodeNetns, ['link', 'show'])) {
    const name = String(l['ifname']);
    if (name !== 'lo' && !name.startsWith('weft')) problems.push(`unexpected link ${name}`);
  }
  for (const r of [...ipJson(node.sb.nodeNetns, ['route', 'show']), ...ipJson(node.sb.nodeNetns, ['-6', 'route', 'show'])]) {
    const dst = String(r['dst']);
    const dev = String(r['dev']);
    if (dst === 'default') problems.push(`a default route via ${dev}`);
    else if (!dev.startsWith('weft')) problems.push(`route ${dst} via ${dev}`);
  }
  return problems;
}

/**
 * What `path` is in the agent's own mount namespace: its file system type ("nsfs" for a
 * namespace, e.g. "tmpfs" or "ext2/ext3" for the empty file a netns is mounted on), or
 * "missing".
 */
export function agentSees(node: TestNode, path: string): string {
  const pid = node.sb.agent?.pid;
  if (pid === undefined) throw new Error('the agent is not running');
  const r = spawnSync('nsenter', [`--mount=/proc/${pid}/ns/mnt`, '--', 'stat', '-f', '-c', '%T', path], { encoding: 'utf8' });
  if (r.status === 0) return r.stdout.trim();
  if (/No such file or directory/.test(r.stderr)) return 'missing';
  throw new Error(`cannot look into the agent's mount namespace: ${r.stderr}`);
}

/** ps-style liveness of a child process started by a test. */
export function running(p: ChildProcess | undefined): boolean {
  return p !== undefined && p.exitCode === null && p.signalCode === null;
}

export function startLongRunning(cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  return spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
}

export function waitExit(p: ChildProcess, timeoutMs = 30_000): Promise<number | null> {
  if (!running(p)) return Promise.resolve(p.exitCode);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('process did not exit')), timeoutMs);
    p.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

export { existsSync };

/** The containers.conf an operator writes (README "podman"), plus this machine's quirks. */
export function podmanConf(binDir: string, confDir: string, dir: string): string {
  return `[containers]
# this machine's hard limits are lower than podman's defaults
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"

[engine]
# no systemd here: cgroupfs and a file for events
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "${join(dir, 'events.log')}"
runtime = "runc"
tmp_dir = "${join(dir, 'tmp')}"

[network]
network_backend = "cni"
cni_plugin_dirs = ["${binDir}"]
network_config_dir = "${confDir}"
`;
}
