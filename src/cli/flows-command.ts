/**
 * `weft flows`: the flow records of one node (its agent socket) or of every node of a lab,
 * merged in time order, filtered by the flags, as lines or one JSON object per line; with
 * --follow, new ones as they come until interrupted.
 */
import type { Command } from 'commander';
import { DEFAULT_SOCKET } from '../agent/api.js';
import { readFlows } from '../agent/flows-client.js';
import { FlowFeed } from '../agent/flow-feed.js';
import { listLabs, loadLab, resolveLabName } from '../lab/lab-state.js';
import { filterFromFlags, flowText, matchesFilter, mergeByTime, type FlowFlags, type FlowRecord } from '../observe/flow.js';
import { UserError } from '../util/user-error.js';
import { labAlias, labOpt } from './lab-command.js';

interface FlowsOptions extends FlowFlags {
  lab?: string;
  socket?: string;
  follow?: boolean;
  json?: boolean;
}

/** The agents to ask: name and socket. */
function sources(o: FlowsOptions): Array<{ node: string; socket: string }> {
  if (o.socket !== undefined && o.lab !== undefined) throw new UserError('give --socket (one node) or --lab (every node of a lab), not both');
  if (o.socket !== undefined || (o.lab === undefined && listLabs().length === 0)) return [{ node: o.socket ?? DEFAULT_SOCKET, socket: o.socket ?? DEFAULT_SOCKET }];
  const lab = loadLab(resolveLabName(o.lab));
  return lab.nodes.map((n) => ({ node: n.name, socket: n.socket }));
}

export function registerFlowsCommand(program: Command): void {
  program
    .command('flows')
    .description('flow records: what each node forwarded and dropped, and for a drop the rule that decided (from a lab: every node, in time order)')
    .option(...labOpt)
    .addOption(labAlias())
    .option('--socket <path>', `one node: its agent socket (default ${DEFAULT_SOCKET} when no lab runs)`)
    .option('-f, --follow', 'keep printing new records until interrupted')
    .option('--since <duration>', 'only records of the last DURATION, e.g. 30s, 5m, 1h')
    .option('--pod <ns/pod>', 'only flows from or to this pod')
    .option('--namespace <ns>', 'only flows from or to pods of this namespace')
    .option('--verdict <v>', 'forwarded or dropped')
    .option('--protocol <p>', 'TCP, UDP, SCTP, ICMP or ICMPv6')
    .option('--port <n>', 'only flows from or to this port')
    .option('--json', 'one JSON object per record, one per line')
    .action(async (o: FlowsOptions) => {
      const filter = filterFromFlags(o, Date.now());
      const from = sources(o);
      const print = (r: FlowRecord): void => {
        if (matchesFilter(r, filter)) process.stdout.write(`${o.json ? JSON.stringify(r) : flowText(r)}\n`);
      };
      if (o.follow) {
        // Each node's records from --since (else from now), then new ones as they come; a node
        // whose agent restarts is followed again (its stream resumes where it broke off).
        const now = Date.now();
        const feed = new FlowFeed({
          historyMs: filter.since !== undefined ? now - filter.since : 0,
          keep: 1,
          retryMs: 1000,
          onLost: (node, why) => process.stderr.write(`weft: lost ${node}'s flows (${why}); following it again\n`),
        });
        feed.subscribe(print);
        feed.sync(from.map((s) => ({ name: s.node, socket: s.socket })));
        await new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          process.once('SIGTERM', () => resolve());
        });
        feed.close();
        return;
      }
      const failures: string[] = [];
      const lists = await Promise.all(
        from.map(async (s) => {
          const got: FlowRecord[] = [];
          await readFlows(s.socket, (r) => got.push(r), { ...(filter.since !== undefined ? { sinceMs: filter.since } : {}) }).catch((err: Error) => failures.push(`${s.node}: ${err.message}`));
          return got;
        }),
      );
      for (const r of mergeByTime(lists)) print(r);
      for (const f of failures) process.stderr.write(`weft: no flows from ${f}\n`);
      if (failures.length > 0) process.exitCode = 1;
    });
}
