import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseWgDump, wgSetArgs } from '../kernel/wireguard.js';
import type { Peer } from './peer.js';
import { endpointOf, peerChanges, PERSISTENT_KEEPALIVE, wireguardDesired, type WgPeerConfig } from './wireguard.js';
import { generateKeyPair, loadOrCreateKeyPair, publicKeyOf, storeNewKeyPair, WIREGUARD_KEY, WIREGUARD_KEY_FILE } from './wireguard-key.js';

const b64 = (hex: string): string => Buffer.from(hex, 'hex').toString('base64');

describe('WireGuard keys (pure apart from the key file)', () => {
  it('derives the public key of RFC 7748 §6.1 (X25519), and of fresh pairs', () => {
    const alice = b64('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    assert.equal(publicKeyOf(alice), b64('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a'));
    for (let i = 0; i < 20; i++) {
      const p = generateKeyPair();
      assert.match(p.privateKey, WIREGUARD_KEY);
      assert.match(p.publicKey, WIREGUARD_KEY);
      assert.equal(publicKeyOf(p.privateKey), p.publicKey);
    }
    assert.throws(() => publicKeyOf('not a key'), /not a WireGuard key/);
  });

  it('the key file: made 0600 on first use, the same key after, replaced when unusable or rotated', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-wgkey-'));
    try {
      const state = join(dir, 'state');
      const first = loadOrCreateKeyPair(state);
      assert.equal(first.created, true);
      const file = join(state, WIREGUARD_KEY_FILE);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(readFileSync(file, 'utf8').trim(), first.privateKey);
      const again = loadOrCreateKeyPair(state);
      assert.deepEqual([again.created, again.publicKey], [false, first.publicKey]);
      const rotated = storeNewKeyPair(state);
      assert.notEqual(rotated.publicKey, first.publicKey);
      assert.equal(loadOrCreateKeyPair(state).publicKey, rotated.publicKey);
      writeFileSync(file, 'garbage\n');
      const fresh = loadOrCreateKeyPair(state);
      assert.deepEqual([fresh.created, fresh.replaced], [true, true]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const key = (n: number): string => Buffer.alloc(32, n).toString('base64');
const peer = (name: string, n: number | undefined, blocks: string[], ip = `198.18.0.${n ?? 99}`): Peer => ({
  name,
  ips: [ip],
  blocks,
  vxlanMac: undefined,
  backend: 'vxlan',
  ...(n !== undefined ? { wireguard: { publicKey: key(n), endpoint: `${ip}:51820` } } : {}),
});

describe('WireGuard peers (pure)', () => {
  it('every node with a key is a peer, its blocks its allowed IPs and routes', () => {
    const { state, problems } = wireguardDesired([peer('b', 2, ['fd00:1::/64', '10.244.1.0/24']), peer('c', 3, ['10.244.2.0/24'])], key(1));
    assert.deepEqual(problems, []);
    assert.deepEqual(state.peers, [
      { name: 'b', publicKey: key(2), endpoint: '198.18.0.2:51820', allowedIps: ['10.244.1.0/24', 'fd00:1::/64'] },
      { name: 'c', publicKey: key(3), endpoint: '198.18.0.3:51820', allowedIps: ['10.244.2.0/24'] },
    ]);
    assert.deepEqual(state.routes, ['fd00:1::/64', '10.244.1.0/24', '10.244.2.0/24']);
  });

  it('no key, this node\'s own key, or one key for two nodes: not a peer, and said why', () => {
    const { state, problems } = wireguardDesired([peer('nokey', undefined, ['10.244.1.0/24']), peer('me-too', 1, ['10.244.2.0/24']), peer('x', 5, ['10.244.3.0/24']), peer('y', 5, ['10.244.4.0/24']), peer('ok', 6, ['10.244.5.0/24'])], key(1));
    assert.deepEqual(state.peers.map((p) => p.name), ['ok']);
    assert.deepEqual(state.routes, ['10.244.5.0/24'], 'no route into the device for a node that is not a peer: the unreachable catch-all stops its traffic');
    assert.equal(problems.length, 4);
    assert.match(problems[0] ?? '', /node nokey publishes no WireGuard key.*never sent unencrypted/);
    assert.match(problems[1] ?? '', /node me-too publishes this node's own WireGuard public key/);
    assert.match(problems[2] ?? '', /nodes x and y publish the same WireGuard public key/);
  });

  it('one key on two nodes: the node whose Node is oldest keeps it; without creation times, neither', () => {
    const older = { ...peer('victim', 5, ['10.244.3.0/24']), createdAt: '2026-11-01T00:00:00Z' };
    const copier = { ...peer('copier', 5, ['10.244.4.0/24']), createdAt: '2026-11-29T00:00:00Z' };
    const r = wireguardDesired([copier, older], key(1));
    assert.deepEqual(r.state.peers.map((p) => p.name), ['victim']);
    assert.match(r.problems[0] ?? '', /node copier is left out until it has its own \(node victim, whose Node is oldest, keeps it\)/);
    const tie = wireguardDesired([{ ...copier, createdAt: older.createdAt }, older], key(1));
    assert.deepEqual(tie.state.peers, []);
  });

  it('changes: new and changed peers set whole, gone ones removed, unchanged ones untouched', () => {
    const want: WgPeerConfig[] = [
      { name: 'b', publicKey: key(2), endpoint: '198.18.0.2:51820', allowedIps: ['10.244.1.0/24'] },
      { name: 'c', publicKey: key(3), endpoint: '198.18.0.3:51820', allowedIps: ['10.244.2.0/24', 'fd00:2::/64'] },
      { name: 'd', publicKey: key(4), endpoint: '198.18.0.4:51820', allowedIps: ['10.244.3.0/24'] },
    ];
    const seen = (n: number, allowedIps: string[], keepalive: number | 'off' = PERSISTENT_KEEPALIVE) => ({ publicKey: key(n), endpoint: `198.18.0.${n}:51820`, allowedIps, latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: keepalive === 'off' ? undefined : keepalive });
    const changes = peerChanges(want, [seen(2, ['10.244.1.0/24']), seen(3, ['fd00:2::/64', '10.244.2.0/24']), seen(4, ['10.244.3.0/24'], 'off'), seen(9, ['10.244.9.0/24'])]);
    assert.deepEqual(changes, [
      { publicKey: key(4), endpoint: '198.18.0.4:51820', allowedIps: ['10.244.3.0/24'], persistentKeepalive: PERSISTENT_KEEPALIVE },
      { publicKey: key(9), remove: true },
    ]);
    assert.deepEqual(wgSetArgs('weft.wg', changes), ['set', 'weft.wg', 'peer', key(4), 'endpoint', '198.18.0.4:51820', 'persistent-keepalive', '25', 'allowed-ips', '10.244.3.0/24', 'peer', key(9), 'remove']);
    assert.deepEqual(peerChanges(want, want.map((w) => ({ ...seen(0, w.allowedIps), publicKey: w.publicKey, endpoint: w.endpoint }))), []);
  });

  it('property: applying the changes to what the device has gives exactly the wanted peers', () => {
    const peerArb = fc.record({ n: fc.integer({ min: 1, max: 12 }), blocks: fc.uniqueArray(fc.integer({ min: 0, max: 9 }).map((i) => `10.244.${i}.0/24`), { maxLength: 3 }), ka: fc.boolean() });
    fc.assert(
      fc.property(fc.uniqueArray(peerArb, { selector: (p) => p.n, maxLength: 6 }), fc.uniqueArray(peerArb, { selector: (p) => p.n, maxLength: 6 }), (wantRaw, haveRaw) => {
        const want = wantRaw.map((p) => ({ name: `n${p.n}`, publicKey: key(p.n), endpoint: `198.18.0.${p.n}:51820`, allowedIps: [...p.blocks].sort() }));
        const have = haveRaw.map((p) => ({ publicKey: key(p.n), endpoint: `198.18.0.${p.n}:51820`, allowedIps: p.blocks, latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: p.ka ? PERSISTENT_KEEPALIVE : undefined }));
        const device = new Map(have.map((p) => [p.publicKey, `${p.endpoint} ${[...p.allowedIps].sort().join(',')} ${p.persistentKeepalive}`]));
        for (const c of peerChanges(want, have)) {
          if ('remove' in c) device.delete(c.publicKey);
          else device.set(c.publicKey, `${c.endpoint} ${c.allowedIps.join(',')} ${c.persistentKeepalive}`);
        }
        assert.deepEqual([...device].sort(), want.map((w) => [w.publicKey, `${w.endpoint} ${w.allowedIps.join(',')} ${PERSISTENT_KEEPALIVE}`]).sort());
      }),
    );
  });

  it('wg show dump: peers read, the private key not kept', () => {
    const dump = [`${key(7)}\t${key(1)}\t51820\toff`, `${key(2)}\t(none)\t198.18.0.2:51820\t10.244.1.0/24,fd00:1::/64\t1764460000\t1200\t3400\t25`, `${key(3)}\t(none)\t(none)\t(none)\t0\t0\t0\toff`, ''].join('\n');
    const d = parseWgDump(dump);
    assert.equal(JSON.stringify(d).includes(key(7)), false, 'the private key is dropped');
    assert.deepEqual(d, {
      publicKey: key(1),
      listenPort: 51820,
      peers: [
        { publicKey: key(2), endpoint: '198.18.0.2:51820', allowedIps: ['10.244.1.0/24', 'fd00:1::/64'], latestHandshake: 1764460000, rxBytes: 1200, txBytes: 3400, persistentKeepalive: 25 },
        { publicKey: key(3), endpoint: undefined, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: undefined },
      ],
    });
  });

  it('endpoints: IPv6 bracketed', () => {
    assert.equal(endpointOf('198.18.0.1', 51820), '198.18.0.1:51820');
    assert.equal(endpointOf('fd00::1', 51821), '[fd00::1]:51821');
  });
});
