/**
 * A long-lived helper process of the agent (the rtnetlink and nftables helpers): requests on its
 * stdin, one answer line each on its stdout, its stderr kept for the error when it fails. One
 * that does not answer in time is killed by its PID and never used again.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

/** One helper process: one request at a time, each answered by one line. */
export class HelperProcess {
  readonly child: ChildProcessWithoutNullStreams;
  private out = '';
  private err = '';
  private pending: ((line: string | Error) => void) | undefined;
  alive = true;

  constructor(
    binary: string,
    private readonly onExit: (p: HelperProcess) => void,
    /** The error for a helper that failed (`what`), with what it wrote to stderr. */
    private readonly failure: (what: string, stderr: string) => Error,
  ) {
    const child = spawn(binary, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      this.out += d;
      for (let nl = this.out.indexOf('\n'); nl >= 0; nl = this.out.indexOf('\n')) {
        const line = this.out.slice(0, nl);
        this.out = this.out.slice(nl + 1);
        this.pending?.(line);
      }
    });
    child.stderr.on('data', (d: string) => {
      this.err = (this.err + d).slice(-2000);
    });
    // A write to a helper that just died must not take the agent down; 'close' reports it.
    child.stdin.on('error', () => undefined);
    const gone = (why: string): void => {
      this.alive = false;
      this.onExit(this);
      this.pending?.(this.broken(why));
    };
    child.on('error', (e) => gone(`could not run: ${e.message}`));
    // 'close', not 'exit': an answer written just before exiting is read first.
    child.on('close', (code, signal) => gone(`exited (${signal ?? code ?? '?'})`));
  }

  /** Never used again (it answered out of protocol): killed by its PID. */
  abandon(): void {
    this.alive = false;
    this.child.kill('SIGKILL');
    this.onExit(this);
  }

  /** Sends one request and waits for its answer line. */
  exchange(request: string | Buffer, timeoutMs: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        this.alive = false;
        this.child.kill('SIGKILL');
        this.onExit(this);
        reject(this.broken(`did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending = (line) => {
        clearTimeout(timer);
        this.pending = undefined;
        if (line instanceof Error) reject(line);
        else resolve(line);
      };
      this.child.stdin.write(request);
    });
  }

  broken(what: string): Error {
    return this.failure(what, this.err.trim());
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const done = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end(); // EOF: it exits by itself
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await done;
    clearTimeout(timer);
  }
}
