/**
 * A pcap file (Ethernet link type, as tcpdump writes it for one interface) read into the IP
 * headers an eavesdropper on the wire sees: addresses, protocol and UDP ports of each packet.
 */
import { readFileSync } from 'node:fs';

export interface WirePacket {
  family: 4 | 6;
  /** IPv4 dotted; IPv6 as ipaddr.js's toNormalizedString(). */
  src: string;
  dst: string;
  /** IP protocol number (17 UDP, 6 TCP, 1 ICMP, 58 ICMPv6, …). */
  protocol: number;
  srcPort?: number;
  dstPort?: number;
  /** The ICMPv6 type, where it is ICMPv6. */
  icmp6Type?: number;
}

/** An IPv6 address in ipaddr.js's normalized form (8 groups, no zero padding, no "::"). */
function v6(b: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(at + i).toString(16));
  return groups.join(':');
}

/** The file's raw bytes and its IP packets (others, such as ARP, are counted apart). */
export function readPcap(path: string): { raw: Buffer; packets: WirePacket[]; nonIp: number } {
  const raw = readFileSync(path);
  if (raw.length < 24) return { raw, packets: [], nonIp: 0 };
  const le = raw.readUInt32LE(0) === 0xa1b2c3d4 || raw.readUInt32LE(0) === 0xa1b23c4d;
  const u32 = (at: number): number => (le ? raw.readUInt32LE(at) : raw.readUInt32BE(at));
  if (u32(20) !== 1) throw new Error(`${path}: link type ${u32(20)}, expected Ethernet (1)`);
  const packets: WirePacket[] = [];
  let nonIp = 0;
  for (let at = 24; at + 16 <= raw.length; ) {
    const caplen = u32(at + 8);
    const f = raw.subarray(at + 16, at + 16 + caplen);
    at += 16 + caplen;
    let off = 12;
    let type = f.readUInt16BE(off);
    while (type === 0x8100 || type === 0x88a8) {
      off += 4;
      type = f.readUInt16BE(off);
    }
    const ip = f.subarray(off + 2);
    if (type === 0x0800) {
      const ihl = ((ip[0] ?? 0) & 0x0f) * 4;
      const p: WirePacket = { family: 4, src: [...ip.subarray(12, 16)].join('.'), dst: [...ip.subarray(16, 20)].join('.'), protocol: ip[9] ?? 0 };
      if (p.protocol === 17 || p.protocol === 6) Object.assign(p, { srcPort: ip.readUInt16BE(ihl), dstPort: ip.readUInt16BE(ihl + 2) });
      packets.push(p);
    } else if (type === 0x86dd) {
      const p: WirePacket = { family: 6, src: v6(ip, 8), dst: v6(ip, 24), protocol: ip[6] ?? 0 };
      if (p.protocol === 17 || p.protocol === 6) Object.assign(p, { srcPort: ip.readUInt16BE(40), dstPort: ip.readUInt16BE(42) });
      if (p.protocol === 58) p.icmp6Type = ip[40] ?? 0;
      packets.push(p);
    } else nonIp++;
  }
  return { raw, packets, nonIp };
}
