import { promises as fs } from 'node:fs';
import { run } from './exec.js';

/** statfs magic of the nsfs filesystem that backs /proc/PID/ns/net and /run/netns/NAME. */
const NSFS_MAGIC = 0x6e736673;

export type NetnsKind = 'netns' | 'missing' | 'not-netns';

/** What a CNI_NETNS path points at, without entering it. */
export async function inspectNetns(path: string): Promise<NetnsKind> {
  try {
    const st = await fs.statfs(path);
    return st.type === NSFS_MAGIC ? 'netns' : 'not-netns';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'missing';
    throw err;
  }
}

/** True when `path` is the netns this process runs in (then a "pod" would be the node itself). */
export async function isOwnNetns(path: string): Promise<boolean> {
  const [a, b] = await Promise.all([fs.stat(path), fs.stat('/proc/self/ns/net')]);
  return a.ino === b.ino && a.dev === b.dev;
}

/** Named network namespaces (`ip netns add`), used by the lab, the demo and the tests. */
export async function createNamedNetns(name: string): Promise<string> {
  await run('ip', ['netns', 'add', name]);
  return `/run/netns/${name}`;
}

export async function deleteNamedNetns(name: string): Promise<void> {
  const r = await run('ip', ['netns', 'del', name], { allowFailure: true });
  if (r.exitCode !== 0 && !/No such file or directory/.test(r.stderr)) {
    throw new Error(`cannot delete netns ${name}: ${r.stderr.trim()}`);
  }
}

export async function listNamedNetns(): Promise<string[]> {
  const r = await run('ip', ['-json', 'netns', 'list'], { allowFailure: true });
  if (r.exitCode !== 0 || r.stdout.trim() === '') return [];
  const list = JSON.parse(r.stdout) as Array<{ name: string }>;
  return list.map((n) => n.name);
}

/** PIDs of the processes in a named netns (`ip netns pids`), to end them by PID. */
export async function netnsPids(name: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', name], { allowFailure: true });
  if (r.exitCode !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}
