// OpsMap status page: plain JavaScript, no build step, no library.
// Every text from the repo or the hosts is inserted with textContent (via el/svg below),
// never as HTML: it comes from pull requests and target hosts.
"use strict";

const STATUSES = ["ok", "warning", "error", "unknown", "starting", "stopping"];
const REFETCH_MS = 300; // at most a few refetches a second, however many events arrive
const POLL_MS = 2000; // while the event stream is down
const SVGNS = "http://www.w3.org/2000/svg";

const state = { route: null, zoom: 1, timer: null, lastFetch: 0, poll: null, source: null, inflight: false, again: false };

// -- DOM helpers ---------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "style") Object.assign(node.style, value); // CSSOM: allowed by the CSP
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else node.setAttribute(key, String(value));
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function setView(...children) {
  const view = document.getElementById("view");
  view.replaceChildren();
  append(view, children);
}

function short(sha) { return sha ? sha.slice(0, 12) : "—"; }
function when(iso) { return iso ? iso.replace("T", " ").replace("+00:00", " UTC") : "—"; }
function statusClass(s) { return "s-" + String(s || "unknown").toLowerCase(); }
function stateOf(check) { return { OK: "ok", WARNING: "warning", CRITICAL: "error", UNKNOWN: "unknown" }[check] || "pending"; }
function enc(part) { return encodeURIComponent(part); }
function mapHref(map) { return "#/maps/" + enc(map); }
function componentHref(map, id) { return mapHref(map) + "/components/" + enc(id); }
function pill(status, count) {
  return el("span", { class: "pill", title: status }, el("span", { class: "dot " + statusClass(status) }), `${count} ${status}`);
}
function commitLink(sha, url) {
  const code = el("code", { text: short(sha), title: sha });
  return url ? el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, code) : code;
}

// -- routing and fetching ------------------------------------------------------------------

function parseRoute() {
  let parts = [];
  try {
    parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  } catch (_) { // a malformed link: the overview
    parts = [];
  }
  if (parts[0] === "maps" && parts.length === 2) return { view: "map", map: parts[1], url: "/api/v1/maps/" + enc(parts[1]) };
  if (parts[0] === "maps" && parts.length === 4 && parts[2] === "components")
    return { view: "component", map: parts[1], component: parts[3], url: `/api/v1/maps/${enc(parts[1])}/components/${enc(parts[3])}` };
  if (parts[0] === "requests") return { view: "requests", url: "/api/v1/requests" };
  return { view: "overview", url: "/api/v1/maps" };
}

async function refresh() {
  if (state.inflight) { state.again = true; return; }
  state.inflight = true;
  state.lastFetch = Date.now();
  const route = state.route;
  try {
    const response = await fetch(route.url, { headers: { Accept: "application/json" }, cache: "no-store" });
    const doc = await response.json();
    if (route !== state.route) return; // navigated away meanwhile
    if (!response.ok) renderMissing(route, doc, response.status);
    else RENDER[route.view](doc, route);
    renderFooter(doc.viewer);
    window.opsmapRenders = (window.opsmapRenders || 0) + 1; // read by the tests and the benchmark
    window.opsmapRenderedAt = performance.now();
  } catch (err) {
    setView(el("p", { class: "empty", text: "Cannot reach OpsMap: " + err }));
  } finally {
    state.inflight = false;
    if (state.again) { state.again = false; schedule(); }
  }
}

function schedule() {
  if (state.timer !== null) return;
  const wait = Math.max(0, state.lastFetch + REFETCH_MS - Date.now());
  state.timer = setTimeout(() => { state.timer = null; refresh(); }, wait);
}

function navigate() {
  state.route = parseRoute();
  for (const a of document.querySelectorAll("[data-nav]"))
    a.classList.toggle("active", a.dataset.nav === state.route.view || (a.dataset.nav === "overview" && state.route.view !== "requests"));
  refresh();
}

// -- live: Server-Sent Events, polling while they are down -----------------------------------

function relevant(kind, data) {
  const route = state.route;
  if (kind === "revision" || route.view === "overview") return true;
  if (route.view === "requests") return kind === "request" || kind === "action";
  if (data.map !== route.map) return false;
  if (route.view === "map") return true;
  return data.component === route.component || data.component === "*" || kind === "request";
}

