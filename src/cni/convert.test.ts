import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { convertResult, parseResult } from './convert.js';
import { CniError } from './errors.js';
import type { Result } from './result.js';
import { SUPPORTED_VERSIONS } from './version.js';

const hex = fc.integer({ min: 0, max: 255 }).map((n) => n.toString(16).padStart(2, '0'));
const mac = fc.array(hex, { minLength: 6, maxLength: 6 }).map((b) => b.join(':'));
const v4 = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const v6 = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));
const cidr4 = fc.tuple(v4, fc.integer({ min: 8, max: 32 })).map(([a, p]) => `${a}/${p}`);
const cidr6 = fc.tuple(v6, fc.integer({ min: 16, max: 128 })).map(([a, p]) => `${a}/${p}`);

/** Results in the internal (1.1.0) shape, with indices that point into interfaces. */
const resultArb: fc.Arbitrary<Result> = fc
  .record({
    interfaces: fc.array(
      fc.record(
        { name: fc.stringMatching(/^[a-z][a-z0-9]{0,14}$/), mac, mtu: fc.integer({ min: 576, max: 9000 }), sandbox: fc.constantFrom('/run/netns/a', '/proc/1/ns/net') },
        { requiredKeys: ['name'] },
      ).map((o) => ({ ...o })),
      { maxLength: 3 },
    ),
    ips: fc.array(fc.record({ address: fc.oneof(cidr4, cidr6), gateway: fc.oneof(v4, v6), idx: fc.nat(5) }, { requiredKeys: ['address', 'idx'] }).map((o) => ({ ...o })), { maxLength: 4 }),
    routes: fc.array(
      fc.record({ dst: fc.oneof(cidr4, cidr6), gw: fc.oneof(v4, v6), mtu: fc.integer({ min: 576, max: 9000 }), priority: fc.nat(1000), table: fc.nat(255), scope: fc.constantFrom(0, 253, 254) }, { requiredKeys: ['dst'] }).map((o) => ({ ...o })),
      { maxLength: 3 },
    ),
    dns: fc.record({ nameservers: fc.array(v4, { maxLength: 2 }), domain: fc.constantFrom('cluster.local', 'example.org'), search: fc.array(fc.constantFrom('a.svc', 'b.svc'), { maxLength: 2 }) }, { requiredKeys: [] }).map((o) => ({ ...o })),
  })
  .map(({ interfaces, ips, routes, dns }) => {
    const r: Result = { cniVersion: '1.1.0' };
    if (interfaces.length) r.interfaces = interfaces;
    if (ips.length) {
      r.ips = ips.map(({ idx, ...ip }) => (interfaces.length ? { ...ip, interface: idx % interfaces.length } : ip));
    }
    if (routes.length) r.routes = routes;
    if (Object.values(dns).some((v) => (Array.isArray(v) ? v.length > 0 : v))) {
      r.dns = Object.fromEntries(Object.entries(dns).filter(([, v]) => (Array.isArray(v) ? v.length > 0 : v)));
    }
    return r;
  });

const family = (v: string): number => (v.startsWith('1.') ? 2 : v === '0.1.0' || v === '0.2.0' ? 0 : 1);
const isV6 = (cidr: string): boolean => cidr.includes(':');
const fitsLegacy = (r: Result): boolean => {
  const ips = r.ips ?? [];
  return ips.length > 0 && ips.filter((i) => isV6(i.address)).length <= 1 && ips.filter((i) => !isV6(i.address)).length <= 1;
};

