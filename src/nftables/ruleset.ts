import { nftIdent, NftTokenError } from './tokens.js';

/**
 * A desired nftables table as data, and the one transaction that takes the kernel from one
 * version of it to the next (pure). Controllers compute the whole table; only what changed
 * is written — set elements added or removed, changed chains flushed and refilled — in
 * dependency order, as one `nft -f` script, so the kernel never shows a half-made state.
 *
 * This is the one place nftables text is put together (policy and masquerade both come here).
 * Values enter through tokens.ts; every statement is checked again here before it is written
 * (assertStatement), so no value, however it got into a table, can end a statement, open a
 * block or start a comment: the script nft runs is always the one Weft meant.
 */
export interface NftSet {
  name: string;
  /** `set` or `map`. */
  kind: 'set' | 'map';
  /** The declaration's body, e.g. "type ipv4_addr; flags interval;". */
  spec: string;
  /** Rendered elements; for a map "KEY : VALUE" (the key identifies the element). */
  elements: string[];
}

export interface NftChain {
  name: string;
  /** For base chains, e.g. "type filter hook forward priority filter; policy accept;". */
  base?: string;
  rules: string[];
}

export interface NftTable {
  family: 'inet' | 'ip' | 'ip6';
  name: string;
  sets: NftSet[];
  chains: NftChain[];
}

/** Elements per `add element` command: long enough to be few, short enough to stay readable. */
const CHUNK = 500;

export function elementKey(set: Pick<NftSet, 'kind'>, element: string): string {
  if (set.kind === 'set') return element;
  const i = element.lastIndexOf(' : ');
  return i < 0 ? element : element.slice(0, i);
}

export type StatementKind = 'rule' | 'element' | 'declaration';

/** Characters allowed outside strings, per kind; strings are printable ASCII without \\ and ". */
const OUTSIDE: Record<StatementKind, string> = {
  rule: 'A-Za-z0-9 _.:/@!=<>&|,*{}-',
  // An element is one key (and value): a "," or brace would smuggle in more elements.
  element: 'A-Za-z0-9 _.:/@!=<>&|*-',
  // Declarations are Weft's own text ("type ipv4_addr; flags interval;"): ";" separates them.
  declaration: 'A-Za-z0-9 _.:/@!=<>&|,*{};-',
};
const PATTERN = Object.fromEntries(
  Object.entries(OUTSIDE).map(([k, chars]) => [k, new RegExp(`^(?:[${chars}]|"[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]*")*$`)]),
) as Record<StatementKind, RegExp>;

/**
 * Throws unless `text` is one statement's worth of nft syntax: outside strings only the
 * characters Weft's statements of that kind use — never "#", a newline, or (but in Weft's own
 * declarations) ";" — and balanced braces; inside strings printable ASCII without \\ or ".
 */
export function assertStatement(text: string, what: string, kind: StatementKind = 'rule'): void {
  if (typeof text !== 'string') throw new NftTokenError(what, text, 'not text');
  // One regular expression for the common case: tables hold tens of thousands of elements.
  if (PATTERN[kind].test(text) && balanced(text)) return;
  let quoted = false;
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if (quoted) {
      if (ch === '"') quoted = false;
      else if (c < 0x20 || c > 0x7e || ch === '\\') throw new NftTokenError(what, text, `character ${JSON.stringify(ch)} inside a string`);
    } else if (ch === '"') quoted = true;
    else if (!new RegExp(`[${OUTSIDE[kind]}]`).test(ch)) throw new NftTokenError(what, text, `character ${JSON.stringify(ch)} outside a string`);
  }
  if (quoted) throw new NftTokenError(what, text, 'an unterminated string');
  throw new NftTokenError(what, text, 'unbalanced braces');
}

function balanced(text: string): boolean {
  if (!text.includes('{') && !text.includes('}')) return true;
  let depth = 0;
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && ch === '{') depth++;
    else if (!quoted && ch === '}' && --depth < 0) return false;
  }
  return depth === 0;
}

/**
 * Statement lists already checked. Only frozen arrays are remembered — they cannot have changed
 * since — so a compiler that reuses its lists between syncs (policy: thousands of elements and
 * rules) has them checked once, and nothing unchecked can pass for checked.
 */
const checked: Record<StatementKind, WeakSet<readonly string[]>> = { rule: new WeakSet(), element: new WeakSet(), declaration: new WeakSet() };

function assertStatements(list: readonly string[], what: string, kind: StatementKind): void {
  if (checked[kind].has(list)) return;
  for (const x of list) assertStatement(x, what, kind);
  if (Object.isFrozen(list)) checked[kind].add(list);
}

