/** `weft ARGS` as a user runs it (dist/weft.mjs), waited for: exit status and output. */
import { spawnSync } from 'node:child_process';
import { CLI } from './env.js';

export function weft(args: string[], o: { input?: string; timeoutMs?: number } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: o.timeoutMs ?? 60_000, ...(o.input !== undefined ? { input: o.input } : {}) });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
