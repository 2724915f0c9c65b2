import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { B_FROM_C } from '../helpers/flow-policies.js';
import { CLI, ROOT, privilegedSkip } from '../helpers/env.js';
import { startLab, type TestLab } from '../helpers/lab.js';

/**
 * `weft ui` in a real headless Chromium (Debian's, driven by playwright-core) against a real
 * 2-node lab: the page shows the nodes and pods; a probe a NetworkPolicy blocks appears as a
 * dropped flow without the page being reloaded, and a click on it shows the deciding rule; a
 * matrix cell's click shows its trace; a policy applied while the page is open changes the
 * matrix; flows keep coming after a node's agent restarts; Ctrl-C stops the server.
 * WEFT_UI_SCREENSHOT=1 writes docs/ui.png (the README's screenshot).
 */
const CHROMIUM = '/usr/bin/chromium';
const skip = privilegedSkip() ?? (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing: apt-get install chromium (scripts/setup.sh installs it)`);
const WAIT_MS = 15_000;

const POLICY = B_FROM_C;
const ALLOW_A = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
`;

function weft(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `weft ui` and resolves with its URL, from the line it prints (bounded). */
function startUi(lab: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [CLI, 'ui', '--lab', lab, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`weft ui printed no URL within ${WAIT_MS} ms: ${out}${err}`)), WAIT_MS);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] as string });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`weft ui exited (${code}): ${out}${err}`));
    });
  });
}

