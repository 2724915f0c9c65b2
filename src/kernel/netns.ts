import { constants, promises as fs } from 'node:fs';
import { run } from './exec.js';

/**
 * Network namespaces: a pod's, opened by the path a runtime gave and checked to be a network
 * namespace; and the named ones (`ip netns`) the lab, the demo and the tests make.
 *
 * A pod's netns is opened once and used through that open file from then on: commands that
 * work inside it or move an interface into it are given the descriptor (as /proc/self/fd/3 in
 * the child), never the path as text — a path is whatever the caller sent (a symlink, a name
 * with a newline) and may change between a check and a use.
 */
export type NetnsProblem = 'missing' | 'not-netns' | 'denied';

export class NetnsError extends Error {
  readonly code = 'ERR_NETNS';
  constructor(
    readonly path: string,
    readonly reason: NetnsProblem,
    message: string,
  ) {
    super(message);
    this.name = 'NetnsError';
  }
}

export interface OpenNetns {
  /** The path as given, for messages and results only. */
  readonly path: string;
  readonly fd: number;
  /** True when it is the namespace this process runs in. */
  readonly own: boolean;
  close(): Promise<void>;
}

const show = (path: string): string => JSON.stringify(path).slice(1, -1);

function problem(path: string, err: unknown): NetnsError | undefined {
  return netnsOpenError(path, (err as NodeJS.ErrnoException).code);
}

/**
 * A netns file another process (the forwarder) holds open as fd `fd`; `file` is its "DEV:INO"
 * as that process sees it, so the file opened through /proc/PID/fd/FD is known to be the same.
 */
/** A file's "DEV:INO", as HeldNetns.file carries it. */
export const FILE_ID = /^\d{1,20}:\d{1,20}$/;

export interface HeldNetns {
  pid: number;
  fd: number;
  file: string;
}

/** Why CNI_NETNS could not be opened, from an errno name (here, or where the forwarder tried). */
export function netnsOpenError(path: string, code: string | undefined): NetnsError | undefined {
  if (code === 'ENOENT' || code === 'ENOTDIR') return new NetnsError(path, 'missing', `CNI_NETNS ${show(path)} does not exist`);
  if (code === 'EACCES' || code === 'EPERM') return new NetnsError(path, 'denied', `CNI_NETNS ${show(path)} cannot be opened: permission denied`);
  if (code === 'ELOOP' || code === 'ENAMETOOLONG' || code === 'EISDIR' || code === 'ENXIO' || code === 'EINVAL') {
    return new NetnsError(path, 'not-netns', `CNI_NETNS ${show(path)} is not a network namespace (${code})`);
  }
  return undefined;
}

/**
 * The kind of namespace an open descriptor is: /proc/PID/ns/* descriptors name it ("net:[…]");
 * a bind mount of one (/run/netns/NAME) shows its path, and its mount's root in mountinfo
 * names the kind instead. Mount ids are global, but a mount is listed only in the mountinfo of
 * its own mount namespace: `mountsOf` is the process that opened the path (the forwarder, when
 * the bind mount lives in the runtime's mount namespace). undefined: not a namespace at all.
 */
async function namespaceKind(path: string, fd: number, mountsOf: number | undefined): Promise<string | undefined> {
  const link = await fs.readlink(`/proc/self/fd/${fd}`);
  const direct = /^(\w+):\[\d+\]$/.exec(link);
  if (direct) return direct[1];
  const info = await fs.readFile(`/proc/self/fdinfo/${fd}`, 'utf8');
  const mntId = /^mnt_id:\s*(\d+)/m.exec(info)?.[1];
  if (mntId === undefined) return undefined;
  let mounts: string;
  try {
    mounts = await fs.readFile(`/proc/${mountsOf ?? 'self'}/mountinfo`, 'utf8');
  } catch {
    throw new NetnsError(path, 'missing', `CNI_NETNS ${show(path)}: the plugin process that opened it is gone`);
  }
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f[0] !== mntId) continue;
    const fstype = f[f.indexOf('-') + 1];
    return fstype === 'nsfs' ? /^(\w+):\[\d+\]$/.exec(f[3] ?? '')?.[1] : undefined;
  }
  return undefined;
}

const fileId = (st: { dev: bigint; ino: bigint }): string => `${st.dev}:${st.ino}`;

/**
 * Opens CNI_NETNS and checks it is a network namespace: missing, not a namespace (a file, a
 * directory, a FIFO, a uts or mount namespace…) and not permitted are NetnsErrors that say so.
 * O_NONBLOCK and O_NOCTTY: a FIFO or a terminal given as a netns must not hang or adopt us
 * (libuv opens with O_CLOEXEC: no other child inherits it). Nothing but a regular file (what a
 * namespace is to stat) is opened at all.
 *
 * `via`: the file is the one another process (the forwarder) holds open as fd FD; it is opened
 * as /proc/PID/fd/FD, which reaches it whatever mount namespace each is in, and used only if it
 * is the file the forwarder named (DEV:INO), checked before anything else and again once open.
 * Otherwise — the forwarder in another pid namespace, gone, or its fd something else here —
 * the path is used. `path` is what messages name.
 */
export async function openNetns(path: string, via?: HeldNetns): Promise<OpenNetns> {
  if (typeof path !== 'string' || path === '' || path.includes('\0') || Buffer.byteLength(path) > 4096) {
    throw new NetnsError(String(path), 'not-netns', 'CNI_NETNS must be a path of 1-4096 bytes without NUL');
  }
  const target = via ? `/proc/${via.pid}/fd/${via.fd}` : path;
  let st;
  try {
    st = await fs.stat(target, { bigint: true });
  } catch (err) {
    if (via) return openNetns(path);
    throw problem(path, err) ?? err;
  }
  if (via && fileId(st) !== via.file) return openNetns(path);
  if (!st.isFile()) throw new NetnsError(path, 'not-netns', `CNI_NETNS ${show(path)} is not a network namespace (it is a ${st.isDirectory() ? 'directory' : 'special file'})`);
  let handle;
  try {
    handle = await fs.open(target, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    if (via) return openNetns(path);
    throw problem(path, err) ?? err;
  }
  try {
    const mine = await handle.stat({ bigint: true });
    if (via && fileId(mine) !== via.file) {
      await handle.close();
      return openNetns(path);
    }
    const kind = await namespaceKind(path, handle.fd, via?.pid);
    if (kind !== 'net') {
      throw new NetnsError(path, 'not-netns', `CNI_NETNS ${show(path)} is not a network namespace (${kind ? `it is a ${kind} namespace` : 'it is a plain file'})`);
    }
    const ours = await fs.stat('/proc/self/ns/net', { bigint: true });
    const fh = handle;
    return { path, fd: fh.fd, own: fileId(mine) === fileId(ours), close: () => fh.close() };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
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
