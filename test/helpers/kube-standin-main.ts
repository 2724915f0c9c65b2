/**
 * The Kubernetes API stand-in as a process of its own, for `weft lab up --datastore kubernetes`:
 * it listens on a unix socket (reachable from every node's netns through the filesystem), writes
 * a kubeconfig naming it, and serves until SIGTERM. Its objects live in memory: a restart is an
 * empty cluster.
 *   node kube-standin-main.js --socket PATH --kubeconfig-dir DIR
 * On SIGUSR2 it writes DIR/standin-requests.json: every request it served so far (method, path,
 * whether a watch, status, user agent) — for the benchmarks' count of what an agent asked.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeApiStandin } from './kube-apiserver-standin.js';

function arg(name: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) throw new Error(`usage: kube-standin-main.js --socket PATH --kubeconfig-dir DIR (missing ${name})`);
  return v;
}

const socketPath = arg('--socket');
rmSync(socketPath, { force: true });
const standin = await KubeApiStandin.start({ socketPath });
const dir = arg('--kubeconfig-dir');
standin.writeKubeconfig(dir);
process.on('SIGUSR2', () => writeFileSync(join(dir, 'standin-requests.json'), JSON.stringify(standin.requests)));
process.stdout.write(`kube-apiserver stand-in serving ${standin.url}\n`);
const stop = (): void => {
  void standin.stop().finally(() => {
    rmSync(socketPath, { force: true });
    process.exit(0);
  });
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
