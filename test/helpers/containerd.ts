import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PAUSE_IMAGE } from './image.js';

/**
 * A private containerd for one test: its own root, state, socket and config under a temp dir
 * (never the machine's default one), started inside the test node's netns so the CNI plugins it
 * runs configure that netns. Ended by its PID.
 */
export interface Containerd {
  dir: string;
  socket: string;
  log: string;
  proc: ChildProcess;
}

export interface ContainerdOptions {
  dir: string;
  nodeNetnsPath: string;
  cniBinDir: string;
  cniConfDir: string;
  /** The CRI keeps pod netns under its state dir (containerd ≥ 1.6.20), not /run/netns. */
  netnsUnderStateDir?: boolean;
  /**
   * containerd in a private mount namespace: its netns mounts reach no other process, whatever
   * the host's mount propagation (read them through /proc/PID/root).
   */
  privateMounts?: boolean;
}

function config(o: ContainerdOptions, socket: string): string {
  return `version = 2
root = "${join(o.dir, 'root')}"
state = "${join(o.dir, 'state')}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "${join(o.dir, 'opt')}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # runc cannot set a negative oom_score_adj here
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = ${o.netnsUnderStateDir === true}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${o.cniBinDir}"
    conf_dir = "${o.cniConfDir}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # no systemd, cgroup v1: cgroupfs
        SystemdCgroup = false
`;
}

export async function startContainerd(o: ContainerdOptions): Promise<Containerd> {
  mkdirSync(o.dir, { recursive: true });
  const socket = join(o.dir, 'containerd.sock');
  const cfg = join(o.dir, 'config.toml');
  writeFileSync(cfg, config(o, socket));
  const log = join(o.dir, 'containerd.log');
  const fd = openSync(log, 'a');
  const enter = ['nsenter', `--net=${o.nodeNetnsPath}`, '--', 'containerd', '--config', cfg];
  // unshare execs nsenter, which execs containerd: the pid is containerd's either way.
  const argv = o.privateMounts ? ['unshare', '--mount', '--propagation', 'private', '--', ...enter] : enter;
  const proc = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const deadline = Date.now() + 20_000;
  while (!existsSync(socket) || ctr({ socket } as Containerd, ['version']).status !== 0) {
    if (proc.exitCode !== null) throw new Error(`containerd exited: ${readFileSync(log, 'utf8').slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`containerd did not start: ${readFileSync(log, 'utf8').slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { dir: o.dir, socket, log, proc };
}

export function ctr(c: Pick<Containerd, 'socket'>, args: string[], timeoutMs = 60_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('ctr', ['--address', c.socket, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export async function stopContainerd(c: Containerd | undefined): Promise<void> {
  if (!c || c.proc.exitCode !== null) return;
  const done = new Promise<void>((r) => c.proc.once('exit', () => r()));
  c.proc.kill('SIGTERM');
  const t = setTimeout(() => c.proc.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(t);
}
