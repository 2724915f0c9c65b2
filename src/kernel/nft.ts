/**
 * nftables: whole scripts applied as one atomic transaction, and `nft -j` for reading. Each Weft
 * component owns its own table. Scripts go through an NftRunner: an `nft -f -` process each
 * (`nftProcessRunner`), or the agent's libnftables helper (`nft-helper.ts`), one contract
 * (`nft-runner.contract.ts`).
 */
import { CommandError, run } from './exec.js';

export class NftError extends Error {
  readonly code = 'ERR_NFT';
  constructor(
    message: string,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'NftError';
  }
}

export interface NftRunner {
  readonly name: string;
  /** One atomic transaction; NftError with nft's own message when the kernel or nft refuses it. */
  apply(script: string): Promise<void>;
  /** Ends whatever the runner keeps (a helper process); using it afterwards starts anew. */
  close(): Promise<void>;
}

export const nftProcessRunner: NftRunner = { name: 'nft', apply: nftApply, close: async () => undefined };

export async function nftApply(script: string): Promise<void> {
  try {
    await run('nft', ['-f', '-'], { input: script, timeoutMs: 15_000 });
  } catch (err) {
    if (err instanceof CommandError) throw new NftError(`nft -f failed: ${err.stderr.trim()}`, err.stderr, { cause: err });
    throw err;
  }
}

/**
 * An `nft` listing, in this netns or inside `netns` (a path the caller controls: a lab node's
 * /run/netns/NAME, for `weft doctor`).
 */
function nftRead(args: string[], netns: string | undefined, allowFailure: boolean): ReturnType<typeof run> {
  return netns === undefined ? run('nft', args, { allowFailure, timeoutMs: 10_000 }) : run('nsenter', [`--net=${netns}`, '--', 'nft', ...args], { allowFailure, timeoutMs: 10_000 });
}

/** `nft -j list table FAMILY NAME`, or undefined when the table does not exist. */
export async function nftListTable(family: string, name: string, netns?: string): Promise<unknown[] | undefined> {
  const r = await nftRead(['-j', 'list', 'table', family, name], netns, true);
  if (r.exitCode !== 0) {
    if (/No such file or directory|does not exist/.test(r.stderr)) return undefined;
    throw new NftError(`nft -j list table ${family} ${name} failed: ${r.stderr.trim()}`, r.stderr);
  }
  const parsed = JSON.parse(r.stdout) as { nftables?: unknown[] };
  return parsed.nftables ?? [];
}

/** Every table in this netns, as family and name. */
export async function nftListTables(netns?: string): Promise<Array<{ family: string; name: string }>> {
  const r = await nftRead(['-j', 'list', 'tables'], netns, false);
  const items = (JSON.parse(r.stdout) as { nftables?: Array<{ table?: { family?: unknown; name?: unknown } }> }).nftables ?? [];
  return items.flatMap((i) => (typeof i.table?.family === 'string' && typeof i.table.name === 'string' ? [{ family: i.table.family, name: i.table.name }] : []));
}

export async function nftDeleteTable(family: string, name: string): Promise<void> {
  const r = await run('nft', ['delete', 'table', family, name], { allowFailure: true, timeoutMs: 10_000 });
  if (r.exitCode !== 0 && !/No such file or directory/.test(r.stderr)) {
    throw new NftError(`nft delete table ${family} ${name} failed: ${r.stderr.trim()}`, r.stderr);
  }
}

/** `nft -j list set|chain FAMILY TABLE NAME` as JSON, or undefined when it does not exist. */
async function nftListObject(what: 'set' | 'chain', family: string, table: string, name: string, netns?: string): Promise<unknown[] | undefined> {
  const r = await nftRead(['-j', 'list', what, family, table, name], netns, true);
  if (r.exitCode !== 0) {
    if (/No such file or directory|does not exist/.test(r.stderr)) return undefined;
    throw new NftError(`nft -j list ${what} ${family} ${table} ${name} failed: ${r.stderr.trim()}`, r.stderr);
  }
  return (JSON.parse(r.stdout) as { nftables?: unknown[] }).nftables ?? [];
}

/** A set and its elements as `nft -j` lists them, or undefined when it does not exist. */
export const nftListSet = (family: string, table: string, set: string, netns?: string): Promise<unknown[] | undefined> => nftListObject('set', family, table, set, netns);

/** A chain's rules as `nft -j` lists them, or undefined when it does not exist. */
export const nftListChain = (family: string, table: string, chain: string, netns?: string): Promise<unknown[] | undefined> => nftListObject('chain', family, table, chain, netns);

