/**
 * The agent's NFLOG reader (native/weft-nflog.c): one child process bound to the flow groups of
 * the agent's netns, whose stdout lines are the packets Weft's rules log. It dies with the agent
 * (its stdin closes; PR_SET_PDEATHSIG); one that exits is reported, and the caller decides when
 * to start another.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { findBuiltFile } from '../util/built-file.js';

export class NflogError extends Error {
  constructor(
    readonly groups: readonly number[],
    message: string,
  ) {
    super(`NFLOG reader for groups ${groups.join(', ')}: ${message}`);
    this.name = 'NflogError';
  }
}

/** dist/weft-nflog; undefined if not built. */
export function findNflogReader(): string | undefined {
  return findBuiltFile('weft-nflog');
}

export interface NflogReaderEvents {
  /** One packet line ("pkt …"), or "lost" when the kernel dropped messages. */
  line(line: string): void;
  /** The reader exited (not called after close()). */
  exit(error: NflogError): void;
}

/** How long binding the groups may take before the reader counts as failed. */
const READY_TIMEOUT_MS = 5000;

export class NflogReader {
  private readonly child: ChildProcessWithoutNullStreams;
  private closed = false;
  private err = '';
  /** Resolves once every group is bound; rejects with why not. */
  readonly ready: Promise<void>;

  constructor(
    binary: string,
    readonly groups: readonly number[],
    events: NflogReaderEvents,
  ) {
    this.child = spawn(binary, groups.map(String), { stdio: ['pipe', 'pipe', 'pipe'] });
    let buffered = '';
    let onReady: (() => void) | undefined;
    let onFail: ((e: NflogError) => void) | undefined;
    this.ready = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onFail = reject;
    });
    const timer = setTimeout(() => {
      onFail?.(new NflogError(groups, `not ready within ${READY_TIMEOUT_MS} ms`));
      this.child.kill('SIGKILL');
    }, READY_TIMEOUT_MS);
    this.child.stdout.setEncoding('latin1');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (d: string) => {
      buffered += d;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line === 'ready') {
          clearTimeout(timer);
          onReady?.();
        } else events.line(line);
      }
    });
    this.child.stderr.on('data', (d: string) => {
      this.err = (this.err + d).slice(-2000);
    });
    this.child.stdin.on('error', () => undefined);
    let done = false;
    const gone = (why: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const e = new NflogError(groups, `${why}${this.err.trim() ? `: ${this.err.trim()}` : ''}`);
      onFail?.(e);
      if (!this.closed) events.exit(e);
    };
    this.child.on('error', (e) => gone(`could not run ${binary}: ${e.message}`));
    this.child.on('close', (code, signal) => gone(`exited (${signal ?? code ?? '?'})`));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Ends the reader: its stdin closes, and it is killed by its PID if it lingers. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('close', () => r()));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 1000);
    await exited;
    clearTimeout(timer);
  }
}
