import { UserError } from '../util/user-error.js';

/**
 * The reachability grid `weft lab matrix` and `weft policy matrix` print: pods numbered in a
 * legend, one grid per case, rows are sources and columns destinations.
 */
export function legendLines(pods: string[]): string[] {
  return ['pods:', ...pods.map((p, i) => `  ${String(i + 1).padStart(2)} ${p}`)];
}

export function gridLines(pods: string[], title: string, cell: (from: string, to: string) => string): string[] {
  return [
    '',
    title,
    `     ${pods.map((_, i) => String(i + 1).padStart(3)).join('')}`,
    ...pods.map((from, i) => `  ${String(i + 1).padStart(2)} ${pods.map((to) => cell(from, to).padStart(3)).join('')}`),
  ];
}

/** "1,2" / "both" → address families. */
export function parseFamilies(v: string): Array<4 | 6> {
  if (v === '4') return [4];
  if (v === '6') return [6];
  if (v === 'both' || v === 'all') return [4, 6];
  throw new UserError(`--family ${v}: expected 4, 6 or both`);
}

/** "80,443" → port numbers. */
export function parsePorts(v: string, flag = '--ports'): number[] {
  return v.split(',').map((p) => {
    const n = Number(p);
    if (!/^\d+$/.test(p) || n < 1 || n > 65535) throw new UserError(`${flag} ${v}: expected port numbers 1-65535, comma-separated`);
    return n;
  });
}