function setLive(on) {
  const live = document.getElementById("live");
  live.className = "live " + (on ? "on" : "off");
  live.textContent = on ? "live" : "reconnecting (polling)";
  if (on && state.poll !== null) { clearInterval(state.poll); state.poll = null; }
  if (!on && state.poll === null) state.poll = setInterval(schedule, POLL_MS);
}

function connect() {
  if (typeof EventSource === "undefined") { setLive(false); return; }
  const source = new EventSource("/api/v1/events");
  state.source = source;
  source.onopen = () => { setLive(true); schedule(); };
  source.onerror = () => {
    setLive(false);
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
  };
  // "reset": the server no longer has the events since our last one: refetch whatever is in view
  source.addEventListener("reset", () => schedule());
  for (const kind of ["check", "component", "revision", "request", "action"]) {
    source.addEventListener(kind, (event) => {
      let data = {};
      try { data = JSON.parse(event.data); } catch (_) { return; }
      if (relevant(kind, data)) schedule();
    });
  }
}

// -- views ---------------------------------------------------------------------------------

function renderFooter(viewer) {
  const footer = document.getElementById("footer");
  if (!viewer) return;
  if (viewer.filtered && !viewer.user) {
    footer.replaceChildren(el("span", { text: "No trusted identity came with this request (not through the authenticating proxy): nothing is shown." }));
    return;
  }
  footer.replaceChildren(viewer.filtered
    ? el("span", {}, "Signed in as ", el("strong", { text: viewer.user }), " (identity from the trusted proxy): you see the maps and components your policies let you view.")
    : el("span", { text: "No user identity: this page is the same for everyone who can reach it (read-only; actions are requested by pull request)." }));
}

function renderMissing(route, doc, status) {
  document.getElementById("banner").hidden = true;
  setView(
    el("p", { class: "crumbs" }, el("a", { href: "#/", text: "Overview" })),
    el("h1", { text: status === 403 ? "Not signed in" : "Not found" }),
    el("p", { class: "empty", text: (doc && doc.error) || "Nothing here." }));
}

function renderBanner(revision) {
  const banner = document.getElementById("banner");
  if (!revision.rejected && !revision.fetch_error) { banner.hidden = true; return; }
  const parts = [];
  if (revision.rejected) {
    parts.push(el("strong", { text: `Revision ${short(revision.attempted)} was rejected (${revision.error_count} error(s)); still running ${short(revision.applied)}.` }));
    parts.push(el("ul", {}, revision.errors.map((e) =>
      el("li", {}, el("code", { text: `${e.file}:${e.line}:${e.column}` }), " ", e.message, " ", el("span", { class: "tag", text: e.code })))));
  }
  if (revision.fetch_error) parts.push(el("div", { text: "Fetching the repo fails: " + revision.fetch_error }));
  banner.replaceChildren(...parts);
  banner.hidden = false;
}

function statusBar(counts, total) {
  return el("div", { class: "bar" }, STATUSES.filter((s) => counts[s]).map((s) =>
    el("span", { class: "bg-" + s, style: { width: `${(100 * counts[s]) / Math.max(total, 1)}%` }, title: `${counts[s]} ${s}` })));
}

