import { CommandError, run } from './exec.js';

/**
 * nftables through `nft`: whole scripts applied with `nft -f -` (one atomic transaction), and
 * `nft -j` for reading. Each Weft component owns its own table.
 */
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

export async function nftApply(script: string): Promise<void> {
  try {
    await run('nft', ['-f', '-'], { input: script, timeoutMs: 15_000 });
  } catch (err) {
    if (err instanceof CommandError) throw new NftError(`nft -f failed: ${err.stderr.trim()}`, err.stderr, { cause: err });
    throw err;
  }
}

/** `nft -j list table FAMILY NAME`, or undefined when the table does not exist. */
export async function nftListTable(family: string, name: string): Promise<unknown[] | undefined> {
  const r = await run('nft', ['-j', 'list', 'table', family, name], { allowFailure: true, timeoutMs: 10_000 });
  if (r.exitCode !== 0) {
    if (/No such file or directory|does not exist/.test(r.stderr)) return undefined;
    throw new NftError(`nft -j list table ${family} ${name} failed: ${r.stderr.trim()}`, r.stderr);
  }
  const parsed = JSON.parse(r.stdout) as { nftables?: unknown[] };
  return parsed.nftables ?? [];
}

export async function nftDeleteTable(family: string, name: string): Promise<void> {
  const r = await run('nft', ['delete', 'table', family, name], { allowFailure: true, timeoutMs: 10_000 });
  if (r.exitCode !== 0 && !/No such file or directory/.test(r.stderr)) {
    throw new NftError(`nft delete table ${family} ${name} failed: ${r.stderr.trim()}`, r.stderr);
  }
}

/** `nft -j list set FAMILY TABLE SET` as JSON, or undefined when it does not exist. */
export async function nftListSet(family: string, table: string, set: string): Promise<unknown[] | undefined> {
  const r = await run('nft', ['-j', 'list', 'set', family, table, set], { allowFailure: true, timeoutMs: 10_000 });
  if (r.exitCode !== 0) {
    if (/No such file or directory|does not exist/.test(r.stderr)) return undefined;
    throw new NftError(`nft -j list set ${family} ${table} ${set} failed: ${r.stderr.trim()}`, r.stderr);
  }
  return (JSON.parse(r.stdout) as { nftables?: unknown[] }).nftables ?? [];
}

/** `nft -j list chain FAMILY TABLE CHAIN` (its rules as JSON), or undefined when it does not exist. */
export async function nftListChain(family: string, table: string, chain: string): Promise<unknown[] | undefined> {
  const r = await run('nft', ['-j', 'list', 'chain', family, table, chain], { allowFailure: true, timeoutMs: 10_000 });
  if (r.exitCode !== 0) {
    if (/No such file or directory|does not exist/.test(r.stderr)) return undefined;
    throw new NftError(`nft -j list chain ${family} ${table} ${chain} failed: ${r.stderr.trim()}`, r.stderr);
  }
  return (JSON.parse(r.stdout) as { nftables?: unknown[] }).nftables ?? [];
}

