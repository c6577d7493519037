/**
 * The live call view: one self-contained page (no external assets, no build step). Left, the
 * calls in progress and the recent ones, updated by server-sent events; right, the selected
 * call's ladder diagram (WhatsApp, bridge, PBX and media columns; one arrow per webhook, Graph
 * action, SIP message and media milestone, with its time offset). A click on an arrow shows the
 * message. Everything from the network is put in the page with textContent, never as HTML.
 */

export const LOGIN_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wa-sip-bridge: sign in</title>
<style>body{font:15px system-ui,sans-serif;margin:15vh auto;max-width:22em}input,button{font:inherit;padding:.4em;width:100%;margin:.3em 0}#err{color:#b00}</style>
</head><body>
<h1>wa-sip-bridge</h1>
<form id="f"><label>Admin token <input id="token" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button><p id="err"></p></form>
<script>
document.getElementById('f').addEventListener('submit', async (e) => {
  e.preventDefault();
  const r = await fetch('/admin/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: document.getElementById('token').value }) });
  if (r.ok) location.reload(); else document.getElementById('err').textContent = 'Wrong token.';
});
</script></body></html>`;

export const CALL_VIEW_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wa-sip-bridge: calls</title>
<style>
body{font:14px system-ui,sans-serif;margin:0;display:flex;height:100vh;color:#222}
#calls{width:22em;overflow:auto;border-right:1px solid #ccc;padding:.5em}
#calls h2{font-size:1em;margin:.8em 0 .3em}
.call{padding:.35em .5em;border-radius:4px;cursor:pointer;margin:2px 0;border:1px solid transparent}
.call:hover{background:#f2f5fa}.call.sel{border-color:#3a7bd5;background:#eaf1fb}
.call small{color:#666;display:block}
.live{color:#0a7d32;font-weight:600}
#main{flex:1;overflow:auto;padding:.5em 1em}
#ladder text{font:12px system-ui,sans-serif}
#ladder .col{font-weight:600}
#ladder .arrow{cursor:pointer}#ladder .arrow:hover line{stroke-width:3}
#ladder .t{fill:#777}
#body{white-space:pre-wrap;font:12px ui-monospace,monospace;background:#f6f6f6;padding:.6em;border-radius:4px;max-height:40vh;overflow:auto}
</style></head><body>
<div id="calls"><h2>In progress <span id="nlive"></span></h2><div id="active"></div><h2>Recent</h2><div id="recent"></div></div>
<div id="main"><h1 id="title">Select a call</h1><p id="meta"></p>
<svg id="ladder" xmlns="http://www.w3.org/2000/svg" width="760" height="40"></svg>
<h3 id="bodytitle"></h3><pre id="body"></pre></div>
<script>
const COLS = ['whatsapp', 'bridge', 'pbx', 'media'];
const NAMES = { whatsapp: 'WhatsApp', bridge: 'Bridge', pbx: 'PBX', media: 'Media' };
const COLORS = { webhook: '#128c4a', graph: '#1d6fd1', sip: '#8a3ab9', media: '#d07a00', note: '#555' };
const X = (c) => 90 + COLS.indexOf(c) * 200;
const ROW = 26, TOP = 40;
const calls = new Map();
let selected = null, arrows = [];
const svg = document.getElementById('ladder');
const NS = 'http://www.w3.org/2000/svg';
function el(name, attrs, text) { const e = document.createElementNS(NS, name); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; return e; }
function fmt(ms) { return (ms / 1000).toFixed(3) + ' s'; }
function renderList() {
  const act = document.getElementById('active'), rec = document.getElementById('recent');
  act.replaceChildren(); rec.replaceChildren();
  const all = [...calls.values()].sort((a, b) => b.startedAt - a.startedAt);
  let n = 0;
  for (const c of all) {
    const d = document.createElement('div');
    d.className = 'call' + (c.id === selected ? ' sel' : '');
    d.dataset.id = c.id;
    const head = document.createElement('span');
    head.textContent = (c.direction === 'inbound' ? '⇢ ' : '⇠ ') + (c.whatsappUser || c.id);
    if (!c.endedAt) { head.className = 'live'; n++; }
    const small = document.createElement('small');
    small.textContent = new Date(c.startedAt).toLocaleTimeString() + (c.endedAt ? ' · ' + (c.cause || 'ended') : ' · live');
    d.append(head, small);
    d.addEventListener('click', () => select(c.id));
    (c.endedAt ? rec : act).append(d);
  }
  document.getElementById('nlive').textContent = '(' + n + ')';
}
function drawLadder() {
  svg.replaceChildren();
  svg.setAttribute('height', String(TOP + ROW * (arrows.length + 1)));
  for (const c of COLS) {
    svg.append(el('text', { x: X(c), y: 16, 'text-anchor': 'middle', class: 'col' }, NAMES[c]));
    svg.append(el('line', { x1: X(c), y1: 24, x2: X(c), y2: TOP + ROW * (arrows.length + 0.5), stroke: '#bbb', 'stroke-dasharray': '4 3' }));
  }
  arrows.forEach((a, i) => {
    const y = TOP + ROW * i + 14, x1 = X(a.from), x2 = X(a.to), color = COLORS[a.kind] || '#555';
    const g = el('g', { class: 'arrow', 'data-index': String(i), 'data-label': a.label });
    // The whole row takes the click, not only the thin line or the text.
    g.append(el('rect', { x: 0, y: y - ROW / 2, width: 760, height: ROW, fill: 'transparent', 'pointer-events': 'all' }));
    g.append(el('text', { x: 4, y: y + 4, class: 't' }, '+' + fmt(a.t)));
    if (x1 === x2) {
      g.append(el('circle', { cx: x1, cy: y, r: 5, fill: color }));
      g.append(el('text', { x: x1 + 10, y: y + 4, fill: color }, a.label));
    } else {
      const dir = x2 > x1 ? 1 : -1;
      g.append(el('line', { x1, y1: y, x2: x2 - dir * 6, y2: y, stroke: color, 'stroke-width': 2 }));
      g.append(el('path', { d: 'M' + x2 + ' ' + y + ' l' + (-dir * 8) + ' -4 l0 8 z', fill: color }));
      g.append(el('text', { x: (x1 + x2) / 2, y: y - 4, 'text-anchor': 'middle', fill: color }, a.label));
    }
    g.addEventListener('click', () => {
      document.getElementById('bodytitle').textContent = a.label + ' (+' + fmt(a.t) + ')';
      document.getElementById('body').textContent = a.body || '(no message body: a milestone)';
    });
    svg.append(g);
  });
}
async function select(id) {
  selected = id;
  renderList();
  const r = await fetch('/admin/calls/' + encodeURIComponent(id));
  if (!r.ok) return;
  const t = await r.json();
  if (selected !== id) return;
  arrows = t.arrows;
  const c = t.summary;
  document.getElementById('title').textContent = (c.direction === 'inbound' ? 'Inbound call from ' : c.direction === 'click-to-call' ? 'Click-to-call to ' : 'Outbound call to ') + (c.whatsappUser || '?');
  document.getElementById('meta').textContent = 'WhatsApp call id ' + (c.waCallId || '–') + ' · SIP Call-ID ' + (c.sipCallId || '–') + (c.endedAt ? ' · ended: ' + (c.cause || '') : ' · in progress');
  document.getElementById('bodytitle').textContent = '';
  document.getElementById('body').textContent = '';
  drawLadder();
}
const es = new EventSource('/admin/events');
es.onmessage = (m) => {
  const u = JSON.parse(m.data);
  if (u.type === 'snapshot') { calls.clear(); for (const c of [...u.calls.active, ...u.calls.recent]) calls.set(c.id, c); }
  else if (u.type === 'call') calls.set(u.call.id, u.call);
  else if (u.type === 'arrow' && u.id === selected) { arrows.push(u.arrow); drawLadder(); }
  if (u.type !== 'arrow') {
    renderList();
    if (!selected && calls.size > 0) select([...calls.values()].sort((a, b) => b.startedAt - a.startedAt)[0].id);
  }
};
es.onerror = () => { document.getElementById('nlive').textContent = '(reconnecting…)'; };
</script></body></html>`;
