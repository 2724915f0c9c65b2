import type { Command } from 'commander';
import { reportNames, summaryLine, tableHeader, tableRow, type CheckResult } from '../lab/connectivity-plan.js';
import { runConnectivityTest } from '../lab/connectivity.js';
import { loadLab, resolveLabName } from '../lab/lab-state.js';
import { cliEntry } from '../util/built-file.js';
import { UserError } from '../util/user-error.js';
import { labAlias, labOpt } from './lab-command.js';

/**
 * `weft connectivity test`: is this cluster's pod networking healthy, end to end? Pods of its
 * own on two nodes, every path (pod↔pod on one node and across, pod↔node, pod→outside, a
 * full-MTU packet with DF, policy deny then allow), a table of checks with timings, and the exit
 * status. In a lab today; against a Kubernetes cluster later.
 */
const out = (s: string): void => {
  process.stdout.write(s + '\n');
};

function parseTimeout(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 100 || n > 60_000) throw new UserError(`--timeout ${v}: expected milliseconds, 100-60000`);
  return n;
}

export function registerConnectivityCommands(program: Command): void {
  const connectivity = program.command('connectivity').description('end-to-end checks of pod networking (a lab today; Kubernetes clusters to come)');
  connectivity
    .command('test')
    .description('make a namespace with pods on two nodes, check every path and policy, print a table, remove what it made')
    .option(...labOpt)
    .addOption(labAlias())
    .option('--timeout <ms>', 'how long each probe waits for an answer (a check that must be blocked takes this long)', '1500')
    .option('--json', 'machine-readable output: every check with its result, time and reason')
    .addHelpText(
      'after',
      [
        '',
        'Runs against a lab (weft lab up); running it against a Kubernetes cluster is to come.',
        'Makes namespace weft-connectivity-<random> with a client and an echo pod on the first node and an',
        'echo pod on the second, then checks: pod to pod on one node and across nodes (IPv4 and IPv6; TCP,',
        'UDP, ICMP; the echo pod must see the client\'s own address), a full-MTU ping with DF across nodes,',
        'pod to node and node to pod, pod to the outside (the answer must come from the node\'s address:',
        'masquerade), a default-deny ingress NetworkPolicy (probes blocked once every node enforces it),',
        'then an allow for the client\'s label and TCP port (TCP allowed again, UDP still blocked).',
        'With one node, the cross-node checks are skipped. Everything it made is removed, also on Ctrl-C.',
        'Exit status: 0 every check passed (or was skipped), 1 some failed (named), 2 bad arguments.',
      ].join('\n'),
    )
    .action(async (o: { lab?: string; timeout: string; json?: boolean }) => {
      const timeoutMs = parseTimeout(o.timeout);
      const lab = resolveLabName(o.lab);
      loadLab(lab); // no such lab: said before any table starts
      // Ctrl-C: no new check starts, what the run made is still removed; a second one says so.
      const abort = new AbortController();
      const onSigint = (): void => {
        if (!abort.signal.aborted) process.stderr.write('weft: interrupted: removing what the test made\n');
        else process.stderr.write('weft: still removing what the test made\n');
        abort.abort();
      };
      process.on('SIGINT', onSigint);
      process.on('SIGTERM', onSigint);
      const width = Math.max(...reportNames().map((n) => n.length));
      if (!o.json) out(`weft connectivity test: lab ${lab}\n${tableHeader(width)}`);
      try {
        const report = await runConnectivityTest(lab, {
          timeoutMs,
          cliEntry: cliEntry(),
          signal: abort.signal,
          ...(o.json ? {} : { onResult: (r: CheckResult) => out(tableRow(r, width)) }),
        });
        if (o.json) out(JSON.stringify(report, null, 2));
        else out(`${summaryLine(report.summary, report.durationMs)}${report.interrupted ? ' (interrupted: the checks not run are skipped)' : ''}`);
        if (report.summary.failed > 0) process.stderr.write(`weft: connectivity test failed: ${report.summary.failedChecks.join(', ')}\n`);
        process.exitCode = report.interrupted ? 130 : report.summary.exitCode;
      } finally {
        process.off('SIGINT', onSigint);
        process.off('SIGTERM', onSigint);
      }
    });
}
