/**
 * The UI's one page: HTML with its style and script inline (no framework, no CDN: it works on an
 * offline machine). The script builds every element from data with textContent — pod names,
 * labels and rules come from users and are never parsed as HTML — and takes live updates from
 * /events (server-sent events), so the page is never reloaded. The style and script are exported
 * on their own so the server can name their hashes in its Content-Security-Policy.
 */

export const PAGE_STYLE = String.raw`
:root { --bg:#f6f7f9; --panel:#fff; --line:#d8dce3; --text:#1d232c; --muted:#5d6877; --ok:#1f8a4c; --okbg:#dff3e6; --bad:#b42318; --badbg:#fde3e1; --sel:#2f6fde; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--text); background: var(--bg); }
header { display: flex; gap: 16px; align-items: baseline; padding: 10px 16px; background: #1d232c; color: #fff; }
header h1 { font-size: 16px; margin: 0; }
header .meta { color: #b9c2cf; }
#conn { margin-left: auto; font-weight: 600; }
#conn.live { color: #7ee2a2; } #conn.down { color: #ffb4ab; }
main { display: grid; grid-template-columns: minmax(320px, 1fr) minmax(420px, 1.6fr); gap: 12px; padding: 12px; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; min-width: 0; }
section h2 { font-size: 14px; margin: 0 0 8px; display: flex; gap: 8px; align-items: center; }
#topology { grid-row: span 2; }
.node { border: 1px solid var(--line); border-radius: 5px; padding: 6px 8px; margin-bottom: 6px; }
.node .name, .ns .name { font-weight: 600; }
.agent-running { color: var(--ok); } .agent-down { color: var(--bad); font-weight: 600; }
.kv { color: var(--muted); } .kv b { color: var(--text); font-weight: 500; }
.ns { margin-top: 10px; }
.pod { border-left: 3px solid var(--sel); padding: 3px 8px; margin: 4px 0; background: #f2f6fd; }
.labels { display: flex; flex-wrap: wrap; gap: 3px; margin-top: 2px; }
.label { background: #e7eaf0; border-radius: 3px; padding: 0 5px; font-family: ui-monospace, monospace; font-size: 11px; }
.problem { color: var(--bad); }
.policy { font-family: ui-monospace, monospace; font-size: 12px; }
#flows-wrap { max-height: 340px; overflow: auto; border: 1px solid var(--line); }
table { border-collapse: collapse; }
#flows { width: 100%; }
#flows th, #flows td { padding: 3px 6px; border-bottom: 1px solid #eef0f3; text-align: left; white-space: nowrap; }
#flows thead th { position: sticky; top: 0; background: #eef1f5; }
#flows tr.flow { cursor: pointer; }
#flows tr.flow:hover { background: #f0f4fb; }
#flows tr.dropped { background: var(--badbg); color: var(--bad); }
#flows tr.dropped:hover { background: #fbd2cd; }
#flows tr.selected { outline: 2px solid var(--sel); outline-offset: -2px; }
.verdict-dropped { font-weight: 700; }
.controls { display: flex; gap: 6px; align-items: center; font-weight: normal; font-size: 12px; }
input, select, button { font: inherit; }
#matrix-wrap { overflow: auto; }
#matrix td, #matrix th { border: 1px solid var(--line); padding: 2px 5px; text-align: center; }
#matrix th.col { writing-mode: vertical-rl; transform: rotate(180deg); font-weight: 500; }
#matrix th.row { text-align: right; font-weight: 500; }
#matrix td.cell { cursor: pointer; min-width: 26px; font-weight: 700; }
#matrix td.allowed { background: var(--okbg); color: var(--ok); }
#matrix td.blocked { background: var(--badbg); color: var(--bad); }
#matrix td.none { background: #f3f4f6; color: #aaa; cursor: default; }
#matrix td.selected { outline: 2px solid var(--sel); outline-offset: -2px; }
#detail { grid-column: 1 / -1; }
#detail .title { font-weight: 600; font-size: 14px; margin-bottom: 4px; }
#detail .fact { margin: 2px 0; }
#detail .fact .labels { display: inline-flex; margin: 0; }
#detail pre { background: #1d232c; color: #e8edf4; padding: 8px 10px; border-radius: 5px; white-space: pre-wrap; margin: 6px 0 0; }
.muted { color: var(--muted); }
.blocked-word { color: var(--bad); font-weight: 700; } .allowed-word { color: var(--ok); font-weight: 700; }
`;

