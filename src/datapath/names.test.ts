import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { derivedMac, hostIfName, isHostIfName, macRefusal } from './names.js';

describe('names', () => {
  it('derives a stable 15-byte host name per (container, interface)', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,63}$/), fc.constantFrom('eth0', 'eth1', 'net1'), (id, ifn) => {
        const n = hostIfName(id, ifn);
        assert.equal(n, hostIfName(id, ifn));
        assert.equal(n.length, 15);
        assert.ok(isHostIfName(n));
      }),
    );
    assert.notEqual(hostIfName('a', 'eth0'), hostIfName('a', 'eth1'));
    assert.notEqual(hostIfName('ab', 'c'), hostIfName('a', 'bc'));
  });

  it('derives locally administered unicast MACs that pass its own check', () => {
    fc.assert(
      fc.property(fc.string(), fc.constantFrom('host', 'pod') as fc.Arbitrary<'host' | 'pod'>, (id, side) => {
        const m = derivedMac(id, 'eth0', side);
        assert.equal(macRefusal(m), undefined);
        assert.equal(parseInt(m.slice(0, 2), 16) & 0x03, 0x02);
      }),
    );
  });

  it('refuses malformed, multicast and zero MACs', () => {
    assert.match(macRefusal('02:00:00:00:00') ?? '', /not a MAC/);
    assert.match(macRefusal('01:00:5e:00:00:01') ?? '', /multicast/);
    assert.match(macRefusal('00:00:00:00:00:00') ?? '', /zero/);
    assert.equal(macRefusal('C2:11:22:33:44:55'), undefined);
  });
});
