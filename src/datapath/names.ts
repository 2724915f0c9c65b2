import { createHash } from 'node:crypto';

/**
 * Names and MACs derived from the attachment key (containerId, ifName), so DEL and GC find the
 * same objects again after a crash without any stored state.
 */
export const HOST_IF_PREFIX = 'weft';

function digest(containerId: string, ifName: string, salt: string): Buffer {
  return createHash('sha256').update(`${salt}\u0000${containerId}\u0000${ifName}`).digest();
}

/** "weft" + 11 hex digits = 15 bytes, the kernel's limit. */
export function hostIfName(containerId: string, ifName: string): string {
  return HOST_IF_PREFIX + digest(containerId, ifName, 'if').toString('hex').slice(0, 11);
}

export function isHostIfName(name: string): boolean {
  return /^weft[0-9a-f]{11}$/.test(name);
}

/** A locally administered unicast MAC (02-bit set, multicast bit clear). */
export function derivedMac(containerId: string, ifName: string, side: 'host' | 'pod'): string {
  const d = digest(containerId, ifName, `mac-${side}`);
  const bytes = [((d[0] as number) & 0xfc) | 0x02, ...d.subarray(1, 6)];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Why `mac` cannot be a pod interface's MAC, or undefined when it can. */
export function macRefusal(mac: string): string | undefined {
  if (!MAC.test(mac)) return `"${mac}" is not a MAC address (expected six hex pairs, e.g. 02:42:ac:11:00:02)`;
  const first = parseInt(mac.slice(0, 2), 16);
  if (first & 1) return `"${mac}" is a multicast MAC address; a unicast one is needed`;
  if (/^(00:){5}00$/.test(mac)) return `"${mac}" is the zero MAC address`;
  return undefined;
}
