/**
 * Tests against the Kubernetes API stand-in: the stand-in's life in a describe, and running the
 * CLI and kubectl against it. Asynchronous: the stand-in answers from the test's own process,
 * so nothing here may block its event loop.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { CLI } from './env.js';
import { KubeApiStandin } from './kube-apiserver-standin.js';

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

export interface StandinFixture {
  /** A temporary directory for the test's files (removed after). */
  dir: string;
  standin(): KubeApiStandin;
  /** The kubeconfig naming the stand-in (TLS and a token). */
  kubeconfig(): string;
  kubectl(args: string[]): Promise<string>;
}

/**
 * A Kubernetes API stand-in for the enclosing describe: started before its tests, stopped and
 * its directory removed after them (also when they fail).
 */
export function standinFixture(prefix: string): StandinFixture {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let server: KubeApiStandin | undefined;
  let kubeconfig = '';
  before(async () => {
    server = await KubeApiStandin.start();
    kubeconfig = server.writeKubeconfig(dir);
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    standin: () => server as KubeApiStandin,
    kubeconfig: () => kubeconfig,
    kubectl: kubectlFor(() => kubeconfig, dir),
  };
}
