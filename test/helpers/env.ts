import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Paths and gates shared by the end-to-end tests. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CLI = join(ROOT, 'dist', 'weft.mjs');
export const PLUGIN_BINARY = join(ROOT, 'dist', 'weft-cni');

/** Why privileged tests cannot run here, or undefined when they can. */
export function privilegedSkip(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  if (!existsSync(CLI) || !existsSync(PLUGIN_BINARY)) return 'dist/ is missing: run `npm run build`';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    execFileSync('nsenter', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'iproute2 and util-linux (ip, nsenter) are needed';
  }
  return undefined;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is JSON. */
  json: Record<string, unknown> | undefined;
}

/** Executes a plugin exactly as a runtime does: env vars, config on stdin. */
export function execPlugin(
  file: string,
  env: Record<string, string>,
  stdin: string | undefined,
  opts: { keepStdinOpen?: boolean; timeoutMs?: number; netns?: string } = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const [cmd, args] = opts.netns ? ['nsenter', [`--net=${opts.netns}`, '--', file]] : [file, []];
    const child = spawn(cmd, args, { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`plugin did not exit within ${opts.timeoutMs ?? 30_000} ms`));
    }, opts.timeoutMs ?? 30_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    // A plugin may refuse its input before reading all of it (it caps stdin): not a test error.
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
    if (stdin !== undefined) child.stdin.write(stdin);
    if (!opts.keepStdinOpen) child.stdin.end();
  });
}

/** `ip -json …` inside a named netns, parsed. */
export function ipJson(netns: string, args: string[]): Array<Record<string, unknown>> {
  const out = execFileSync('ip', ['-n', netns, '-json', ...args], { encoding: 'utf8' });
  return out.trim() ? (JSON.parse(out) as Array<Record<string, unknown>>) : [];
}

export function ipIn(netns: string, args: string[]): string {
  return execFileSync('ip', ['-n', netns, ...args], { encoding: 'utf8' });
}

/** Pings from one named netns; true when every reply came back. */
export function ping(netns: string, address: string, count = 1): boolean {
  try {
    execFileSync('ip', ['netns', 'exec', netns, 'ping', '-c', String(count), '-i', '0.2', '-W', '1', address], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}