describe('convertResult', () => {
  it('prints every version with cniVersion set to it', () => {
    fc.assert(
      fc.property(resultArb, fc.constantFrom(...SUPPORTED_VERSIONS), (r, v) => {
        if (family(v) === 0 && !fitsLegacy(r)) return;
        assert.equal(convertResult(r, v)['cniVersion'], v);
      }),
    );
  });

  it('1.1.0 keeps everything: parse(convert(r)) === r', () => {
    fc.assert(fc.property(resultArb, (r) => assert.deepEqual(parseResult(convertResult(r, '1.1.0'), '1.1.0'), r)));
  });

  it('1.0.0 drops only the 1.1-only fields', () => {
    fc.assert(
      fc.property(resultArb, (r) => {
        const out = parseResult(convertResult(r, '1.0.0'), '1.0.0');
        assert.deepEqual(out.ips, r.ips);
        assert.deepEqual(out.interfaces, r.interfaces?.map(({ name, mac: m, sandbox }) => ({ name, ...(m ? { mac: m } : {}), ...(sandbox ? { sandbox } : {}) })));
        assert.deepEqual(out.routes, r.routes?.map(({ dst, gw }) => ({ dst, ...(gw ? { gw } : {}) })));
        assert.deepEqual(out.dns, r.dns);
      }),
    );
  });

  it('0.3.x/0.4.0 add "version" matching each address family', () => {
    fc.assert(
      fc.property(resultArb, fc.constantFrom('0.3.0', '0.3.1', '0.4.0'), (r, v) => {
        const out = convertResult(r, v);
        for (const ip of (out['ips'] as Array<Record<string, unknown>> | undefined) ?? []) {
          assert.equal(ip['version'], isV6(ip['address'] as string) ? '6' : '4');
        }
        assert.ok(!(out['interfaces'] as Array<Record<string, unknown>> | undefined)?.some((i) => 'mtu' in i));
      }),
    );
  });

  it('0.1.0/0.2.0 use ip4/ip6 with routes of their family, or fail with code 1', () => {
    fc.assert(
      fc.property(resultArb, fc.constantFrom('0.1.0', '0.2.0'), (r, v) => {
        if (!fitsLegacy(r)) {
          assert.throws(() => convertResult(r, v), (e: unknown) => e instanceof CniError && e.code === 1);
          return;
        }
        const out = convertResult(r, v);
        const ip4 = r.ips?.find((i) => !isV6(i.address));
        const ip6 = r.ips?.find((i) => isV6(i.address));
        assert.equal((out['ip4'] as { ip?: string } | undefined)?.ip, ip4?.address);
        assert.equal((out['ip6'] as { ip?: string } | undefined)?.ip, ip6?.address);
        assert.equal('interfaces' in out, false);
        const v4routes = (r.routes ?? []).filter((x) => !isV6(x.dst)).length;
        if (ip4) assert.equal(((out['ip4'] as { routes?: unknown[] }).routes ?? []).length, v4routes);
      }),
    );
  });

  it('every version pair: going through `from` then to `to` loses only what `from` cannot hold', () => {
    const versions = SUPPORTED_VERSIONS;
    fc.assert(
      fc.property(resultArb, fc.constantFrom(...versions), fc.constantFrom(...versions), (r, from, to) => {
        const legacy = family(from) === 0 || family(to) === 0;
        if (legacy && !fitsLegacy(r)) return;
        const viaFrom = convertResult(parseResult(convertResult(r, from), from), to);
        // What `from` can hold, projected: converting the projection directly must agree.
        const projected = parseResult(convertResult(r, from), from);
        assert.deepEqual(viaFrom, convertResult(projected, to));
        // And when `from` holds at least what `to` does, nothing is lost at all.
        const richer = family(from) > family(to) || from === to || (from === '1.1.0' && to === '1.0.0');
        if (richer) assert.deepEqual(viaFrom, convertResult(r, to));
      }),
    );
  });
});

describe('parseResult', () => {
  it('refuses an IP index that points past the interfaces', () => {
    assert.throws(
      () => parseResult({ cniVersion: '1.0.0', interfaces: [{ name: 'a' }], ips: [{ address: '10.0.0.1/32', interface: 1 }] }, '1.0.0'),
      (e: unknown) => e instanceof CniError && e.code === 6,
    );
  });

  it('reads the captured reference bridge result (0.4.0 with "version" keys)', () => {
    const r = parseResult(
      { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.91.7.10/24', gateway: '10.91.7.1' }], routes: [{ dst: '0.0.0.0/0' }], dns: {} },
      '0.4.0',
    );
    assert.deepEqual(r, { cniVersion: '0.4.0', ips: [{ address: '10.91.7.10/24', gateway: '10.91.7.1' }], routes: [{ dst: '0.0.0.0/0' }] });
  });

  it('reads a 0.2.0 result into ips and routes', () => {
    const r = parseResult({ cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24', gateway: '10.0.0.1', routes: [{ dst: '0.0.0.0/0' }] }, ip6: { ip: 'fd00::2/64' } }, '0.2.0');
    assert.deepEqual(r.ips, [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }, { address: 'fd00::2/64' }]);
    assert.deepEqual(r.routes, [{ dst: '0.0.0.0/0' }]);
  });
});
