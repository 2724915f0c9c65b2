/**
 * Everything Weft made in this network namespace, removed (`weft uninstall --all`, with the agent
 * stopped): the host side of every pod's link (its pair goes with it), the links Weft names
 * "weft.*" (the VXLAN device), its routes (marked with its own protocol) and its nftables tables
 * ("weft_*"). Found by those marks, not from the agent's records, so it works whatever the agent
 * left. Idempotent. Pods attached by Weft lose their network: it is the end of Weft on a node.
 */
import { ip, ipBatch, ipc } from '../kernel/ip.js';
import { nftDeleteTable, nftListTables } from '../kernel/nft.js';
import { isHostIfName } from './names.js';
import { observeNetns } from './observe.js';
import { ROUTE_PROTO, weftRoutes } from './routes.js';

/** Whether a link or table name is one Weft makes. */
export const isWeftLink = (name: string): boolean => isHostIfName(name) || name.startsWith('weft.');
export const isWeftTable = (name: string): boolean => name.startsWith('weft_');

/** Removes it all; returns what it removed, one line each ("link weft.vxlan", …). */
export async function removeWeftState(): Promise<string[]> {
  const removed: string[] = [];
  // Links first: a pod must never be left connected without its policy table.
  for (const l of (await observeNetns()).links) {
    if (!isWeftLink(l.name)) continue;
    await ip(['link', 'del', 'dev', l.name]).catch(() => undefined);
    removed.push(`link ${l.name}`);
  }
  // Routes through those links went with them; host-gw's (via the uplink) are left.
  const routes = await weftRoutes();
  if (routes.length > 0) await ipBatch(routes.map((r) => ipc`route del ${r.dst} proto ${ROUTE_PROTO}`), { force: true }).catch(() => undefined);
  removed.push(...routes.map((r) => `route ${r.dst}`));
  for (const t of await nftListTables()) {
    if (!isWeftTable(t.name)) continue;
    await nftDeleteTable(t.family, t.name);
    removed.push(`nft table ${t.family} ${t.name}`);
  }
  const left = [
    ...(await nftListTables()).filter((t) => isWeftTable(t.name)).map((t) => `nft table ${t.family} ${t.name}`),
    ...(await weftRoutes()).map((r) => `route ${r.dst}`),
    ...(await observeNetns()).links.filter((l) => isWeftLink(l.name)).map((l) => `link ${l.name}`),
  ];
  if (left.length > 0) throw new Error(`could not remove ${left.join(', ')}`);
  return removed;
}