/** Every name and statement of a table, checked before any of it becomes a script. */
export function assertTable(t: NftTable): void {
  if (t.family !== 'inet' && t.family !== 'ip' && t.family !== 'ip6') throw new NftTokenError('table family', t.family, 'expected inet, ip or ip6');
  nftIdent(t.name, 'table name');
  for (const s of t.sets) {
    nftIdent(s.name, 'set name');
    assertStatement(s.spec, `set ${s.name}: declaration`, 'declaration');
    assertStatements(s.elements, `set ${s.name}: element`, 'element');
  }
  for (const c of t.chains) {
    nftIdent(c.name, 'chain name');
    if (c.base !== undefined) assertStatement(c.base, `chain ${c.name}: hook`, 'declaration');
    assertStatements(c.rules, `chain ${c.name}: rule`, 'rule');
  }
}

function chunks<T>(list: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += CHUNK) out.push(list.slice(i, i + CHUNK));
  return out;
}

function addChain(t: NftTable, c: NftChain): string {
  return c.base ? `add chain ${t.family} ${t.name} ${c.name} { ${c.base} }` : `add chain ${t.family} ${t.name} ${c.name}`;
}

function elementCommands(verb: 'add' | 'delete', t: NftTable, set: NftSet, elements: string[]): string[] {
  return chunks(elements).map((c) => `${verb} element ${t.family} ${t.name} ${set.name} { ${c.join(', ')} }`);
}

/** Replaces the table wholesale (first sync, or after drift). */
export function fullScript(t: NftTable): string {
  return [`add table ${t.family} ${t.name}`, `delete table ${t.family} ${t.name}`, ...(diffScript(undefined, t) as string[])].join('\n') + '\n';
}

/**
 * The commands that turn `from` into `to`, or undefined when they cannot be expressed as
 * changes (a set's type or a base chain's hook changed): then the table is replaced.
 */
export function diffScript(from: NftTable | undefined, to: NftTable): string[] | undefined {
  assertTable(to);
  const out: string[] = [];
  if (!from) out.push(`add table ${to.family} ${to.name}`);
  const oldSets = new Map((from?.sets ?? []).map((s) => [s.name, s]));
  const oldChains = new Map((from?.chains ?? []).map((c) => [c.name, c]));
  const newSets = new Map(to.sets.map((s) => [s.name, s]));
  const newChains = new Map(to.chains.map((c) => [c.name, c]));
  for (const s of to.sets) {
    const o = oldSets.get(s.name);
    if (o && (o.spec !== s.spec || o.kind !== s.kind)) return undefined;
  }
  for (const c of to.chains) {
    const o = oldChains.get(c.name);
    if (o && o.base !== c.base) return undefined;
  }
  // 1. New chains, empty: map elements and rules below may point at them.
  for (const c of to.chains) if (!oldChains.has(c.name)) out.push(addChain(to, c));
  // 2. New sets and maps.
  for (const s of to.sets) if (!oldSets.has(s.name)) out.push(`add ${s.kind} ${to.family} ${to.name} ${s.name} { ${s.spec} }`);
  // 3. Elements: removed (and changed) first, then added — a changed map value is both.
  const adds: string[] = [];
  for (const s of to.sets) {
    const o = oldSets.get(s.name);
    if (o?.elements === s.elements) continue; // the same list: a compiler reused it
    const want = new Set(s.elements);
    const have = new Set(o?.elements ?? []);
    const gone = (o?.elements ?? []).filter((e) => !want.has(e)).map((e) => elementKey(s, e));
    if (gone.length) out.push(...elementCommands('delete', to, s, gone));
    const fresh = s.elements.filter((e) => !have.has(e));
    if (fresh.length) adds.push(...elementCommands('add', to, s, fresh));
  }
  out.push(...adds);
  // 4. Chains whose rules changed are flushed and refilled; new ones filled.
  for (const c of to.chains) {
    const o = oldChains.get(c.name);
    if (o && sameRules(o.rules, c.rules)) continue;
    if (o) out.push(`flush chain ${to.family} ${to.name} ${c.name}`);
    for (const r of c.rules) out.push(`add rule ${to.family} ${to.name} ${c.name} ${r}`);
  }
  // 5. Chains and sets no longer wanted: emptied first, since they may refer to each other.
  const goneChains = (from?.chains ?? []).filter((c) => !newChains.has(c.name));
  for (const c of goneChains) out.push(`flush chain ${to.family} ${to.name} ${c.name}`);
  for (const c of goneChains) out.push(`delete chain ${to.family} ${to.name} ${c.name}`);
  for (const s of from?.sets ?? []) if (!newSets.has(s.name)) out.push(`delete ${s.kind} ${to.family} ${to.name} ${s.name}`);
  return out;
}

function sameRules(a: string[], b: string[]): boolean {
  return a === b || (a.length === b.length && a.every((r, i) => r === b[i]));
}

/** Sizes, for logs and benchmarks. */
export function tableSize(t: NftTable): { chains: number; rules: number; sets: number; elements: number } {
  return {
    chains: t.chains.length,
    rules: t.chains.reduce((n, c) => n + c.rules.length, 0),
    sets: t.sets.length,
    elements: t.sets.reduce((n, s) => n + s.elements.length, 0),
  };
}
