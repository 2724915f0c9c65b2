/**
 * The headers of a packet as NFLOG copies it, from its network header on (pure): addresses,
 * protocol, ports, TCP flags, ICMP type and code, and for an ICMP error the packet it is about —
 * the kernel's refusal of a pod's packet names that packet only inside its error.
 */
import { canonicalAddress } from '../ipam/cidr.js';

export type L4 = 'TCP' | 'UDP' | 'SCTP' | 'ICMP' | 'ICMPv6' | 'other';

export interface PacketHeaders {
  family: 4 | 6;
  src: string;
  dst: string;
  protocol: L4;
  /** The IP protocol number (next header). */
  protocolNumber: number;
  srcPort?: number;
  dstPort?: number;
  /** TCP flags as letters: S(YN) A(CK) F(IN) R(ST) P(SH). */
  tcpFlags?: string;
  icmp?: { type: number; code: number };
  /** The next-hop MTU of "fragmentation needed" (ICMP 3/4) or "packet too big" (ICMPv6 2). */
  mtu?: number;
  /** An ICMP error's quoted packet (what it refuses). */
  inner?: PacketHeaders;
}

const PROTO: Record<number, L4> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP', 1: 'ICMP', 58: 'ICMPv6' };
/** IPv6 extension headers the decoder steps over (hop-by-hop, routing, destination options). */
const IPV6_EXT = new Set([0, 43, 60]);

function v4(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function v6(b: Uint8Array, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((b[at + i] as number) << 8) | (b[at + i + 1] as number)).toString(16));
  return canonicalAddress(groups.join(':'));
}

const u16 = (b: Uint8Array, at: number): number => ((b[at] as number) << 8) | (b[at + 1] as number);

function flagsOf(byte: number): string {
  return [
    [0x02, 'S'],
    [0x10, 'A'],
    [0x01, 'F'],
    [0x04, 'R'],
    [0x08, 'P'],
  ]
    .filter(([bit]) => byte & (bit as number))
    .map(([, l]) => l)
    .join('');
}

/** Decodes `b` from its IP header; undefined when it is not a whole IPv4 or IPv6 header. */
export function decodePacket(b: Uint8Array, depth = 0): PacketHeaders | undefined {
  if (b.length < 1) return undefined;
  const version = (b[0] as number) >> 4;
  let family: 4 | 6;
  let src: string;
  let dst: string;
  let proto: number;
  let l4: number;
  if (version === 4) {
    const ihl = ((b[0] as number) & 15) * 4;
    if (ihl < 20 || b.length < ihl) return undefined;
    family = 4;
    src = v4(b, 12);
    dst = v4(b, 16);
    proto = b[9] as number;
    l4 = ihl;
    // A fragment other than the first has no ports.
    if ((u16(b, 6) & 0x1fff) !== 0) return { family, src, dst, protocol: PROTO[proto] ?? 'other', protocolNumber: proto };
  } else if (version === 6) {
    if (b.length < 40) return undefined;
    family = 6;
    src = v6(b, 8);
    dst = v6(b, 24);
    proto = b[6] as number;
    l4 = 40;
    while (IPV6_EXT.has(proto) && b.length >= l4 + 8) {
      proto = b[l4] as number;
      l4 += ((b[l4 + 1] as number) + 1) * 8;
    }
  } else return undefined;
  const out: PacketHeaders = { family, src, dst, protocol: PROTO[proto] ?? 'other', protocolNumber: proto };
  if ((proto === 6 || proto === 17 || proto === 132) && b.length >= l4 + 4) {
    out.srcPort = u16(b, l4);
    out.dstPort = u16(b, l4 + 2);
    if (proto === 6 && b.length >= l4 + 14) out.tcpFlags = flagsOf(b[l4 + 13] as number);
  }
  if ((proto === 1 || proto === 58) && b.length >= l4 + 2) {
    const type = b[l4] as number;
    out.icmp = { type, code: b[l4 + 1] as number };
    if (proto === 1 && type === 3 && out.icmp.code === 4 && b.length >= l4 + 8) out.mtu = u16(b, l4 + 6);
    if (proto === 58 && type === 2 && b.length >= l4 + 8) out.mtu = u16(b, l4 + 4) * 65536 + u16(b, l4 + 6);
    const isError = proto === 1 ? type === 3 || type === 11 || type === 12 : type < 128;
    if (isError && depth === 0 && b.length > l4 + 8) {
      const inner = decodePacket(b.subarray(l4 + 8), 1);
      if (inner) out.inner = inner;
    }
  }
  return out;
}
