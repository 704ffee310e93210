"""Render a ``Report`` as one self-contained HTML page (no server, no network, works from file://).

Static parts (summary, plots, tables) are HTML written here; the cards are built by a small
script from the JSON index embedded in the page, 50 per page (``#page=N``; ``#group=REASON``
and ``#status=reject`` filter, ``#q=TEXT`` searches ids, titles and captions). Previews are
lazily loaded WebP sprite strips (``inspection.media``) that one timer advances in lockstep.

The script reports on itself in ``<pre id="d4d-status">``'s data attributes, which headless
tests read from the DOM: ``data-page``, ``data-pages``, ``data-items`` (after filtering),
``data-cards``, ``data-sprites``, ``data-sprites-loaded``, ``data-sprites-playing`` (advanced
at least two frames), ``data-plots`` (SVG plots holding data), ``data-errors`` (script errors
and failed loads, " | "-joined) and ``data-layout`` ("ok" or what overlaps or overflows).
"""

from __future__ import annotations

import json
import re
from html import escape

from d4d.files import json_safe
from d4d.inspection.model import Report

CSS = """
:root { --bg: #f6f6f4; --card: #fff; --ink: #222; --muted: #666; --keep: #2e7d32; --reject: #c62828; --failed: #6a1b9a; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--ink); }
header { padding: 16px 24px; background: #263238; color: #fff; }
header h1 { margin: 0 0 4px; font-size: 20px; }
header .source { color: #cfd8dc; font-family: monospace; word-break: break-all; }
main { padding: 16px 24px; max-width: 100%; }
section { margin-bottom: 24px; }
h2 { font-size: 16px; margin: 0 0 8px; }
.summary { display: flex; flex-wrap: wrap; gap: 8px; }
.summary div { background: var(--card); border: 1px solid #ddd; border-radius: 6px; padding: 6px 10px; }
.summary b { display: block; font-size: 18px; }
.notes { background: #fff8e1; border: 1px solid #ffe082; padding: 8px 12px; border-radius: 6px; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(440px, 100%), 1fr)); gap: 12px; align-items: start; }
figure { margin: 0; background: var(--card); border: 1px solid #ddd; border-radius: 6px; padding: 6px; min-width: 0; }
figcaption { color: var(--muted); font-size: 12px; }
svg.plot { display: block; width: 100%; height: auto; font: 11px system-ui, sans-serif; }
svg.plot .title { font-weight: 600; font-size: 12px; }
h2.parent { grid-column: 1 / -1; font-size: 14px; margin: 12px 0 0; border-bottom: 1px solid #ccc; }
svg.plot .area { fill: #fafafa; stroke: #ccc; }
svg.plot .grid { stroke: #e4e4e4; }
svg.plot .tickmark { stroke: #999; }
svg.plot .tick, svg.plot .legend, svg.plot .value { fill: #444; }
svg.plot .label { fill: #333; }
svg.plot .empty { fill: #999; font-size: 14px; }
.groups { display: flex; flex-direction: column; gap: 12px; }
.group { background: var(--card); border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; }
.group .examples { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 6px; }
.example { width: 140px; font-size: 11px; overflow-wrap: anywhere; }
.controls { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-bottom: 10px; }
.pager a, .pager span { display: inline-block; padding: 2px 8px; margin: 0 2px; border-radius: 4px; }
.pager span.current { background: #263238; color: #fff; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(430px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid #ddd; border-left: 4px solid #999; border-radius: 6px; padding: 8px 10px; min-width: 0; }
.card.keep { border-left-color: var(--keep); } .card.reject { border-left-color: var(--reject); } .card.failed { border-left-color: var(--failed); }
.card h3 { margin: 0; font-size: 13px; font-family: monospace; overflow-wrap: anywhere; }
.badge { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 8px; color: #fff; background: #999; margin-right: 4px; }
.badge.keep { background: var(--keep); } .badge.reject { background: var(--reject); } .badge.failed { background: var(--failed); }
.videos { display: flex; flex-wrap: wrap; gap: 6px; margin: 6px 0; }
.video { font-size: 11px; color: var(--muted); text-align: center; }
.sprite { overflow: hidden; position: relative; border-radius: 3px;
  background-color: #fff; background-image: linear-gradient(45deg, #ddd 25%, transparent 25%, transparent 75%, #ddd 75%),
  linear-gradient(45deg, #ddd 25%, transparent 25%, transparent 75%, #ddd 75%);
  background-size: 16px 16px; background-position: 0 0, 8px 8px; }
.sprite img { position: absolute; left: 0; top: 0; max-width: none; }
.caption { font-style: italic; margin: 4px 0; }
.detail { color: var(--muted); margin: 2px 0; }
.highlights { font-size: 12px; margin: 2px 0; display: flex; flex-wrap: wrap; column-gap: 10px; }
.highlights span { overflow-wrap: anywhere; }
table.measures { border-collapse: collapse; font-size: 11px; width: 100%; table-layout: fixed; }
table.measures td { border-top: 1px solid #eee; padding: 1px 4px; vertical-align: top; overflow-wrap: anywhere; }
table.measures td:first-child { width: 40%; color: var(--muted); font-family: monospace; }
table.config { border-collapse: collapse; font-size: 12px; background: var(--card); }
table.config td { border: 1px solid #e4e4e4; padding: 2px 6px; font-family: monospace; overflow-wrap: anywhere; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  const errors = [];
  window.addEventListener("error", function (e) {
    const t = e.target;
    if (t && t !== window && (t.src || t.href)) errors.push("cannot load " + (t.src || t.href));
    else errors.push((e.message || "error") + (e.lineno ? " (line " + e.lineno + ")" : ""));
  }, true);
  const index = JSON.parse(document.getElementById("d4d-index").textContent);
  const items = index.items;
  const status = document.getElementById("d4d-status");
  const FPS = 8;
  let paused = false;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(3) : v.toPrecision(4));
    if (Array.isArray(v)) return "[" + v.map(fmt).join(", ") + "]";
    if (typeof v === "object") return Object.keys(v).map(function (k) { return k + ": " + fmt(v[k]); }).join("; ");
    return String(v);
  }
  function sprite(v) {
    const wrap = el("div", "video");
    const box = el("div", "sprite");
    box.style.width = v.w + "px"; box.style.height = v.h + "px";
    box.dataset.frames = v.frames; box.dataset.frame = "0"; box.dataset.advanced = "0"; box.dataset.w = v.w;
    const img = document.createElement("img");
    img.loading = "lazy"; img.decoding = "async"; img.alt = v.label;
    img.width = v.w * v.frames; img.height = v.h; img.src = v.src;
    box.appendChild(img);
    wrap.appendChild(box);
    wrap.appendChild(el("div", "", v.label));
    return wrap;
  }
  function card(item) {
    const c = el("article", "card " + (item.status || ""));
    c.dataset.id = item.id;
    const h = el("h3");
    if (item.status) h.appendChild(el("span", "badge " + item.status, item.status));
    if (item.group) h.appendChild(el("span", "badge", item.group));
    h.appendChild(document.createTextNode(item.title));
    if (item.hover) h.title = item.hover;
    c.appendChild(h);
    const vids = el("div", "videos");
    item.videos.forEach(function (v) { vids.appendChild(sprite(v)); });
    if (item.videos.length) c.appendChild(vids);
    if (item.caption) c.appendChild(el("div", "caption", item.caption));
    if (item.detail) c.appendChild(el("div", "detail", item.detail));
    const hl = el("div", "highlights");
    Object.keys(item.highlights).forEach(function (k) {
      const s = el("span"); s.appendChild(el("b", "", k + " ")); s.appendChild(document.createTextNode(fmt(item.highlights[k]))); hl.appendChild(s);
    });
    if (hl.childNodes.length) c.appendChild(hl);
    const keys = Object.keys(item.measures);
    if (keys.length) {
      const d = el("details"); d.appendChild(el("summary", "", "all measures (" + keys.length + ")"));
      const t = el("table", "measures");
      keys.forEach(function (k) { const r = t.insertRow(); r.insertCell().textContent = k; r.insertCell().textContent = fmt(item.measures[k]); });
      d.appendChild(t); c.appendChild(d);
    }
    return c;
  }
  function params() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ""));
    return { page: Math.max(1, parseInt(p.get("page") || "1", 10) || 1), group: p.get("group"), status: p.get("status"), q: (p.get("q") || "").toLowerCase() };
  }
  function link(p) {
    const q = new URLSearchParams();
    if (p.group) q.set("group", p.group);
    if (p.status) q.set("status", p.status);
    if (p.q) q.set("q", p.q);
    q.set("page", p.page);
    return "#" + q.toString();
  }
  function filtered(p) {
    return items.filter(function (it) {
      if (p.group && it.group !== p.group) return false;
      if (p.status && it.status !== p.status) return false;
      if (p.q && [it.id, it.title, it.parent, it.parent_title, it.caption, it.hover].join(" ").toLowerCase().indexOf(p.q) < 0) return false;
      return true;
    });
  }
  function pager(p, pages) {
    const nav = el("nav", "pager");
    function add(n, text) {
      if (n === p.page) { nav.appendChild(el("span", "current", text)); return; }
      const a = el("a", "", text); a.href = link(Object.assign({}, p, { page: n })); nav.appendChild(a);
    }
    if (p.page > 1) add(p.page - 1, "< prev");
    const shown = new Set([1, pages, p.page - 2, p.page - 1, p.page, p.page + 1, p.page + 2]);
    let last = 0;
    Array.from(shown).filter(function (n) { return n >= 1 && n <= pages; }).sort(function (a, b) { return a - b; }).forEach(function (n) {
      if (n > last + 1) nav.appendChild(el("span", "", "..."));
      add(n, String(n)); last = n;
    });
    if (p.page < pages) add(p.page + 1, "next >");
    return nav;
  }
  function renderGroups() {
    const root = document.getElementById("groups");
    if (!root) return;
    index.groups.forEach(function (g) {
      const box = el("div", "group"); box.dataset.group = g.key;
      const head = el("div");
      head.appendChild(el("b", "", g.label + " (" + g.count + ")"));
      if (g.description) head.appendChild(el("span", "detail", " " + g.description));
      if (g.count) { const a = el("a", "", " show all"); a.href = link({ page: 1, group: g.key }); head.appendChild(a); }
      box.appendChild(head);
      const ex = el("div", "examples");
      g.examples.forEach(function (i) {
        const it = items[i]; const e = el("div", "example");
        if (it.videos.length) e.appendChild(sprite(it.videos[0]));
        const name = el("div", "", it.title);
        if (it.hover) name.title = it.hover;
        e.appendChild(name);
        if (it.detail) e.appendChild(el("div", "detail", it.detail));
        ex.appendChild(e);
      });
      box.appendChild(ex);
      root.appendChild(box);
    });
  }
  function renderPage() {
    const p = params();
    const list = filtered(p);
    const per = index.per_page;
    const pages = Math.max(1, Math.ceil(list.length / per));
    if (p.page > pages) p.page = pages;
    const cards = document.getElementById("cards");
    cards.textContent = "";
    let parent = null;
    list.slice((p.page - 1) * per, p.page * per).forEach(function (it) {
      if (it.parent && it.parent !== parent) {
        const n = items.filter(function (o) { return o.parent === it.parent; }).length;
        const head = el("h2", "parent", (it.parent_title || it.parent) + " (" + n + (n === 1 ? " clip)" : " clips)"));
        if (it.hover) head.title = it.hover;
        cards.appendChild(head);
      }
      parent = it.parent;
      cards.appendChild(card(it));
    });
    ["pager-top", "pager-bottom"].forEach(function (id) { const n = document.getElementById(id); n.textContent = ""; n.appendChild(pager(p, pages)); });
    const info = [list.length + " of " + items.length + " shown"];
    if (p.group) info.push("group " + p.group);
    if (p.status) info.push("status " + p.status);
    if (p.q) info.push("search \"" + p.q + "\"");
    document.getElementById("filter-info").textContent = info.join(", ");
    status.dataset.page = p.page; status.dataset.pages = pages; status.dataset.items = list.length;
    const shown = cards.querySelectorAll("article.card");
    status.dataset.cards = shown.length;
    status.dataset.firstCard = shown.length ? shown[0].dataset.id : "";
    checkLayout();
  }
  function overlap(a, b) { return a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5; }
  function checkLayout() {
    const problems = []; const width = document.documentElement.clientWidth;
    const boxes = {};
    function check(name, node) {
      if (!node) return;
      const r = node.getBoundingClientRect();
      boxes[name] = [Math.round(r.left + scrollX), Math.round(r.top + scrollY), Math.round(r.width), Math.round(r.height)];
      if (r.width <= 0 || r.height <= 0) problems.push(name + " has no size");
      if (r.left < -0.5 || r.right > width + 0.5) problems.push(name + " overflows the viewport width");
      return r;
    }
    if (document.documentElement.scrollWidth > width + 1) problems.push("page scrolls horizontally (" + document.documentElement.scrollWidth + " > " + width + ")");
    check("header", document.querySelector("header"));
    const plots = Array.from(document.querySelectorAll("figure")).map(function (f, i) { return check("plot" + i, f); });
    check("group0", document.querySelector(".group"));
    check("example0", document.querySelector(".example .sprite"));
    const first = document.querySelector("#cards .card");
    check("card0", first);
    const vids = first ? Array.from(first.querySelectorAll(".sprite")).map(function (s, i) { return check("card0.video" + i, s); }) : [];
    [plots, vids].forEach(function (rs) {
      for (let i = 0; i < rs.length; i++) for (let j = i + 1; j < rs.length; j++) if (overlap(rs[i], rs[j])) problems.push("overlap " + i + "/" + j);
    });
    status.dataset.layout = problems.length ? problems.join("; ") : "ok";
    status.dataset.boxes = JSON.stringify(boxes);
  }
  function tick() {
    if (paused) return;
    let total = 0, loaded = 0, playing = 0;
    document.querySelectorAll(".sprite").forEach(function (box) {
      total++;
      const img = box.firstChild;
      if (!img.complete || !img.naturalWidth) return;
      loaded++;
      const f = (parseInt(box.dataset.frame, 10) + 1) % parseInt(box.dataset.frames, 10);
      box.dataset.frame = f;
      img.style.transform = "translateX(" + (-f * parseInt(box.dataset.w, 10)) + "px)";
      const adv = parseInt(box.dataset.advanced, 10) + 1; box.dataset.advanced = adv;
      if (adv >= 2) playing++;
    });
    status.dataset.sprites = total; status.dataset.spritesLoaded = loaded; status.dataset.spritesPlaying = playing;
    status.dataset.errors = errors.join(" | ");
  }
  try {
    renderGroups();
    renderPage();
    status.dataset.plots = Array.from(document.querySelectorAll("svg.plot")).filter(function (s) { return parseInt(s.dataset.n, 10) > 0; }).length;
    window.addEventListener("hashchange", renderPage);
    document.getElementById("search").addEventListener("change", function (e) { location.hash = link({ page: 1, q: e.target.value }); });
    document.getElementById("pause").addEventListener("click", function (e) { paused = !paused; e.target.textContent = paused ? "play" : "pause"; });
    setInterval(tick, 1000 / FPS);
    tick();
  } catch (e) {
    errors.push(String(e && e.stack || e));
  }
  status.dataset.errors = errors.join(" | ");
  status.dataset.ready = "1";
})();
"""


