import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { httpPost, parseHttpResponse } from './agent-client.js';

describe('agent client (HTTP/1.1 over a unix socket)', () => {
  it('parses status and body, honouring Content-Length', () => {
    const r = parseHttpResponse(Buffer.from('HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}junk'));
    assert.deepEqual(r, { status: 409, body: '{"a":1}' });
    assert.throws(() => parseHttpResponse(Buffer.from('garbage')), /incomplete/);
    assert.throws(() => parseHttpResponse(Buffer.from('SSH-2.0\r\n\r\n')), /not an HTTP response/);
  });

  it("talks to node's own HTTP server (what the agent runs), including a multi-byte body", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-client-'));
    const sock = join(dir, 's.sock');
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const reply = JSON.stringify({ echo: JSON.parse(body) as unknown, path: req.url, method: req.method });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(reply) });
        res.end(reply);
      });
    });
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const r = await httpPost(sock, '/v1/cni', JSON.stringify({ name: 'pod-é-ü' }), 5000);
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { echo: { name: 'pod-é-ü' }, path: '/v1/cni', method: 'POST' });
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects with the socket error code when nothing listens', async () => {
    await assert.rejects(httpPost('/nonexistent/weft.sock', '/v1/cni', '{}', 1000), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  });
});