function renderOverview(doc) {
  renderBanner(doc.revision);
  const r = doc.revision;
  const cards = doc.maps.map((m) => el("a", { class: "card map-card", href: mapHref(m.name), "data-map": m.name },
    el("h3", { text: m.name }),
    el("p", { class: "desc", text: m.description || `version ${m.version || "—"}` }),
    statusBar(m.counts, m.components),
    el("div", { class: "counts" }, STATUSES.filter((s) => m.counts[s]).map((s) => pill(s, m.counts[s])),
      m.impacted ? el("span", { class: "pill", text: `${m.impacted} impacted` }) : null),
    el("p", { class: "muted", text: `${m.components} component(s)` })));
  const hosts = doc.hosts.length ? el("table", { class: "hosts" },
    el("tr", {}, el("th", { text: "Host" }), el("th", { text: "Reachable" })),
    doc.hosts.map((h) => el("tr", {}, el("td", { text: h.name }), el("td", { class: h.reachable ? "yes" : "no", text: h.reachable ? "yes" : "no" }))))
    : el("p", { class: "empty", text: "No hosts observed yet." });
  const audit = doc.audit; // null for a viewer limited by the policies: the operator's
  setView(
    el("h1", { text: "Maps" }),
    cards.length ? el("div", { class: "cards" }, cards) : el("p", { class: "empty", text: "No map to show." }),
    el("div", { class: "grid2" },
      el("section", {}, el("h2", { text: "Revision" }), el("dl", { class: "kv" },
        el("dt", { text: "Applied" }), el("dd", {}, el("code", { text: short(r.applied), title: r.applied || "" }), " ", el("span", { class: "muted", text: when(r.applied_at) })),
        el("dt", { text: "Attempted" }), el("dd", { class: r.rejected ? "no" : "" }, el("code", { text: short(r.attempted), title: r.attempted || "" }), r.rejected ? " rejected" : "", " ", el("span", { class: "muted", text: when(r.attempted_at) })),
        audit ? [el("dt", { text: "Audit delivery" }), el("dd", { class: audit.delivery_error ? "no" : "" },
          `${audit.pending} pending` + (audit.unstored ? `, ${audit.unstored} not stored yet` : ""),
          audit.delivery_error ? el("div", { text: "last error: " + audit.delivery_error }) : null)] : null)),
      el("section", {}, el("h2", { text: "Hosts" }), hosts)));
}

function renderMap(doc, route) {
  document.getElementById("banner").hidden = true;
  const old = document.querySelector(".graph");
  const scroll = old ? [old.scrollLeft, old.scrollTop] : null;
  const box = el("div", { class: "graph" }, drawGraph(doc, route.map));
  const zoom = (factor) => { state.zoom = Math.min(3, Math.max(0.2, state.zoom * factor)); renderMap(doc, route); };
  setView(
    el("p", { class: "crumbs" }, el("a", { href: "#/", text: "Overview" }), " / ", doc.name),
    el("h1", { text: doc.name }),
    doc.description ? el("p", { class: "muted", text: doc.description }) : null,
    el("div", { class: "toolbar" },
      el("div", { class: "counts" }, STATUSES.filter((s) => doc.counts[s]).map((s) => pill(s, doc.counts[s]))),
      el("button", { type: "button", text: "−", title: "zoom out", on: { click: () => zoom(1 / 1.25) } }),
      el("button", { type: "button", text: "+", title: "zoom in", on: { click: () => zoom(1.25) } }),
      el("div", { class: "legend" }, "Dependents above what they depend on · dashed: external · dark border and !: impacted by a failing dependency")),
    box);
  if (scroll) [box.scrollLeft, box.scrollTop] = scroll;
}

function drawGraph(doc, map) {
  const g = doc.graph, w = g.node_width, h = g.node_height;
  const byId = new Map(g.nodes.map((n) => [n.id, n]));
  const root = svg("svg", { width: Math.ceil(g.width * state.zoom), height: Math.ceil(g.height * state.zoom), viewBox: `0 0 ${g.width} ${g.height}`, role: "img", "aria-label": `dependency graph of ${map}` });
  root.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    svg("path", { d: "M0 0L10 5L0 10z", fill: "#94a3b8" }))));
  const edges = svg("g", { class: "edges" });
  for (const e of g.edges) {
    const a = byId.get(e.source), b = byId.get(e.target);
    if (!a || !b) continue;
    const x1 = a.x + w / 2, y1 = a.y + h, x2 = b.x + w / 2, y2 = b.y;
    const bend = Math.max(24, Math.abs(y2 - y1) / 2);
    const down = y2 >= y1 ? 1 : -1;
    const hot = a.impacted && (a.impacted_by.includes(b.id) || b.impacted);
    edges.append(svg("path", { class: "edge" + (hot ? " hot" : ""), "data-source": e.source, "data-target": e.target,
      d: `M${x1} ${y1}C${x1} ${y1 + down * bend} ${x2} ${y2 - down * bend} ${x2} ${y2}`, "marker-end": "url(#arrow)" }));
  }
  root.append(edges);
  const nodes = svg("g", { class: "nodes" });
  for (const n of g.nodes) {
    const cls = ["node", "status-" + n.status, n.external ? "external" : "", n.impacted ? "impacted" : ""].filter(Boolean).join(" ");
    const label = n.name || n.id;
    const title = `${label} (${n.id}): ${n.status}` + (n.external ? ", external" : "") + (n.impacted_by.length ? `, impacted by ${n.impacted_by.join(", ")}` : "");
    const node = svg("g", { class: cls, "data-id": n.id, "data-status": n.status, transform: `translate(${n.x} ${n.y})`, tabindex: n.external ? null : 0 },
      svg("title", { text: title }),
      svg("rect", { width: w, height: h, rx: 8 }),
      svg("text", { x: 12, y: 20, text: clip(label, 22) }),
      svg("text", { class: "sub", x: 12, y: 37, text: n.external ? "external" : `${n.status}` + (n.checks ? ` · ${n.ok_checks}/${n.checks} checks ok` : "") }));
    if (n.impacted) node.append(svg("circle", { class: "badge", cx: w - 2, cy: 2, r: 9 }), svg("text", { class: "badge-text", x: w - 2, y: 6, "text-anchor": "middle", text: "!" }));
    if (!n.external) {
      const open = () => { location.hash = componentHref(map, n.id); };
      node.addEventListener("click", open);
      node.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(); });
    }
    nodes.append(node);
  }
  root.append(nodes);
  return root;
}

