import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A real etcd (Debian's etcd-server) for one test: its own data dir, listening on free ports of
 * an address the test chooses (loopback, or a lab netns via `netns`). Ended by its PID.
 */
export interface EtcdServer {
  endpoint: string;
  dataDir: string;
  proc: ChildProcess;
  host: string;
  clientPort: number;
  peerPort: number;
  netns: string | undefined;
}

export function etcdMissing(): string | undefined {
  return spawnSync('sh', ['-c', 'command -v etcd && command -v etcdctl']).status === 0 ? undefined : 'etcd is not installed (Debian etcd-server, etcd-client; scripts/setup.sh installs them)';
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export async function startEtcd(opts: { host?: string; netns?: string; dataDir?: string; clientPort?: number; peerPort?: number } = {}): Promise<EtcdServer> {
  const host = opts.host ?? '127.0.0.1';
  const clientPort = opts.clientPort ?? (await freePort());
  const peerPort = opts.peerPort ?? (await freePort());
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'weft-etcd-'));
  const args = [
    '--name', 'weft-test',
    '--data-dir', dataDir,
    '--listen-client-urls', `http://${host}:${clientPort}`,
    '--advertise-client-urls', `http://${host}:${clientPort}`,
    '--listen-peer-urls', `http://${host}:${peerPort}`,
    '--initial-advertise-peer-urls', `http://${host}:${peerPort}`,
    '--initial-cluster', `weft-test=http://${host}:${peerPort}`,
    '--log-level', 'error',
  ];
  const [cmd, full] = opts.netns ? ['nsenter', [`--net=${opts.netns}`, '--', 'etcd', ...args]] : ['etcd', args];
  const proc = spawn(cmd, full, { stdio: 'ignore' });
  const endpoint = `http://${host}:${clientPort}`;
  const server: EtcdServer = { endpoint, dataDir, proc, host, clientPort, peerPort, netns: opts.netns };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`etcd exited with ${proc.exitCode}`);
    const ok = etcdctl(server, ['endpoint', 'health']).status === 0;
    if (ok) return server;
    if (Date.now() > deadline) throw new Error(`etcd did not become healthy at ${endpoint}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function etcdctl(s: EtcdServer, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const base = ['etcdctl', '--endpoints', s.endpoint, '--command-timeout=2s', ...args];
  const [cmd, full] = s.netns ? ['nsenter', [`--net=${s.netns}`, '--', ...base]] : [base[0] as string, base.slice(1)];
  const r = spawnSync(cmd, full, { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Stops it (SIGTERM, then SIGKILL); keeps the data dir unless `remove`. */
export async function stopEtcd(s: EtcdServer | undefined, remove = true): Promise<void> {
  if (!s) return;
  if (s.proc.exitCode === null && s.proc.signalCode === null) {
    const done = new Promise((r) => s.proc.once('exit', r));
    s.proc.kill('SIGTERM');
    const t = setTimeout(() => s.proc.kill('SIGKILL'), 5000);
    await done;
    clearTimeout(t);
  }
  if (remove) rmSync(s.dataDir, { recursive: true, force: true });
}
