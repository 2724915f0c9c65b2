/**
 * Runs `ip` batch lines that make or remove a pod's link, addresses and routes — the hot path
 * of ADD and DEL. Two implementations with one contract (`batch-runner.contract.ts`): `ip`
 * processes (`ipProcessRunner`), and the agent's rtnetlink helper (`netlink-helper.ts`), which
 * runs the same lines without a process per step. Both stop at the first failing line and
 * throw an IpError naming it, with the same reasons.
 */
import { ipBatch, type IpCommand } from './ip.js';
import type { OpenNetns } from './netns.js';

/** One or the other: a batch inside a pod's netns never names another netns. */
export interface BatchOptions {
  /** Run inside this (pod's) netns; absent: the agent's own. */
  netns?: OpenNetns;
  /** The descriptor the lines name as passedFdPath(0) (`netns /proc/self/fd/3`). */
  passed?: number;
}

export interface BatchRunner {
  readonly name: string;
  run(commands: readonly IpCommand[], opts?: BatchOptions): Promise<void>;
  /** Ends whatever the runner keeps (a helper process); using it afterwards starts anew. */
  close(): Promise<void>;
}

export const ipProcessRunner: BatchRunner = {
  name: 'ip',
  async run(commands, opts = {}) {
    if (opts.netns && opts.passed !== undefined) throw new Error('a batch runs inside a netns or names a passed netns, not both');
    await ipBatch(commands, { ...(opts.netns ? { netns: opts.netns } : {}), ...(opts.passed !== undefined ? { fds: [opts.passed] } : {}) });
  },
  close: () => Promise.resolve(),
};
