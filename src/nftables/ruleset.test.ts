import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { assertStatement, diffScript, fullScript, type NftTable } from './ruleset.js';
import { nftAddr, nftCidr, nftComment, nftIdent, nftIfname, nftPort, NftTokenError } from './tokens.js';

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

/** Strings a hostile object might carry: separators, quotes, braces, newlines, NUL, other controls. */
const HOSTILE = ['80 } ; add table inet pwned ; add element x', '"', '\\"', '#', ';', '{', '}', '\n', '\r', '\u0000', '\u001b[2J', 'a\nadd table inet pwned', 'é', '\u2028', '$(reboot)', "' or 1=1", 'x'.repeat(10_000)];

describe('nft tokens and statement checks (pure, hostile values)', () => {
  it('tokens refuse what is not their kind of value, naming it', () => {
    for (const bad of HOSTILE) {
      assert.throws(() => nftAddr(bad), NftTokenError);
      assert.throws(() => nftCidr(bad), NftTokenError);
      assert.throws(() => nftIfname(bad), NftTokenError);
      assert.throws(() => nftIdent(bad), NftTokenError);
    }
    for (const bad of [99999, -1, 1.5, Number.NaN]) assert.throws(() => nftPort(bad), /port .* expected an integer 0-65535/);
    assert.throws(() => nftPort(90, 80), NftTokenError);
    assert.equal(nftAddr('fd00::1'), 'fd00::1');
    assert.equal(nftCidr('10.0.0.0/8'), '10.0.0.0/8');
    assert.throws(() => nftCidr('10.0.0.0/33'), NftTokenError);
    assert.equal(nftIfname('weft0123456789a'), '"weft0123456789a"');
  });

  it('any text becomes a comment that is one valid string (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 400 }), fc.constantFrom(...HOSTILE)), (text) => {
        const c = nftComment(text);
        assertStatement(`counter drop ${c}`, 'rule');
        assert.ok(Buffer.byteLength(c) - 'comment ""'.length <= 120);
      }),
      { numRuns: 2000 },
    );
  });

  it('no statement that could end, open or comment out another gets through (property)', () => {
    const bad = fc.oneof(fc.constantFrom(';', '#', '\n', '\r', '}', '{ ', '\u0000', '"'), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }).filter((x) => /[;#\n\r\u0000"{}]|[^\x20-\x7e]/.test(x)));
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), bad, fc.string({ maxLength: 20 }), (a, b, c) => {
        const text = `ip saddr 10.0.0.1 ${a}${b}${c} accept`;
        // Balanced braces and strings are fine; anything that can change the statement is not.
        const quotes = (text.match(/"/g) ?? []).length;
        const allowed = quotes % 2 === 0 && !/[;#\n\r\u0000]|[^\x20-\x7e]/.test(text.replace(/"[\x20\x21\x23-\x5b\x5d-\x7e]*"/g, ''));
        let ok = true;
        try {
          assertStatement(text, 'rule');
        } catch (err) {
          assert.ok(err instanceof NftTokenError);
          ok = false;
        }
        if (ok) assert.ok(allowed || /[{}]/.test(b), `accepted ${JSON.stringify(text)}`);
      }),
      { numRuns: 3000 },
    );
  });

  it('a table holding a hostile element, rule, set name or chain name is never rendered', () => {
    const evil: Array<(t: NftTable) => void> = [
      (t) => t.sets[0]?.elements.push('10.0.0.3 } ; add table inet pwned ; add element inet t s { 10.0.0.4'),
      (t) => t.sets[0]?.elements.push('10.0.0.3, 10.0.0.4'),
      (t) => t.chains[1]?.rules.push('accept comment "x\u0000"'),
      (t) => t.chains[1]?.rules.push('accept\nadd table inet pwned'),
      (t) => t.chains[1]?.rules.push('accept # the rest is gone'),
      (t) => t.sets.push({ name: 'x; add table inet pwned', kind: 'set', spec: 'type ipv4_addr;', elements: [] }),
      (t) => t.chains.push({ name: 'c\n', rules: [] }),
    ];
    for (const change of evil) {
      const t = base();
      change(t);
      assert.throws(() => fullScript(t), NftTokenError);
      assert.throws(() => diffScript(base(), t), NftTokenError);
    }
  });
});