export const PAGE_SCRIPT = String.raw`
'use strict';
var MAX_ROWS = 500;
var topologyKey = '';
var policiesKey = '';
var selected = null;

function $(id) { return document.getElementById(id); }
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
function labelChips(labels) {
  var box = el('div', 'labels');
  Object.keys(labels || {}).sort().forEach(function (k) { box.appendChild(el('span', 'label', k + '=' + labels[k])); });
  return box;
}
function kv(key, value) {
  var d = el('div', 'kv', key + ': ');
  d.appendChild(el('b', null, value));
  return d;
}
function getJson(url) {
  return fetch(url).then(function (r) {
    return r.json().then(function (b) {
      if (!r.ok) throw new Error(b && b.error ? b.error : 'HTTP ' + r.status);
      return b;
    });
  });
}
function select(e) {
  if (selected) selected.classList.remove('selected');
  selected = e;
  if (e) e.classList.add('selected');
}

// --- topology ---
function renderTopology(t) {
  $('lab').textContent = 'lab ' + t.lab;
  $('labmeta').textContent = t.backend + (t.encryption !== 'none' ? ' + ' + t.encryption : '') + ', ' + t.datastore + ' datastore';
  var nodes = $('nodes');
  clear(nodes);
  t.nodes.forEach(function (n) {
    var d = el('div', 'node');
    d.dataset.node = n.name;
    var head = el('div');
    head.appendChild(el('span', 'name', n.name));
    head.appendChild(document.createTextNode(' '));
    head.appendChild(el('span', 'agent-' + n.agent, 'agent ' + n.agent));
    d.appendChild(head);
    d.appendChild(kv('addresses', n.ips.join(', ') || '-'));
    d.appendChild(kv('blocks', n.blocks.join(', ') || '-'));
    d.appendChild(kv('peers', n.peers.join(', ') || '-'));
    if (n.mtu !== undefined) d.appendChild(kv('pod MTU', n.mtu));
    if (n.agent === 'running' && !n.datastoreConnected) d.appendChild(el('div', 'problem', 'datastore not connected'));
    n.problems.forEach(function (p) { d.appendChild(el('div', 'problem', p)); });
    nodes.appendChild(d);
  });
  var pods = $('pods');
  clear(pods);
  t.namespaces.forEach(function (ns) {
    var d = el('div', 'ns');
    d.dataset.namespace = ns.name;
    d.appendChild(el('div', 'name', 'namespace ' + ns.name));
    if (ns.pods.length === 0) d.appendChild(el('div', 'muted', 'no pods'));
    ns.pods.forEach(function (p) {
      var pd = el('div', 'pod');
      pd.dataset.pod = ns.name + '/' + p.name;
      var head = el('div');
      head.appendChild(el('span', 'name', p.name));
      head.appendChild(el('span', 'muted', (p.node ? '  on ' + p.node : '') + '  ' + p.addresses.join(', ')));
      pd.appendChild(head);
      pd.appendChild(labelChips(p.labels));
      d.appendChild(pd);
    });
    pods.appendChild(d);
  });
  var pol = $('policies');
  clear(pol);
  if (t.policies.length === 0) pol.appendChild(el('div', 'muted', 'none: every pod reaches every pod'));
  t.policies.forEach(function (p) { pol.appendChild(el('div', 'policy', p)); });
  t.problems.forEach(function (p) { pol.appendChild(el('div', 'problem', p)); });
  // A pod or a policy changed: the matrix is out of date.
  var key = JSON.stringify([t.namespaces, t.policies]);
  if (key !== policiesKey) { policiesKey = key; loadMatrix(); }
}

// --- flows ---
function endText(e) {
  var who = e.pod || (e.node ? 'node ' + e.node : e.address);
  return who + (e.port !== undefined ? ':' + e.port : '');
}
function flowMatches(tr) {
  var f = $('filter').value.trim().toLowerCase();
  if ($('dropped-only').checked && !tr.classList.contains('dropped')) return false;
  return f === '' || tr.textContent.toLowerCase().indexOf(f) >= 0;
}
function applyFilter() {
  Array.prototype.forEach.call($('flow-rows').children, function (tr) { tr.hidden = !flowMatches(tr); });
}
function addFlow(item) {
  var r = item.record;
  var tr = el('tr', 'flow ' + r.verdict);
  tr.dataset.src = r.source.pod || r.source.address;
  tr.dataset.dst = r.destination.pod || r.destination.address;
  tr.dataset.verdict = r.verdict;
  var what = r.protocol + (r.tcpFlags ? ' ' + r.tcpFlags : '') + (r.icmp ? ' ' + r.icmp.type + '/' + r.icmp.code : '');
  [r.time.slice(11, 23), r.node, r.verdict === 'dropped' ? 'DROPPED' : 'forwarded', r.direction, endText(r.source), endText(r.destination), what, r.dropReason || ''].forEach(function (v, i) {
    tr.appendChild(el('td', i === 2 ? 'verdict-' + r.verdict : null, v));
  });
  tr.addEventListener('click', function () { showFlow(item, tr); });
  tr.hidden = !flowMatches(tr);
  var body = $('flow-rows');
  body.insertBefore(tr, body.firstChild);
  while (body.children.length > MAX_ROWS) body.removeChild(body.lastChild);
  $('flow-count').textContent = String(body.children.length);
}

// --- detail: a trace ---
function traceBlock(box, query) {
  var pre = el('pre', 'trace', 'tracing...');
  box.appendChild(pre);
  if (!query) { pre.textContent = 'policy does not judge this protocol: no trace'; return; }
  var q = new URLSearchParams();
  Object.keys(query).forEach(function (k) { if (query[k] !== undefined) q.set(k, String(query[k])); });
  getJson('/api/trace?' + q.toString()).then(function (t) {
    pre.textContent = t.lines.join('\n');
  }, function (err) { pre.textContent = 'no trace: ' + err.message; });
}
function showFlow(item, tr) {
  select(tr);
  var r = item.record;
  var box = $('detail-body');
  clear(box);
  var title = el('div', 'title');
  title.appendChild(el('span', r.verdict === 'dropped' ? 'blocked-word' : 'allowed-word', r.verdict === 'dropped' ? 'DROPPED' : 'FORWARDED'));
  title.appendChild(document.createTextNode(' ' + endText(r.source) + ' \u2192 ' + endText(r.destination) + ' ' + r.protocol + ', seen by ' + r.node + ' (' + r.direction + ') at ' + r.time));
  box.appendChild(title);
  if (r.dropReason) box.appendChild(el('div', 'fact', 'reason: ' + r.dropReason));
  if (r.explanation) box.appendChild(el('div', 'fact', 'deciding rule, when dropped: ' + r.explanation));
  if (r.policies && r.policies.length) box.appendChild(el('div', 'fact', 'policies: ' + r.policies.join(', ')));
  [['source', r.source], ['destination', r.destination]].forEach(function (p) {
    var e = p[1];
    if (e.labels && Object.keys(e.labels).length) {
      var d = el('div', 'fact', p[0] + ' labels: ');
      d.appendChild(labelChips(e.labels));
      box.appendChild(d);
    }
  });
  box.appendChild(el('div', 'muted', 'the trace by the policies in force now (weft policy trace):'));
  traceBlock(box, item.trace);
}
function showCell(td, m, from, to, allowed) {
  select(td);
  var box = $('detail-body');
  clear(box);
  var what = m.protocol === 'ICMP' ? 'ICMP' : m.port + '/' + m.protocol;
  var title = el('div', 'title');
  title.appendChild(el('span', allowed ? 'allowed-word' : 'blocked-word', allowed ? 'ALLOWED' : 'BLOCKED'));
  title.appendChild(document.createTextNode(' ' + from + ' \u2192 ' + to + ' ' + what + ' over IPv' + m.family));
  box.appendChild(title);
  var query = { src: from, dst: to, protocol: m.protocol, family: m.family };
  if (m.port !== undefined) query.port = m.port;
  traceBlock(box, query);
}

// --- matrix ---
var matrixSeq = 0;
function loadMatrix() {
  var q = new URLSearchParams();
  var protocol = $('m-protocol').value;
  q.set('protocol', protocol);
  if (protocol !== 'ICMP') q.set('port', $('m-port').value);
  q.set('family', $('m-family').value);
  var seq = ++matrixSeq;
  getJson('/api/matrix?' + q.toString()).then(function (m) {
    if (seq === matrixSeq) renderMatrix(m);
  }, function (err) {
    if (seq !== matrixSeq) return;
    var t = $('matrix'); clear(t);
    var tr = el('tr'); tr.appendChild(el('td', 'problem', err.message)); t.appendChild(tr);
  });
}
function renderMatrix(m) {
  var t = $('matrix');
  clear(t);
  if (m.pods.length === 0) { var e = el('tr'); e.appendChild(el('td', 'muted', 'no pods with addresses')); t.appendChild(e); return; }
  var head = el('tr');
  head.appendChild(el('th', 'corner', 'from \\ to'));
  m.pods.forEach(function (p) { head.appendChild(el('th', 'col', p)); });
  t.appendChild(head);
  m.pods.forEach(function (from, i) {
    var tr = el('tr');
    tr.appendChild(el('th', 'row', from));
    m.pods.forEach(function (to, j) {
      var v = m.cells[i][j];
      var td = el('td', 'cell ' + (v === null ? 'none' : v ? 'allowed' : 'blocked'), v === null ? '' : v ? '\u2713' : '\u2717');
      td.dataset.from = from;
      td.dataset.to = to;
      td.title = from + ' \u2192 ' + to + ': ' + (v === null ? 'no address of this family' : v ? 'allowed' : 'blocked');
      if (v !== null) td.addEventListener('click', function () { showCell(td, m, from, to, v); });
      tr.appendChild(td);
    });
    t.appendChild(tr);
  });
}

// --- live updates ---
function connect() {
  var es = new EventSource('/events');
  es.addEventListener('open', function () { $('conn').textContent = 'live'; $('conn').className = 'live'; });
  es.addEventListener('error', function () { $('conn').textContent = 'reconnecting...'; $('conn').className = 'down'; });
  es.addEventListener('topology', function (e) {
    if (e.data === topologyKey) return;
    topologyKey = e.data;
    renderTopology(JSON.parse(e.data));
  });
  es.addEventListener('flow', function (e) { addFlow(JSON.parse(e.data)); });
  // After a reconnect the server sends its kept records again: start the table afresh.
  es.addEventListener('reset', function () { clear($('flow-rows')); $('flow-count').textContent = '0'; });
}

$('filter').addEventListener('input', applyFilter);
$('dropped-only').addEventListener('change', applyFilter);
$('m-protocol').addEventListener('change', function () { $('m-port').disabled = $('m-protocol').value === 'ICMP'; loadMatrix(); });
$('m-port').addEventListener('change', loadMatrix);
$('m-family').addEventListener('change', loadMatrix);
window.weftPageLoadedAt = Date.now();
connect();
`;

