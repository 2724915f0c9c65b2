/**
 * The Kubernetes API stand-in as a process of its own, for `weft lab up --datastore kubernetes`:
 * it listens on a unix socket (reachable from every node's netns through the filesystem), writes
 * a kubeconfig naming it (the admin's) and kubeconfig-agent (the weft-agent service account's,
 * which RBAC holds to what deploy/weft.yaml grants), and serves until SIGTERM. Its objects live
 * in memory: a restart is an empty cluster.
 *   node kube-standin-main.js --socket PATH --kubeconfig-dir DIR
 * On SIGUSR2 it writes DIR/standin-requests.json: every request it served so far (method, path,
 * whether a watch, status, user agent) — for the benchmarks' and tests' count of what an agent
 * asked. On SIGUSR1 it applies the fault in DIR/standin-fault.json and removes the file (the
 * fault tests: {"fault":"dropWatches"|"compact"|"pause"|"resume"|"holdBookmarks"|"releaseBookmarks"} or
 * {"fault":"failNext","count":N,"status":429|500|503}).
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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
// What the DaemonSet's pods get: the weft-agent service account, held to the RBAC in deploy/weft.yaml.
standin.writeKubeconfig(dir, { file: 'kubeconfig-agent', token: standin.serviceAccountToken('weft-system', 'weft-agent') });
process.on('SIGUSR2', () => {
  // Whole or not at all: a reader polls for the file.
  writeFileSync(join(dir, 'standin-requests.json.tmp'), JSON.stringify(standin.requests));
  renameSync(join(dir, 'standin-requests.json.tmp'), join(dir, 'standin-requests.json'));
});

type Fault = { fault: 'dropWatches' | 'compact' | 'pause' | 'resume' | 'holdBookmarks' | 'releaseBookmarks' } | { fault: 'failNext'; count: number; status: 429 | 500 | 503 };
process.on('SIGUSR1', () => {
  const file = join(dir, 'standin-fault.json');
  const f = JSON.parse(readFileSync(file, 'utf8')) as Fault;
  if (f.fault === 'dropWatches') standin.dropWatches();
  else if (f.fault === 'compact') standin.compact(standin.revision());
  else if (f.fault === 'pause') standin.pause();
  else if (f.fault === 'resume') standin.resume();
  else if (f.fault === 'failNext') standin.failNext(f.count, f.status);
  else if (f.fault === 'holdBookmarks') standin.bookmarksHeld = true;
  else if (f.fault === 'releaseBookmarks') standin.bookmarksHeld = false;
  rmSync(file);
});
process.stdout.write(`kube-apiserver stand-in serving ${standin.url}\n`);
const stop = (): void => {
  void standin.stop().finally(() => {
    rmSync(socketPath, { force: true });
    process.exit(0);
  });
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
