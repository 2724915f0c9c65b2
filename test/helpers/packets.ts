/** Packet bytes as NFLOG copies them (from the network header), for the flow decoder's tests. */
export function ipv4(src: number[], dst: number[], proto: number, l4: number[], opts: { fragOffset?: number } = {}): Uint8Array {
  const total = 20 + l4.length;
  const frag = opts.fragOffset ?? 0;
  return Uint8Array.from([0x45, 0, total >> 8, total & 255, 0, 1, (frag >> 8) & 0x1f, frag & 255, 64, proto, 0, 0, ...src, ...dst, ...l4]);
}
export function ipv6(src: number[], dst: number[], next: number, l4: number[]): Uint8Array {
  return Uint8Array.from([0x60, 0, 0, 0, l4.length >> 8, l4.length & 255, next, 64, ...src, ...dst, ...l4]);
}
export const port = (p: number): number[] => [p >> 8, p & 255];
/** A TCP header's first 14 bytes: ports, seq, ack, offset, flags. */
export const tcp = (sp: number, dp: number, flags: number): number[] => [...port(sp), ...port(dp), 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0, 0, 0, 0, 0, 0];