/** A request to the UI with a Host header of our choosing (fetch would set its own). */
function get(url: string, o: { host?: string; method?: string } = {}): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method: o.method ?? 'GET', headers: { host: o.host ?? u.host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.setTimeout(WAIT_MS, () => req.destroy(new Error(`no answer from ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('weft ui in Chromium', { skip }, () => {
  let lab: TestLab;
  let dir: string;
  let ui: { child: ChildProcess; url: string } | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let loads = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-ui-'));
    lab = await startLab({ nodes: 2, backend: 'vxlan', datastore: 'file' });
    await lab.ns('x');
    await lab.pod({ namespace: 'x', name: 'a', node: 'node-1', labels: { app: 'a' } });
    await lab.pod({ namespace: 'x', name: 'b', node: 'node-2', labels: { app: 'b' } });
    await lab.pod({ namespace: 'x', name: 'c', node: 'node-1', labels: { app: 'c' } });
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    const applied = weft(['apply', '-f', join(dir, 'policy.yaml'), '--lab', lab.name]);
    assert.equal(applied.status, 0, applied.stderr);
    ui = await startUi(lab.name);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('load', () => loads++);
    await page.goto(ui.url);
  });

  after(async () => {
    await browser?.close();
    if (ui && ui.child.exitCode === null && ui.child.signalCode === null && ui.child.pid !== undefined) {
      process.kill(ui.child.pid, 'SIGKILL');
      await exited(ui.child);
    }
    await lab?.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows the nodes (agent, blocks, peers) and the pods by namespace with labels and addresses', async () => {
    const node1 = page.locator('.node[data-node="node-1"]');
    await node1.waitFor({ timeout: WAIT_MS });
    const n1 = await node1.innerText();
    assert.match(n1, /agent running/);
    assert.match(n1, /blocks: 10\.244\.\d+\.0\/24/);
    assert.match(n1, /peers: node-2/);
    assert.match(await page.locator('.node[data-node="node-2"]').innerText(), /peers: node-1/);
    const state = lab.state();
    for (const p of state.pods) {
      const text = await page.locator(`.ns[data-namespace="x"] .pod[data-pod="x/${p.name}"]`).innerText();
      assert.match(text, new RegExp(`app=${p.name}`));
      assert.ok(text.includes(p.addresses[0] as string), `${p.name}: ${text}`);
      assert.ok(text.includes(`on ${p.node}`), text);
    }
    assert.match(await page.locator('#policies').innerText(), /NetworkPolicy x\/b-from-c/);
  });

  it('a blocked probe appears as a dropped flow, without a reload; a click shows the deciding rule', async () => {
    await page.evaluate('window.weftTestMarker = "still the same page"');
    const probe = await lab.probe('x/a', 'x/b', 80);
    assert.equal(probe.ok, false, 'x/a may not reach x/b');
    const row = page.locator('tr.flow.dropped[data-src="x/a"][data-dst="x/b"]').first();
    await row.waitFor({ timeout: WAIT_MS });
    assert.match(await row.innerText(), /node-2\s+DROPPED\s+ingress\s+x\/a:\d+\s+x\/b:80\s+TCP S\s+policy-isolated/);
    assert.equal(await page.evaluate('window.weftTestMarker'), 'still the same page');
    assert.equal(loads, 1, 'the page was loaded once');
    await row.click();
    const trace = page.locator('#detail-body pre.trace').filter({ hasText: 'BLOCKED — isolated by x/b-from-c' });
    await trace.waitFor({ timeout: WAIT_MS });
    const detail = await page.locator('#detail-body').innerText();
    assert.match(detail, /reason: policy-isolated/);
    assert.match(detail, /policies: x\/b-from-c/);
    assert.match(detail, /deciding rule, when dropped: ingress to x\/b: BLOCKED — isolated by x\/b-from-c/);
    assert.match(await trace.innerText(), /^TCP port 80 from x\/a \(10\.244\.[\d.]+ on node-1\) to x\/b \(10\.244\.[\d.]+ on node-2\): BLOCKED/);
    if (process.env['WEFT_UI_SCREENSHOT'] === '1') await page.screenshot({ path: join(ROOT, 'docs', 'ui.png'), fullPage: true });
  });

  it('a matrix cell is colored by the verdict and its click shows the trace', async () => {
    const blocked = page.locator('#matrix td.cell[data-from="x/a"][data-to="x/b"]');
    await blocked.waitFor({ timeout: WAIT_MS });
    assert.match((await blocked.getAttribute('class')) ?? '', /\bblocked\b/);
    await blocked.click();
    await page.locator('#detail-body pre.trace').filter({ hasText: 'ingress to x/b: BLOCKED — isolated by x/b-from-c' }).waitFor({ timeout: WAIT_MS });
    const allowed = page.locator('#matrix td.cell[data-from="x/c"][data-to="x/b"]');
    assert.match((await allowed.getAttribute('class')) ?? '', /\ballowed\b/);
    await allowed.click();
    await page.locator('#detail-body pre.trace').filter({ hasText: 'ingress to x/b: allowed by NetworkPolicy x/b-from-c ingress[0]' }).waitFor({ timeout: WAIT_MS });
  });

  it('a policy applied while the page is open changes the matrix, without a reload', async () => {
    writeFileSync(join(dir, 'allow-a.yaml'), ALLOW_A);
    const applied = weft(['apply', '-f', join(dir, 'allow-a.yaml'), '--lab', lab.name]);
    assert.equal(applied.status, 0, applied.stderr);
    await page.locator('#matrix td.cell.allowed[data-from="x/a"][data-to="x/b"]').waitFor({ timeout: WAIT_MS });
    assert.match(await page.locator('#policies').innerText(), /NetworkPolicy x\/b-from-a/);
    const deleted = weft(['delete', '-f', join(dir, 'allow-a.yaml'), '--lab', lab.name]);
    assert.equal(deleted.status, 0, deleted.stderr);
    await page.locator('#matrix td.cell.blocked[data-from="x/a"][data-to="x/b"]').waitFor({ timeout: WAIT_MS });
    assert.equal(loads, 1);
  });

  it('flows keep coming after a node\'s agent restarts', async () => {
    const restarted = weft(['lab', 'node', 'restart', 'node-2', '--lab', lab.name]);
    assert.equal(restarted.status, 0, restarted.stderr);
    const before = await page.locator('tr.flow.dropped[data-src="x/c"]').count();
    assert.equal(before, 0);
    // x/c may reach x/b on 80 only: 81 is dropped on node-2, by the restarted agent.
    const probe = await lab.probe('x/c', 'x/b', 81);
    assert.equal(probe.ok, false);
    await page.locator('tr.flow.dropped[data-src="x/c"][data-dst="x/b"]').first().waitFor({ timeout: WAIT_MS });
    assert.equal(loads, 1);
  });

  it('answers only requests addressed to it, only GET; a bad query is a 400 saying what is wrong', async () => {
    const base = ui?.url as string;
    const html = await get(base);
    assert.equal(html.status, 200);
    assert.match(String(html.headers['content-security-policy']), /^default-src 'none'; style-src 'sha256-[^']+'; script-src 'sha256-[^']+'; connect-src 'self'/);
    assert.equal((await get(base, { host: 'rebound.example:80' })).status, 403);
    assert.equal((await get(`${base}api/topology`, { host: 'rebound.example' })).status, 403);
    assert.equal((await get(`${base}api/topology`, { method: 'POST' })).status, 405);
    assert.equal((await get(`${base}nothing`)).status, 404);
    const bad = await get(`${base}api/trace?src=x/a&dst=x/nope&port=80&protocol=TCP`);
    assert.equal(bad.status, 400);
    assert.match((JSON.parse(bad.body) as { error: string }).error, /no pod x\/nope with an address in the datastore \(pods: x\/a, x\/b, x\/c\)/);
    assert.equal((await get(`${base}api/matrix?port=99999&protocol=TCP`)).status, 400);
    const topo = JSON.parse((await get(`${base}api/topology`)).body) as { nodes: Array<{ name: string }> };
    assert.deepEqual(topo.nodes.map((n) => n.name), ['node-1', 'node-2']);
  });

  it('Ctrl-C stops it', async () => {
    const child = ui?.child as ChildProcess;
    process.kill(child.pid as number, 'SIGINT');
    assert.equal(await exited(child), 0);
  });
});
