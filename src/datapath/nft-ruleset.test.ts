import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffScript, fullScript, nftComment, type NftTable } from './nft-ruleset.js';

const base = (): NftTable => ({
  family: 'inet',
  name: 't',
  sets: [
    { name: 's', kind: 'set', spec: 'type ipv4_addr;', elements: ['10.0.0.1', '10.0.0.2'] },
    { name: 'm', kind: 'map', spec: 'type ipv4_addr : verdict;', elements: ['10.0.0.1 : goto a', '10.0.0.2 : accept'] },
  ],
  chains: [
    { name: 'in', base: 'type filter hook input priority 0; policy accept;', rules: ['ip saddr vmap @m'] },
    { name: 'a', rules: ['ip saddr @s accept', 'drop'] },
  ],
});

describe('nft ruleset transactions (pure)', () => {
  it('a full script makes chains before the maps that name them, and rules last', () => {
    const lines = fullScript(base()).trim().split('\n');
    assert.deepEqual(lines.slice(0, 3), ['add table inet t', 'delete table inet t', 'add table inet t']);
    const at = (prefix: string): number => lines.findIndex((l) => l.startsWith(prefix));
    assert.ok(at('add chain inet t a') < at('add map inet t m'));
    assert.ok(at('add map inet t m') < at('add element inet t m'));
    assert.ok(at('add element inet t m') < at('add rule'));
  });

  it('no change, no commands', () => {
    assert.deepEqual(diffScript(base(), base()), []);
  });

  it('elements: added and removed; a changed map value is removed by key, then added', () => {
    const to = base();
    (to.sets[0] as { elements: string[] }).elements = ['10.0.0.2', '10.0.0.3'];
    (to.sets[1] as { elements: string[] }).elements = ['10.0.0.1 : accept', '10.0.0.2 : accept'];
    assert.deepEqual(diffScript(base(), to), [
      'delete element inet t s { 10.0.0.1 }',
      'delete element inet t m { 10.0.0.1 }',
      'add element inet t s { 10.0.0.3 }',
      'add element inet t m { 10.0.0.1 : accept }',
    ]);
  });

  it('a changed chain is flushed and refilled; a new chain exists before a map points at it; an unused one goes last', () => {
    const to = base();
    to.chains[1] = { name: 'b', rules: ['accept'] };
    (to.sets[1] as { elements: string[] }).elements = ['10.0.0.1 : goto b', '10.0.0.2 : accept'];
    to.chains[0] = { ...(to.chains[0] as NftTable['chains'][number]), rules: ['ip saddr vmap @m', 'counter'] };
    assert.deepEqual(diffScript(base(), to), [
      'add chain inet t b',
      'delete element inet t m { 10.0.0.1 }',
      'add element inet t m { 10.0.0.1 : goto b }',
      'flush chain inet t in',
      'add rule inet t in ip saddr vmap @m',
      'add rule inet t in counter',
      'add rule inet t b accept',
      'flush chain inet t a',
      'delete chain inet t a',
    ]);
  });

  it('what cannot change in place asks for a full replace', () => {
    const to = base();
    (to.sets[0] as { spec: string }).spec = 'type ipv6_addr;';
    assert.equal(diffScript(base(), to), undefined);
  });

  it('comments lose quotes and stay within nft’s limit', () => {
    assert.equal(nftComment('a "b"'), `comment "a 'b'"`);
    assert.ok(nftComment('x'.repeat(300)).length - 'comment ""'.length <= 120);
  });
});
