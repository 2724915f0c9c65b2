import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CniError, ErrorCode } from '../cni/errors.js';
import { parseConfList, parseLegacyConf, type NetworkConfigList } from './conflist.js';

/**
 * Finds a network in a conf dir as runtimes do: files in lexical order, .conflist first, then
 * legacy .conf/.json; by name, or the first one (containerd's CRI uses only the first).
 */
export async function loadNetwork(confDir: string, name?: string): Promise<NetworkConfigList> {
  let names: string[];
  try {
    names = (await fs.readdir(confDir)).sort();
  } catch (err) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `cannot read CNI conf dir ${confDir}: ${(err as Error).message}`);
  }
  const lists = names.filter((n) => n.endsWith('.conflist'));
  const singles = names.filter((n) => n.endsWith('.conf') || n.endsWith('.json'));
  for (const n of lists) {
    const list = parseConfList(await fs.readFile(join(confDir, n)));
    if (name === undefined || list.name === name) return list;
  }
  for (const n of singles) {
    const list = parseLegacyConf(await fs.readFile(join(confDir, n)));
    if (name === undefined || list.name === name) return list;
  }
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    name === undefined ? `no network configuration in ${confDir}` : `no network named "${name}" in ${confDir}`,
    'expected *.conflist (or *.conf) files; `weft install` writes one',
  );
}