function clip(text, max) { return text.length > max ? text.slice(0, max - 1) + "…" : text; }

function renderComponent(doc) {
  document.getElementById("banner").hidden = true;
  const links = (ids) => ids.length ? ids.map((id, i) => [i ? ", " : "", el("a", { href: componentHref(doc.map, id), text: id })]) : el("span", { class: "muted", text: "none" });
  const checks = doc.checks.length ? el("table", { class: "checks" },
    el("tr", {}, ["Check", "Host", "State", "Soft/hard", "Attempt", "Message", "Value", "Duration", "Last run", ""].map((t) => el("th", { text: t }))),
    doc.checks.map((c) => el("tr", { "data-check": c.name, "data-host": c.host },
      el("td", {}, el("strong", { text: c.name }), el("div", { class: "muted", text: c.type })),
      el("td", { text: c.host }),
      el("td", { class: "state " + statusClass(stateOf(c.state)), text: c.state }),
      el("td", { text: c.state_type === "soft" ? `soft (hard ${c.hard_state})` : c.state_type }),
      el("td", { text: `${c.attempt}/${c.max_attempts}` }),
      el("td", { class: "msg", text: c.message || "" }),
      el("td", { text: c.value === null ? "—" : String(c.value) }),
      el("td", { text: c.duration_s === null ? "—" : `${(c.duration_s * 1000).toFixed(0)} ms` }),
      el("td", { text: when(c.last_run) }),
      el("td", {}, c.flapping ? el("span", { class: "tag flap", text: "flapping" }) : null))))
    : el("p", { class: "empty", text: "No checks." });
  const actions = doc.actions.length ? doc.actions.map((a) => el("section", { class: "action", "data-action": a.name },
    el("header", {}, el("h3", { text: a.label || a.name }), a.label ? el("code", { class: "muted", text: a.name }) : null,
      a.confirmation_required ? el("span", { class: "tag", text: "needs a second approver" }) : null,
      a.may === null ? el("span", { class: "muted", text: "who may run it: decided when the request is merged" })
        : el("span", { class: a.may ? "yes may" : "no may", text: a.may ? "you may request it" : "you may not request it" }),
      a.rule ? el("span", { class: "muted rule", text: a.rule }) : null),
    a.description ? el("p", { class: "muted", text: a.description }) : null,
    el("div", { class: "grid2" },
      el("div", {}, el("div", { class: "muted", text: "Run in a clone of the map repo (add --branch NAME to commit it), then open a pull request:" }),
        el("pre", { class: "command", text: a.request.command })),
      el("div", {}, el("div", { class: "muted" }, "or add ", el("code", { text: a.request.path }), " in a pull request:"),
        el("pre", { class: "request-text", text: a.request.text }))),
    a.request.forge_url ? el("a", { class: "button forge", href: a.request.forge_url, target: "_blank", rel: "noopener noreferrer", text: "Open the request on the forge" }) : null))
    : el("p", { class: "empty", text: "No actions." });
  const history = doc.history.length ? el("table", { class: "history" },
    el("tr", {}, ["When", "What", "Who", "Detail", "Commit"].map((t) => el("th", { text: t }))),
    doc.history.map((h) => el("tr", {}, el("td", { text: when(h.timestamp) }), el("td", { text: h.action }), el("td", { text: h.actor }),
      el("td", { class: "msg", text: h.summary + (h.request ? ` (${h.request})` : "") }), el("td", {}, commitLink(h.commit, h.commit_url)))))
    : el("p", { class: "empty", text: "Nothing recorded since OpsMap started." });
  setView(
    el("p", { class: "crumbs" }, el("a", { href: "#/", text: "Overview" }), " / ", el("a", { href: mapHref(doc.map), text: doc.map }), " / ", doc.id),
    el("h1", {}, doc.name || doc.id, " ", el("span", { class: "status-big " + statusClass(doc.status), "data-status": doc.status, text: doc.status })),
    doc.description ? el("p", { class: "muted", text: doc.description }) : null,
    el("dl", { class: "kv" },
      el("dt", { text: "Id" }), el("dd", {}, el("code", { text: doc.id })),
      el("dt", { text: "Type" }), el("dd", { text: doc.type || "—" }),
      el("dt", { text: "Hosts" }), el("dd", { text: doc.hosts.join(", ") || "—" }),
      el("dt", { text: "Depends on" }), el("dd", {}, links(doc.dependencies)),
      el("dt", { text: "Needed by" }), el("dd", {}, links(doc.dependents)),
      el("dt", { text: "Impacted by" }), el("dd", { class: doc.impacted_by.length ? "no impacted-by" : "impacted-by" }, links(doc.impacted_by))),
    el("h2", { text: "Checks" }), checks,
    el("h2", { text: "Actions" }), actions,
    el("h2", { text: "Recent history" }), history);
}

