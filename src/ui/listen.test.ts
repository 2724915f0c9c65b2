import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UserError } from '../util/user-error.js';
import { hostAllowed, isLoopback, listenUrl, parseListen } from './listen.js';

/** `weft ui --listen`: what is taken, what is refused and why, and the Host check. */
describe('weft ui --listen', () => {
  it('takes loopback addresses of both families and localhost, port 0 too', () => {
    assert.deepEqual(parseListen('127.0.0.1:8484'), { host: '127.0.0.1', port: 8484, loopback: true });
    assert.deepEqual(parseListen('[::1]:9000'), { host: '::1', port: 9000, loopback: true });
    assert.deepEqual(parseListen('localhost:0'), { host: 'localhost', port: 0, loopback: true });
    assert.deepEqual(parseListen('127.1.2.3:1'), { host: '127.1.2.3', port: 1, loopback: true });
  });

  it('refuses an address that is not loopback unless --allow-remote, saying why', () => {
    for (const a of ['0.0.0.0:8484', '192.168.1.10:8484', '[::]:8484', '[fd00::1]:80']) {
      assert.throws(() => parseListen(a), (e: unknown) => e instanceof UserError && /not a loopback address, and the UI has no authentication/.test(e.message) && /--allow-remote/.test(e.message), a);
      assert.equal(parseListen(a, true).loopback, false);
    }
  });

  it('refuses what is no ADDRESS:PORT, naming what is accepted', () => {
    for (const a of ['8484', '127.0.0.1', '127.0.0.1:65536', '::1:8484', '[127.0.0.1]:80', 'example.com:80', '127.0.0.1:80x', '', '[::1]:', '300.1.1.1:80']) {
      assert.throws(() => parseListen(a), UserError, a);
    }
    assert.throws(() => parseListen('8484'), /expected ADDRESS:PORT, e\.g\. 127\.0\.0\.1:8484/);
  });

  it('knows loopback', () => {
    assert.equal(isLoopback('127.0.0.1'), true);
    assert.equal(isLoopback('0:0:0:0:0:0:0:1'), true);
    assert.equal(isLoopback('128.0.0.1'), false);
    assert.equal(isLoopback('::'), false);
  });

  it('makes the URL to open', () => {
    assert.equal(listenUrl('127.0.0.1', 8484), 'http://127.0.0.1:8484/');
    assert.equal(listenUrl('::1', 8484), 'http://[::1]:8484/');
    assert.equal(listenUrl('0.0.0.0', 80), 'http://127.0.0.1:80/');
  });

  it('answers only requests whose Host names the server (no DNS rebinding)', () => {
    const bound = { host: '127.0.0.1', port: 8484 };
    assert.equal(hostAllowed('127.0.0.1:8484', bound), true);
    assert.equal(hostAllowed('localhost:8484', bound), true);
    assert.equal(hostAllowed('LOCALHOST:8484', bound), true);
    assert.equal(hostAllowed('[::1]:8484', { host: '::1', port: 8484 }), true);
    assert.equal(hostAllowed('evil.example:8484', bound), false);
    assert.equal(hostAllowed('127.0.0.1:80', bound), false);
    assert.equal(hostAllowed(undefined, bound), false);
  });
});
