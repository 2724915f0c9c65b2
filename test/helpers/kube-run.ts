/**
 * Running the CLI and kubectl against the Kubernetes API stand-in from a test. Asynchronous:
 * the stand-in answers from the test's own process, so nothing here may block its event loop.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { CLI } from './env.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runAsync(file: string, args: string[]): Promise<RunResult> {
  const env = { ...process.env };
  delete env['NODE_EXTRA_CA_CERTS'];
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: 60_000, env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export const weftAsync = (args: string[]): Promise<RunResult> => runAsync(process.execPath, [CLI, ...args]);

/** kubectl on a kubeconfig, its discovery cache in `dir` (never the user's ~/.kube); asserts success. */
export function kubectlFor(kubeconfig: () => string, dir: string): (args: string[]) => Promise<string> {
  return async (args) => {
    const r = await runAsync('kubectl', ['--kubeconfig', kubeconfig(), '--cache-dir', join(dir, 'kube-cache'), ...args]);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
}