const BODY = `
<header><h1 id="lab">weft ui</h1><span class="meta" id="labmeta"></span><span id="conn">connecting...</span></header>
<main>
  <section id="topology">
    <h2>Nodes</h2><div id="nodes"></div>
    <h2>Pods by namespace</h2><div id="pods"></div>
    <h2>Policies in force</h2><div id="policies"></div>
  </section>
  <section id="flows-panel">
    <h2>Live flows <span class="muted" id="flow-count">0</span>
      <span class="controls"><input id="filter" type="search" placeholder="filter: pod, node, port, reason..." size="28">
      <label><input id="dropped-only" type="checkbox"> dropped only</label></span></h2>
    <div id="flows-wrap"><table id="flows"><thead><tr><th>time</th><th>node</th><th>verdict</th><th>dir</th><th>source</th><th>destination</th><th>protocol</th><th>reason</th></tr></thead><tbody id="flow-rows"></tbody></table></div>
  </section>
  <section id="matrix-panel">
    <h2>Policy matrix
      <span class="controls"><select id="m-protocol"><option>TCP</option><option>UDP</option><option>SCTP</option><option>ICMP</option></select>
      port <input id="m-port" type="number" min="1" max="65535" value="80" size="6">
      <select id="m-family"><option value="4">IPv4</option><option value="6">IPv6</option></select></span></h2>
    <div class="muted">row: from, column: to. Click a cell for its trace.</div>
    <div id="matrix-wrap"><table id="matrix"></table></div>
  </section>
  <section id="detail">
    <h2>Detail</h2>
    <div id="detail-body" class="muted">Click a flow or a matrix cell: the trace names the rule that decides.</div>
  </section>
</main>
`;

/** The whole page. */
export const PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>weft ui</title>
<style>${PAGE_STYLE}</style></head>
<body>${BODY}<script>${PAGE_SCRIPT}</script></body></html>
`;
