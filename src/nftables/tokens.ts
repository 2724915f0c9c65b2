import { isIP } from 'node:net';

/**
 * Values as nftables text (pure). Everything Weft writes into an nft script that comes from data
 * — an address, a port, an interface name, a set name built from a policy, a comment quoting a
 * policy's name — passes through one of these, which either returns a token that cannot end or
 * change a statement, or throws NftTokenError naming the value. The ruleset renderer checks every
 * statement once more before anything reaches `nft -f` (ruleset.ts: assertStatement).
 */
export class NftTokenError extends Error {
  readonly code = 'ERR_NFT_TOKEN';
  constructor(
    readonly what: string,
    readonly value: unknown,
    why: string,
  ) {
    super(`${what} ${JSON.stringify(value)} cannot be written into an nftables script: ${why}`);
    this.name = 'NftTokenError';
  }
}

/** Table, chain, set and map names: nft's identifier syntax, no quoting needed. */
const IDENT = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

export function nftIdent(name: string, what = 'name'): string {
  if (typeof name !== 'string' || !IDENT.test(name)) throw new NftTokenError(what, name, 'expected a letter or "_", then letters, digits, "_" or "-" (at most 64)');
  return name;
}

/** A kernel interface name, quoted (an `ifname` key). */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

export function nftIfname(name: string): string {
  if (typeof name !== 'string' || !IFNAME.test(name)) throw new NftTokenError('interface name', name, 'expected 1-15 of letters, digits, "_", "." and "-"');
  return `"${name}"`;
}

/**
 * node:net's isIP also takes IPv6 zone ids ("fd00::1%eth0"): not an address nft or Weft takes.
 * Addresses found valid are remembered: every policy sync writes the same few thousand again,
 * and node's IPv6 check is a long regular expression.
 */
const validAddresses = new Set<string>();
const isAddress = (a: string): boolean => {
  if (validAddresses.has(a)) return true;
  if (isIP(a) === 0 || a.includes('%')) return false;
  if (validAddresses.size >= 200_000) validAddresses.clear();
  validAddresses.add(a);
  return true;
};

/** An IPv4 or IPv6 address. */
export function nftAddr(a: string): string {
  if (typeof a !== 'string' || !isAddress(a)) throw new NftTokenError('address', a, 'not an IPv4 or IPv6 address');
  return a;
}

/** ADDRESS/PREFIX. */
export function nftCidr(c: string): string {
  const m = typeof c === 'string' ? /^([^/]+)\/(\d{1,3})$/.exec(c) : null;
  const family = m && isAddress(m[1] as string) ? isIP(m[1] as string) : 0;
  if (!m || family === 0 || Number(m[2]) > (family === 4 ? 32 : 128)) throw new NftTokenError('CIDR', c, 'expected ADDRESS/PREFIX');
  return c;
}

/** A port number, or an interval LO-HI. */
export function nftPort(lo: number, hi = lo): string {
  for (const n of [lo, hi]) if (!Number.isInteger(n) || n < 0 || n > 65535) throw new NftTokenError('port', n, 'expected an integer 0-65535');
  if (hi < lo) throw new NftTokenError('port range', `${lo}-${hi}`, 'the end is below the start');
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

/** A 32-bit number in hex (marks). */
export function nftHex32(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new NftTokenError('32-bit value', n, 'expected an integer 0-0xffffffff');
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/**
 * `comment "…"`. nft strings have no escapes and end at a quote; comments are at most 128 bytes.
 * Anything but printable ASCII without quotes and backslashes becomes "?", so any text — a
 * policy's name, a rule's name with a NUL in it — makes a valid comment.
 */
/** A log statement's prefix: Weft's own words, which must fit the kernel's 127 bytes whole. */
export function nftLogPrefix(text: string): string {
  if (!/^[A-Za-z0-9 _.:/-]{1,127}$/.test(text)) throw new NftTokenError('log prefix', text, 'expected 1-127 letters, digits, spaces and _.:/-');
  return `prefix "${text}"`;
}

export function nftComment(text: string): string {
  const clean = String(text).replace(/[^\x20-\x7e]|["\\]/g, (c) => (c === '"' ? "'" : '?'));
  return `comment "${clean.length <= 120 ? clean : `${clean.slice(0, 117)}...`}"`;
}
