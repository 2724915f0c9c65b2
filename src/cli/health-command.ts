/**
 * `weft health`: asks an agent on its socket how it is — for probes (the DaemonSet's liveness
 * and readiness) and people. Exit 0 when it answers (with --ready: and, in a cluster, its
 * datastore is connected and its policy table in force); 1 otherwise, saying why.
 */
import type { Command } from 'commander';
import { DEFAULT_SOCKET, type HealthReply } from '../agent/api.js';
import { getHealth } from '../agent/health-client.js';

/** Why an agent is not ready, or undefined when it is (pure). */
export function notReady(h: HealthReply): string | undefined {
  if (!h.ok) return 'the agent reports a problem';
  if (h.cluster && !h.cluster.datastoreConnected) return 'the datastore is not connected';
  if (h.policy && h.policy.syncs === 0) return 'no policy table is in force yet';
  return undefined;
}

export function registerHealthCommand(program: Command): void {
  program
    .command('health')
    .description("ask the agent on a socket how it is: exit 0 when it answers (--ready: and it is ready to serve pods)")
    .option('--socket <path>', 'the agent socket', DEFAULT_SOCKET)
    .option('--ready', 'also require a connected datastore and a policy table in force (readiness)')
    .option('--timeout <ms>', 'how long to wait for an answer', '2000')
    .option('--json', 'print the whole answer')
    .action(async (o: { socket: string; ready?: boolean; timeout: string; json?: boolean }) => {
      let h: HealthReply;
      try {
        h = await getHealth(o.socket, Number(o.timeout) || 2000);
      } catch (err) {
        process.stderr.write(`weft: no agent answers on ${o.socket}: ${(err as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      const why = o.ready ? notReady(h) : undefined;
      if (o.json) process.stdout.write(JSON.stringify(h) + '\n');
      else process.stdout.write(why ? `not ready: ${why}\n` : `${o.ready ? 'ready' : 'alive'}: ${h.attachments} pods attached${h.cluster ? `, node ${h.cluster.node}, peers ${h.cluster.peers.join(',') || '-'}` : ''}\n`);
      if (why) process.exitCode = 1;
    });
}