def _summary(report: Report) -> str:
    cells = "".join(f"<div><b>{escape(str(value))}</b>{escape(label)}</div>" for label, value in report.summary)
    return f'<section><div class="summary">{cells}</div></section>'


def _tables(report: Report) -> str:
    out = []
    for title, table in report.tables.items():
        rows = "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(json.dumps(json_safe(v)) if not isinstance(v, str) else v)}</td></tr>"
                       for k, v in table.items())
        out.append(f"<details><summary>{escape(title)} ({len(table)})</summary><table class=\"config\">{rows}</table></details>")
    return f"<section><h2>Details</h2>{''.join(out)}</section>" if out else ""


#: Characters that could end or change a ``<script>`` block (``</script>``, ``<!--<script>``) or a
#: line of script, written as JSON escapes instead (the same string once parsed).
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(value) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&``
    (nor U+2028/U+2029) appear in the text, so no string in it can end the block or open a
    comment, and ``JSON.parse`` of the block's text gives ``value`` back."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: _SCRIPT_ESCAPES[m.group()], text)


def render_html(report: Report) -> str:
    """The page as a string. Data from the inspected files is escaped (HTML) or set as text by the script."""
    index = script_json(report.index())
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    plots = "".join(f"<figure>{p.svg}{f'<figcaption>{escape(p.note)}</figcaption>' if p.note else ''}</figure>" for p in report.plots)
    groups = '<section><h2>Groups</h2><div class="groups" id="groups"></div></section>' if report.groups else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(report.title)}</title><style>{CSS}</style></head>
<body>
<header><h1>{escape(report.title)}</h1><div class="source">{escape(report.source)}</div></header>
<main>
{_summary(report)}
{f'<section class="notes"><ul>{notes}</ul></section>' if notes else ''}
{f'<section><h2>Distributions</h2><div class="plots">{plots}</div></section>' if plots else ''}
{groups}
<section{'' if report.items else ' hidden'}><h2>Items</h2>
<div class="controls"><input id="search" type="search" placeholder="search id or caption"><button id="pause" type="button">pause</button>
<span id="filter-info"></span></div>
<div id="pager-top"></div><div class="cards" id="cards"></div><div id="pager-bottom"></div>
</section>
{_tables(report)}
</main>
<pre id="d4d-status" hidden></pre>
<script type="application/json" id="d4d-index">{index}</script>
<script>{SCRIPT}</script>
</body></html>
"""
