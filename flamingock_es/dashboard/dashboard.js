// The dashboard's script: polls the JSON API, builds the DOM with textContent only
// (never innerHTML): no value from the log is ever parsed as HTML.
"use strict";
const POLL = Number(document.body.dataset.pollMs) || 2000;
let selected = decodeURIComponent((location.hash.match(/^#tenant=(.*)$/) || [])[1] || "");
let legend = [];

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}
const token = (s) => String(s).replace(/[^A-Za-z0-9_-]/g, "_");
const badge = (prefix, value) => el("span", {class: `badge ${prefix}-${token(value)}`,
                                             text: String(value)});
const when = (iso) => iso ? new Date(iso).toLocaleString() : "-";
const who = (p) => p && p.principal ? (p.host ? `${p.principal} on ${p.host}` : p.principal)
                                    : "-";
function requester(r) {
  if (!r) return "-";
  const base = r.rollout_id ? `rollout ${r.rollout_id}` + (r.principal ? ` (started by ${r.principal})` : "")
                            : (r.principal || "-");
  return r.reason ? `${base}: ${r.reason}` : base;
}
function counts(map) {
  return Object.entries(map || {}).sort().map(([k, v]) => `${k} ${v}`).join(", ");
}
function facts(pairs) {
  const dl = el("dl", {class: "facts"});
  for (const [k, v] of pairs) dl.append(el("dt", {text: k}), el("dd", {}, v));
  return dl;
}
async function getJSON(path) {
  const response = await fetch(path, {credentials: "same-origin", cache: "no-store"});
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function renderNotices(target, notices) {
  target.replaceChildren(...notices.map(n => el("div", {class: `notice ${token(n.kind)}`},
    n.message, n.command ? ". Run: " : "", n.command ? el("code", {text: n.command}) : null)));
}

function renderRollouts(rollouts) {
  const list = document.getElementById("rollout-list");
  if (!rollouts.length) {
    list.replaceChildren(el("p", {class: "muted", text: "No rollout projected yet."}));
    return;
  }
  list.replaceChildren(...rollouts.map(r => {
    const waves = el("table", {class: "waves"}, el("tr", {},
      ...["wave", "tenants", "results", "budget: failed / allowed"].map(h => el("th", {text: h}))));
    for (const w of r.waves) {
      const over = w.failed > w.allowed;
      waves.append(el("tr", {"data-wave": String(w.wave)}, el("td", {text: w.label}),
        el("td", {text: String(w.tenants)}), el("td", {text: counts(w.counts)}),
        el("td", {class: over ? "budget over" : "budget",
                  text: `${w.failed} / ${w.allowed}` + (w.checked ? (w.exceeded ? " exceeded" : " checked") : "")})));
    }
    const state = r.result ? badge("o", r.result) : badge("o", r.status);
    return el("article", {class: "rollout", "data-rollout": r.rollout_id, "data-status": r.status},
      el("header", {}, el("h3", {}, el("code", {text: r.rollout_id})), badge("o", r.status),
         r.result ? state : null,
         el("span", {class: "muted", text: `${r.tenants} tenant(s): ${counts(r.counts)}`})),
      facts([["started", `${when(r.started_at)} by ${r.started_by}`],
             ["why", el("span", {class: "why", text: r.reason})],
             ["budget", el("span", {class: r.budget.failed > r.budget.allowed ? "budget over" : "budget",
                text: `${r.budget.failed} failed of ${r.budget.allowed} allowed (--max-failures ${r.max_failures})`})],
             ...(r.finished_at ? [["finished", when(r.finished_at)]] : []),
             ...(r.stop_reason ? [["stopped", r.stop_reason]] : [])]),
      waves,
      r.failed.length ? el("ul", {class: "failed"}, ...r.failed.map(f => el("li", {class: "error",
        text: `${f.tenant} (wave ${f.wave}): ${f.result}` + (f.error ? `: ${f.error}` : "")}))) : null);
  }));
}

function renderLegend() {
  document.getElementById("legend").replaceChildren(...legend.map(l => el("li", {},
    el("span", {class: `swatch s-${token(l.status)}`}), el("b", {text: l.status.replace(/_/g, " ")}),
    l.meaning.toLowerCase() === l.status.replace(/_/g, " ").toLowerCase() ? null : `: ${l.meaning}`)));
}

function renderGrid(data) {
  const grid = document.getElementById("grid");
  const head = el("tr", {}, el("th", {text: "tenant"}), el("th", {text: "rollout"}),
                  ...data.units.map(u => el("th", {text: u})));
  const rows = data.tenants.map(t => {
    const row = el("tr", {"data-tenant": t.tenant, class: t.tenant === selected ? "selected" : ""},
      el("th", {class: "tenant", tabindex: "0", text: t.tenant,
                onclick: () => select(t.tenant),
                onkeydown: (e) => { if (e.key === "Enter") select(t.tenant); }}),
      el("td", {}, t.rollout ? badge("o", t.rollout.result) : (t.lock_held ? badge("o", "RUNNING") : "")));
    for (const unit of data.units) {
      const cell = t.cells[unit];
      const status = cell ? cell.status : "PENDING";
      const running = cell && cell.running;
      row.append(el("td", {class: `cell s-${token(status)}` + (running ? " running" : ""),
                           "data-unit": unit, "data-status": status,
                           title: `${t.tenant} / ${unit}: ${status}` + (running ? " (running)" : ""),
                           text: running ? "RUNNING" : status.replace(/_/g, " ")}));
    }
    return row;
  });
  grid.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

function renderTenant(t) {
  const section = document.getElementById("tenant");
  section.hidden = false;
  document.getElementById("tenant-title").textContent = `Tenant ${t.tenant}`;
  const body = document.getElementById("tenant-body");
  const parts = [el("p", {class: "muted", text: `namespace ${t.namespace}`})];
  const notices = el("div", {});
  renderNotices(notices, t.notices);
  parts.push(notices);
  if (t.verification) {
    const v = t.verification;
    const signed = v.signed === "all" ? el("span", {class: "ok", text: `every event signed by a trusted key (through offset ${v.signed_through})`})
      : v.signed === "partly" ? el("span", {class: "bad", text: `signed through offset ${v.signed_through}; later events not yet`})
      : el("span", {class: "muted", text: "no trusted signature (signing or a trust store is not configured)"});
    parts.push(el("h3", {text: "Verification"}), facts([
      ["hash chain", v.chain_intact ? el("span", {class: "ok", text: `intact: ${v.events} event(s) through offset ${v.position}`})
                                    : el("span", {class: "bad", text: `${v.chain_breaks.length} break(s)`})],
      ["head", el("code", {text: v.head_hash})],
      ["signatures", signed],
      ["quarantined", v.quarantined.length ? `${v.quarantined.length} record(s)` : "none"],
      ["projection", v.stale ? el("span", {class: "bad", text: `stale before offset ${v.stale.position}`})
                             : `current up to offset ${v.position} (last event ${when(v.last_event_at)})`],
      ["lock", t.lock && t.lock.held ? `held by ${t.lock.holder} since ${when(t.lock.since)}` : "free"]]));
  }
  if (t.units.length) {
    const units = el("table", {class: "units"}, el("tr", {}, ...["unit", "status", "applied by",
      "applied at", "requested by", "last attempt by", "attempts", "parameters", "error"].map(h => el("th", {text: h}))));
    for (const u of t.units) {
      units.append(el("tr", {"data-unit": u.unit_id}, el("td", {}, el("code", {text: u.unit_id})),
        el("td", {}, badge("s", u.status)), el("td", {class: "applied", text: who(u.applied_by)}),
        el("td", {text: when(u.applied_at)}), el("td", {class: "requested", text: requester(u.requested_by)}),
        el("td", {text: who(u.last_by)}), el("td", {text: String(u.attempts ?? "-")}),
        el("td", {}, el("code", {class: "params", text: JSON.stringify(u.parameters)})),
        el("td", {class: "error", text: u.error ? `${u.error.type}: ${u.error.message}` : ""})));
    }
    parts.push(el("h3", {text: "Units"}), units);
  }
  const history = el("table", {class: "history"}, el("tr", {}, ...["when", "unit", "outcome",
    "requested by", "applied by", "run"].map(h => el("th", {text: h}))));
  for (const h of t.history) {
    history.append(el("tr", {"data-run": h.run_id, "data-unit": h.unit_id},
      el("td", {text: when(h.at)}), el("td", {}, el("code", {text: h.unit_id})),
      el("td", {}, badge("s", h.outcome),
         h.failed && h.outcome !== "FAILED" ? el("span", {class: "error", text: " (failed in this run)"}) : null),
      el("td", {class: "requested", text: requester(h.requested_by)}),
      el("td", {class: "applied", text: who(h.applied_by)}), el("td", {}, el("code", {text: h.run_id}))));
  }
  parts.push(el("h3", {text: "History"}), t.history.length ? history : el("p", {class: "muted", text: "No run yet."}));
  const runs = t.runs.filter(r => r.error);
  if (runs.length) parts.push(el("ul", {}, ...runs.map(r => el("li", {class: "error",
    text: `run ${r.run_id} ${r.outcome || ""}: ${r.error.type}: ${r.error.message}`}))));
  body.replaceChildren(...parts);
}

function select(tenant) {
  selected = tenant;
  history.replaceState(null, "", `#tenant=${encodeURIComponent(tenant)}`);
  for (const row of document.querySelectorAll("#grid tr[data-tenant]"))
    row.classList.toggle("selected", row.dataset.tenant === tenant);
  refreshTenant();
}

async function refreshTenant() {
  if (!selected) return;
  try {
    renderTenant(await getJSON(`api/tenants/${encodeURIComponent(selected)}`));
  } catch (error) {
    document.getElementById("tenant-body").replaceChildren(el("p", {class: "error", text: String(error)}));
  }
}

async function refresh() {
  try {
    const data = await getJSON("api/overview");
    legend = data.legend || legend;
    document.getElementById("workflow").textContent = data.workflow;
    document.getElementById("updated").textContent = `Updated ${when(data.generated_at)}.`;
    document.getElementById("live").hidden = !data.rollouts.some(r => r.status === "RUNNING");
    renderNotices(document.getElementById("notices"), data.notices);
    renderRollouts(data.rollouts);
    renderLegend();
    renderGrid(data);
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    await refreshTenant();
  } catch (error) {
    renderNotices(document.getElementById("notices"), [{kind: "stale", message: `cannot refresh: ${error}`}]);
  } finally {
    setTimeout(refresh, POLL);
  }
}
refresh();

