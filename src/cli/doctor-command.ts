/**
 * `weft doctor [--socket PATH] [--json]` checks this node (its agent through its socket, and the
 * kernel of the netns doctor runs in); `weft doctor --lab NAME` checks every node of a lab. Each
 * failure says what is wrong, why it matters and the command that fixes it; exit 0 only when
 * every check passes.
 */
import type { Command } from 'commander';
import { DEFAULT_SOCKET } from '../agent/api.js';
import { exitStatus, judgeCluster, judgeNode, type ClusterFacts, type Finding, type NodeTarget } from '../doctor/judge.js';
import { labFacts, labTargets, observeNode } from '../doctor/observe.js';
import { DEFAULT_BIN_DIR, DEFAULT_CONF_DIR } from '../install/install.js';
import { resolveLabName } from '../lab/lab-state.js';
import { hostname } from 'node:os';
import { labAlias } from './lab-command.js';

const MARK: Record<Finding['result'], string> = { pass: 'ok', fail: 'FAIL', skip: '-' };

/** The findings as a table: one line per check and node, and under each failure its what/why/fix. */
export function formatFindings(findings: Finding[]): string {
  const w = { check: Math.max(5, ...findings.map((f) => f.check.length)), node: Math.max(4, ...findings.map((f) => f.node.length)) };
  const lines = [`${'CHECK'.padEnd(w.check)}  ${'NODE'.padEnd(w.node)}  RESULT  DETAIL`];
  for (const f of findings) {
    lines.push(`${f.check.padEnd(w.check)}  ${f.node.padEnd(w.node)}  ${MARK[f.result].padEnd(6)}  ${f.note}`);
    for (const p of f.problems) {
      lines.push(`    what: ${p.what}`, `    why:  ${p.why}`, `    fix:  ${p.fix}`);
    }
  }
  const failed = findings.filter((f) => f.result === 'fail');
  const nodes = [...new Set(findings.map((f) => f.node))].length;
  lines.push('', failed.length ? `${failed.length} check${failed.length > 1 ? 's' : ''} failed on ${[...new Set(failed.map((f) => f.node))].join(', ')}` : `every check passed on ${nodes} node${nodes > 1 ? 's' : ''}`);
  return lines.join('\n') + '\n';
}

export async function runDoctor(targets: NodeTarget[], facts: ClusterFacts): Promise<Finding[]> {
  const observed = await Promise.all(targets.map((t) => observeNode(t)));
  // This machine is named as its cluster knows it, where it is a member.
  for (const o of observed) if (!o.target.lab && o.health?.cluster) o.target = { ...o.target, node: o.health.cluster.node };
  return [...observed.flatMap((o) => judgeNode(o, facts)), ...judgeCluster(observed)];
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description("check a node (or every node of a lab): agent, datastore, forwarding, routes, VXLAN/WireGuard peers, nft tables, MTU, leaks, CNI config, clocks; exit 0 only when all pass")
    .option('--socket <path>', "this node's agent socket", DEFAULT_SOCKET)
    .option('--cni-conf-dir <dir>', 'where the runtime looks for the conflist', DEFAULT_CONF_DIR)
    .option('--cni-bin-dir <dir>', 'where the runtime looks for the plugin', DEFAULT_BIN_DIR)
    .option('--lab <name>', 'check every node of this lab instead (also --name)')
    .addOption(labAlias())
    .option('--json', 'one JSON document: {ok, findings}')
    .action(async (o: { socket: string; cniConfDir: string; cniBinDir: string; lab?: string; json?: boolean }) => {
      let targets: NodeTarget[];
      let facts: ClusterFacts = {};
      if (o.lab !== undefined) {
        const lab = resolveLabName(o.lab);
        targets = labTargets(lab);
        facts = await labFacts(lab);
      } else {
        targets = [{ node: hostname(), socket: o.socket, confDir: o.cniConfDir, binDir: o.cniBinDir }];
      }
      const findings = await runDoctor(targets, facts);
      const status = exitStatus(findings);
      if (o.json) process.stdout.write(JSON.stringify({ ok: status === 0, findings }, null, 2) + '\n');
      else process.stdout.write(formatFindings(findings));
      process.exitCode = status;
    });
}