function renderRequests(doc) {
  document.getElementById("banner").hidden = true;
  const person = (name, verified) => name ? [el("span", { text: name }), " ", el("span", { class: "tag", text: verified ? "verified" : "claimed" })] : el("span", { class: "muted", text: "—" });
  const rows = doc.requests.map((r) => el("tr", { "data-request": r.path },
    el("td", {}, el("code", { text: r.path }), el("div", { class: "muted", text: when(r.created_at) })),
    el("td", {}, r.map ? el("a", { href: r.component && r.component !== "*" ? componentHref(r.map, r.component) : mapHref(r.map), text: `${r.map}/${r.component}` }) : "—", r.action ? el("div", { class: "muted", text: r.action }) : null),
    el("td", {}, person(r.requester, r.requester_verified)),
    el("td", {}, person(r.approver, r.approver_verified)),
    el("td", { class: r.decision === "allow" ? "yes" : "no", text: r.decision }),
    el("td", { class: "msg", text: r.rule }),
    el("td", { class: "state " + statusClass({ succeeded: "ok", failed: "error", denied: "error", running: "starting" }[r.state] || "unknown"), text: r.state }),
    el("td", {}, r.hosts.length ? r.hosts.map((h) => el("div", { text: `${h.host}: ${h.result}` + (h.detail ? ` (${h.detail})` : "") })) : "—"),
    el("td", {}, commitLink(r.commit, r.commit_url))));
  setView(
    el("h1", { text: "Requests" }),
    el("p", { class: "muted", text: "Merged request files, newest first: judged against the policies as the branch stood before each merge." }),
    rows.length ? el("table", { class: "requests" },
      el("tr", {}, ["Request", "Target", "Requester", "Approver", "Decision", "Rule", "State", "Hosts", "Commit"].map((t) => el("th", { text: t }))), rows)
      : el("p", { class: "empty", text: "No request yet." }));
}

const RENDER = { overview: renderOverview, map: renderMap, component: renderComponent, requests: renderRequests };

window.addEventListener("hashchange", navigate);
document.addEventListener("DOMContentLoaded", () => { navigate(); connect(); });
