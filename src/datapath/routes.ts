/** Weft's own routes in this netns, found by their protocol number, as the backends read them. */
import { ipc, ipJsonBatch, ip } from '../kernel/ip.js';

/** Routes Weft installs are marked with their own protocol number, so it only ever touches its own. */
export const ROUTE_PROTO = 77;

export interface ObservedRoute {
  dst: string;
  gateway: string | undefined;
  dev: string | undefined;
  /** unicast, or e.g. unreachable (ip omits the type of a unicast route). */
  type: string;
}

/** Weft's routes of both families, as the kernel has them. */
export async function weftRoutes(): Promise<ObservedRoute[]> {
  const [v4] = await ipJsonBatch([ipc`route show proto ${ROUTE_PROTO}`]);
  const v6 = JSON.parse(await ip(['-6', '-json', 'route', 'show', 'proto', String(ROUTE_PROTO)])) as unknown[];
  return [...(v4 as unknown[]), ...v6].map((r) => {
    const o = r as { dst: string; gateway?: string; dev?: string; type?: string };
    return { dst: o.dst, gateway: o.gateway, dev: o.dev, type: o.type ?? 'unicast' };
  });
}
