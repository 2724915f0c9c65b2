/**
 * The behaviour every NftRunner must have, on the real kernel. `exerciseNftRunner` runs in a
 * process inside a throwaway netns (a runner acts on its own netns) and reports what the kernel
 * then holds and how failures were reported; `assertNftRunnerContract` checks one report, and the
 * test compares the two runners' reports for equality (test/nft-runner.test.ts).
 */
import assert from 'node:assert/strict';
import { NftError, nftListTable, type NftRunner } from './nft.js';

const T = 'inet weft_contract';

export interface NftRunnerReport {
  runner: string;
  /** The table after each step, as `nft -j` lists it (handles dropped). */
  states: Record<string, unknown[] | 'no table'>;
  /** Each refused script: an NftError, and whether its message names nft's own complaint. */
  errors: Record<string, { nftError: boolean; says: string }>;
  /** The refusals' messages as given: the same words whichever runner applied the script. */
  messages: string[];
  /** Elements in the large set after a script far above a pipe's buffer. */
  largeElements: number;
}

async function table(): Promise<unknown[] | 'no table'> {
  const t = await nftListTable('inet', 'weft_contract');
  if (!t) return 'no table';
  // Handles and the metainfo line differ between runs; everything else must be equal.
  return t.filter((o) => !('metainfo' in (o as object))).map((o) => JSON.parse(JSON.stringify(o, (k, v: unknown) => (k === 'handle' ? undefined : v))) as unknown);
}

async function refusal(runner: NftRunner, script: string, says: RegExp, messages: string[]): Promise<{ nftError: boolean; says: string }> {
  try {
    await runner.apply(script);
    return { nftError: false, says: 'applied' };
  } catch (err) {
    messages.push((err as Error).message);
    return { nftError: err instanceof NftError, says: says.test((err as Error).message) ? 'as expected' : (err as Error).message };
  }
}

/** Runs the scenarios with `runner`, in this process's netns (a throwaway one). */
export async function exerciseNftRunner(runner: NftRunner): Promise<NftRunnerReport> {
  const states: NftRunnerReport['states'] = {};
  try {
    await runner.apply('');
    await runner.apply(
      [
        `table ${T} {`,
        '  set peers4 { type ipv4_addr; flags interval; }',
        '  set big { type ipv4_addr; }',
        '  chain input { type filter hook input priority 0; policy accept; ip saddr @peers4 counter accept comment "peers"; }',
        '  chain p_one { ip daddr 10.0.0.1 tcp dport 80 accept; }',
        '}',
        `add element ${T} peers4 { 10.1.0.0/16, 10.2.0.0/16 }`,
        '',
      ].join('\n'),
    );
    states['made'] = await table();
    await runner.apply(`delete element ${T} peers4 { 10.1.0.0/16 }\nflush chain ${T} p_one\ndelete chain ${T} p_one\nadd chain ${T} p_two\nadd rule ${T} p_two ip daddr 10.0.0.2 drop comment "two"\n`);
    states['changed'] = await table();
    const messages: string[] = [];
    const errors: NftRunnerReport['errors'] = {
      // The first command is fine, the second names a set that does not exist: nothing happens,
      // and the message quotes the line at fault.
      'a missing set, second command': await refusal(runner, `add element ${T} peers4 { 10.9.0.0/16 }\nadd element ${T} nosuchset { 10.0.0.9 }\n`, /:2:\d+-\d+: Error: No such file or directory\nadd element inet weft_contract nosuchset/, messages),
      'a syntax error': await refusal(runner, `add rule ${T} p_two ip daddr nonsense-here\n`, /Error/, messages),
      'a duplicate element': await refusal(runner, `create element ${T} peers4 { 10.2.0.0/16 }\n`, /File exists|exists/, messages),
    };
    states['after refusals'] = await table();
    // ~2 MiB of script, far above a pipe's 64 KiB buffer.
    const elements = Array.from({ length: 60_000 }, (_, i) => `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`);
    const chunks: string[] = [];
    for (let i = 0; i < elements.length; i += 1000) chunks.push(`add element ${T} big { ${elements.slice(i, i + 1000).join(', ')} }`);
    await runner.apply(chunks.join('\n') + '\n');
    const listed = (await nftListTable('inet', 'weft_contract')) ?? [];
    const big = listed.find((o) => (o as { set?: { name?: string } }).set?.name === 'big') as { set: { elem?: unknown[] } } | undefined;
    const largeElements = big?.set.elem?.length ?? 0;
    await runner.apply(`flush set ${T} big\n`);
    // Scripts sent at once are each applied whole, one after another.
    await Promise.all(Array.from({ length: 5 }, (_, i) => runner.apply(`add chain ${T} c${i}\nadd rule ${T} c${i} counter accept\n`)));
    // Their order is the order they arrived in, which concurrency leaves open.
    const five = await table();
    states['five at once'] = five === 'no table' ? five : five.map((o) => JSON.stringify(o)).sort().map((j) => JSON.parse(j) as unknown);
    await runner.apply(`delete table ${T}\n`);
    states['deleted'] = await table();
    return { runner: runner.name, states, errors, messages, largeElements };
  } finally {
    await runner.close();
  }
}

/** What every runner's report must say, whatever the implementation. */
export function assertNftRunnerContract(r: NftRunnerReport): void {
  const names = (s: unknown[] | 'no table' | undefined, kind: 'chain' | 'set' | 'rule'): string[] =>
    s === 'no table' || !s
      ? []
      : s
          .map((o) => (o as Record<string, { name?: string; chain?: string; comment?: string }>)[kind])
          .filter((x) => x !== undefined)
          .map((x) => (kind === 'rule' ? `${x?.chain}:${x?.comment ?? ''}` : (x?.name ?? '')))
          .sort();
  assert.deepEqual(names(r.states['made'], 'chain'), ['input', 'p_one'], r.runner);
  assert.deepEqual(names(r.states['made'], 'set'), ['big', 'peers4'], r.runner);
  assert.deepEqual(names(r.states['changed'], 'chain'), ['input', 'p_two'], `${r.runner}: a chain deleted and one made in one script`);
  assert.ok(names(r.states['changed'], 'rule').includes('p_two:two'), r.runner);
  assert.deepEqual(r.errors, {
    'a missing set, second command': { nftError: true, says: 'as expected' },
    'a syntax error': { nftError: true, says: 'as expected' },
    'a duplicate element': { nftError: true, says: 'as expected' },
  }, r.runner);
  assert.deepEqual(r.states['after refusals'], r.states['changed'], `${r.runner}: a refused script changes nothing, not even its first command`);
  assert.equal(r.largeElements, 60_000, `${r.runner}: a 2 MiB script applied whole`);
  assert.deepEqual(names(r.states['five at once'], 'chain'), ['c0', 'c1', 'c2', 'c3', 'c4', 'input', 'p_two'], r.runner);
  assert.equal(r.states['deleted'], 'no table', r.runner);
}
