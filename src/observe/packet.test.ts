import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodePacket } from './packet.js';
import { ipv4, ipv6, port, tcp } from '../../test/helpers/packets.js';

const v6 = (last: number): number[] => [0xfd, 0, 0, 0x10, 0x2, 0x44, 0, 1, 0, 0, 0, 0, 0, 0, 0, last];

describe('decodePacket', () => {
  it('reads an IPv4 TCP SYN: addresses, ports, flags', () => {
    const h = decodePacket(ipv4([10, 244, 0, 2], [10, 244, 1, 2], 6, tcp(40000, 80, 0x02)));
    assert.deepEqual(h, { family: 4, src: '10.244.0.2', dst: '10.244.1.2', protocol: 'TCP', protocolNumber: 6, srcPort: 40000, dstPort: 80, tcpFlags: 'S' });
  });

  it('reads an IPv6 UDP packet, addresses in canonical form', () => {
    const h = decodePacket(ipv6(v6(2), v6(3), 17, [...port(5353), ...port(53), 0, 8, 0, 0]));
    assert.equal(h?.src, 'fd00:10:244:1::2');
    assert.equal(h?.dst, 'fd00:10:244:1::3');
    assert.equal(h?.protocol, 'UDP');
    assert.equal(h?.dstPort, 53);
  });

  it('steps over an IPv6 hop-by-hop header to the ports', () => {
    const hop = [17, 0, 0, 0, 0, 0, 0, 0];
    const h = decodePacket(ipv6(v6(2), v6(3), 0, [...hop, ...port(1), ...port(2), 0, 8, 0, 0]));
    assert.equal(h?.protocol, 'UDP');
    assert.equal(h?.dstPort, 2);
  });

  it('gives a later fragment no ports', () => {
    const h = decodePacket(ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, tcp(1, 2, 2), { fragOffset: 185 }));
    assert.equal(h?.srcPort, undefined);
    assert.equal(h?.protocol, 'TCP');
  });

  it('reads the packet an ICMP "fragmentation needed" quotes, and the MTU it names', () => {
    const inner = ipv4([10, 244, 0, 2], [10, 244, 1, 2], 6, tcp(40000, 80, 0x10));
    const icmp = [3, 4, 0, 0, 0, 0, 0x05, 0x78, ...inner.subarray(0, 28)];
    const h = decodePacket(ipv4([198, 18, 0, 11], [10, 244, 0, 2], 1, icmp));
    assert.deepEqual(h?.icmp, { type: 3, code: 4 });
    assert.equal(h?.mtu, 1400);
    assert.equal(h?.inner?.src, '10.244.0.2');
    assert.equal(h?.inner?.dstPort, 80);
  });

  it('reads an ICMPv6 "packet too big" and its MTU', () => {
    const inner = ipv6(v6(2), v6(3), 6, tcp(1, 443, 0x10));
    const h = decodePacket(ipv6(v6(1), v6(2), 58, [2, 0, 0, 0, 0, 0, 0x05, 0x50, ...inner.subarray(0, 60)]));
    assert.equal(h?.mtu, 1360);
    assert.equal(h?.inner?.dstPort, 443);
  });

  it('never throws, whatever the bytes (the kernel copies what it is told; a bug must not kill the agent)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        decodePacket(b);
      }),
      { numRuns: 2000 },
    );
  });
});
