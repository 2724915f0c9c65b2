/**
 * The agent's nftables helper (native/weft-nft.c): one long-lived process that applies the
 * policy table's scripts with libnftables, so a sync costs no `nft` process — and no wait for
 * the kernel's RCU grace period that an `nft` process pays on exit after any deletion
 * (docs/benchmarks.md §1). Syncs are serial, so one process serves them; one that dies or stops
 * answering is killed by its PID and replaced for the next script.
 */
import { findBuiltFile } from '../util/built-file.js';
import { HelperProcess } from './helper-process.js';
import { NftError, type NftRunner } from './nft.js';

/** dist/weft-nft; undefined if not built. */
export function findNftHelper(): string | undefined {
  return findBuiltFile('weft-nft');
}

/** The helper's limit (native/weft-nft.c): larger scripts go to an `nft` process. */
const HELPER_MAX_BYTES = 64 * 1024 * 1024;

/**
 * The helper itself failed (did not start, died, stopped answering, answered out of protocol) —
 * not nft refusing a script, which is an NftError. The policy controller retries it with backoff.
 */
export class NftHelperError extends Error {
  readonly code = 'ERR_NFT_HELPER';
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'NftHelperError';
  }
}

export class NftHelper implements NftRunner {
  readonly name = 'nft-helper';
  private process: HelperProcess | undefined;
  /** One script at a time: requests share one pipe, and scripts apply in the order they came. */
  private queue: Promise<unknown> = Promise.resolve();
  /** After close(), scripts go to the fallback: a helper started then would outlive the agent's stop. */
  private closed = false;
  readonly stats = { scripts: 0 };

  constructor(
    private readonly binary: string,
    private readonly fallback: NftRunner,
    private readonly timeoutMs = 15_000,
  ) {}

  /** Whether the helper runs here at all (built for this machine, its library present): an empty script. */
  async works(): Promise<boolean> {
    return this.apply('').then(
      () => true,
      () => false,
    );
  }

  apply(script: string): Promise<void> {
    const bytes = Buffer.from(script, 'utf8');
    const next = this.queue.then(() => (this.closed || bytes.length > HELPER_MAX_BYTES ? this.fallback.apply(script) : this.exchange(bytes)));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async exchange(bytes: Buffer): Promise<void> {
    const p = this.current();
    const reply = await p.exchange(Buffer.concat([Buffer.from(`apply ${bytes.length}\n`), bytes]), this.timeoutMs);
    this.stats.scripts++;
    if (reply === 'ok') return;
    if (!reply.startsWith('err ')) {
      // Out of step with its answers from here on: it never serves again.
      p.abandon();
      throw p.broken(`answered ${JSON.stringify(reply.slice(0, 200))}`);
    }
    // The script reached nft as /proc/self/fd/N; name it as `nft -f -` does, so both runners say the same.
    const text = reply
      .slice(4)
      .replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'))
      .replace(/^\/proc\/self\/fd\/\d+:/gm, '/dev/stdin:');
    throw new NftError(`nft -f failed: ${text.trim()}`, text);
  }

  private current(): HelperProcess {
    if (this.process?.alive) return this.process;
    const p = new HelperProcess(
      this.binary,
      (gone) => {
        if (this.process === gone) this.process = undefined;
      },
      (what, stderr) => new NftHelperError(`the nftables helper ${this.binary} ${what}${stderr ? `: ${stderr}` : ''}`, stderr),
    );
    this.process = p;
    return p;
  }

  /** Its PID while it runs. */
  get pid(): number | undefined {
    return this.process?.child.pid;
  }

  async close(): Promise<void> {
    this.closed = true;
    const p = this.process;
    this.process = undefined;
    await p?.close();
  }
}
