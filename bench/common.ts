import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { parseConfList, type NetworkConfigList } from '../src/cniruntime/conflist.js';
import type { Sandbox } from '../src/lab/sandbox.js';

/** What every benchmark shares: flags, order statistics, reference networks. */
export function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
}

/** The p-th percentile (nearest rank). */
export function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}

export const median = (xs: number[]): number => pct(xs, 50);

/** A one-plugin reference network (Debian's plugins), its conflist kept in the sandbox's dir. */
export async function referenceList(sb: Sandbox, name: string, plugin: Record<string, unknown>): Promise<NetworkConfigList> {
  const file = join(sb.dir, `${name}.conflist`);
  await fs.writeFile(file, JSON.stringify({ cniVersion: '1.0.0', name, plugins: [plugin] }));
  return parseConfList(await fs.readFile(file));
}

/** host-local IPAM over the given subnets, one range set each, with default routes. */
export function hostLocal(sb: Sandbox, subnets: string[]): Record<string, unknown> {
  return {
    type: 'host-local',
    dataDir: join(sb.dir, 'host-local'),
    ranges: subnets.map((subnet) => [{ subnet }]),
    routes: subnets.map((s) => ({ dst: s.includes(':') ? '::/0' : '0.0.0.0/0' })),
  };
}
