// The live savings page: JSON once, then Server-Sent Events applied to it. No dependencies, nothing fetched
// from elsewhere. Money as UK public-sector reports show it (£317,648; −£1,234), dates as
// 1 April 2013.
"use strict";

const pounds = new Intl.NumberFormat("en-GB", { style: "currency", currency: "GBP", maximumFractionDigits: 0, minimumFractionDigits: 0 });
const longDate = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "long", year: "numeric", timeZone: "UTC" });

function money(text) {
  if (text === null || text === undefined) return "–";
  const value = Math.round(Number(text));
  const shown = pounds.format(Math.abs(value));
  return value < 0 ? "\u2212" + shown : shown;
}
function day(iso) { return iso ? longDate.format(new Date(iso + "T00:00:00Z")) : "–"; }
function percent(ratio) { return ratio === null || ratio === undefined ? "–" : Math.round(Number(ratio) * 100) + "%"; }
function text(id, value) { document.getElementById(id).textContent = value; }
function cell(row, value, cls) { const td = row.insertCell(); td.textContent = value; if (cls) td.className = cls; return td; }

function rag(contract) {
  if (contract.status === "decommissioned") return ["red", "Red"];
  if (contract.status === "ended") return ["grey", "Ended"];
  return Number(contract.annual_saving) > 0 ? ["green", "Green"] : ["amber", "Amber"];
}

function chart(years) {
  const box = document.getElementById("chart");
  const width = 640, height = 240, pad = 34, top = 16;
  const max = Math.max(1, ...years.map(y => Number(y.saving)));
  const step = years.length ? (width - pad) / years.length : 0;
  const bars = years.map((y, i) => {
    const h = Math.max(0, Number(y.saving)) / max * (height - pad - top);
    const x = pad + i * step + step * 0.15, w = step * 0.7, yTop = height - pad - h;
    return `<rect class="bar" x="${x}" y="${yTop}" width="${w}" height="${h}"></rect>` +
      `<text x="${x + w / 2}" y="${yTop - 4}" text-anchor="middle">${money(y.saving)}</text>` +
      `<text x="${x + w / 2}" y="${height - pad + 16}" text-anchor="middle">Year ${y.year}</text>`;
  }).join("");
  const label = years.map(y => `Year ${y.year}: ${money(y.saving)}`).join("; ");
  box.innerHTML = `<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="Savings by year. ${label}">` +
    `<line x1="${pad}" y1="${height - pad}" x2="${width}" y2="${height - pad}" stroke="#0b0c0c"></line>${bars}</svg>`;
  const body = document.querySelector("#years-table tbody");
  body.replaceChildren();
  for (const y of years) { const r = body.insertRow(); cell(r, "Year " + y.year); cell(r, day(y.from)); cell(r, money(y.saving)); }
}

function render(data) {
  const p = data.portfolio;
  text("as-of", day(data.as_of));
  text("annual-saving", money(p.annual_saving));
  text("realised", money(p.realised_saving));
  text("projected", money(p.projected_saving));
  text("investment", money(p.investment));
  text("roi", percent(p.roi));
  text("payback", day(p.payback_date));
  chart(data.years || []);
  const partners = document.querySelector("#partners tbody");
  partners.replaceChildren();
  for (const x of data.partners) {
    const r = partners.insertRow();
    cell(r, names[x.partner_id] || x.partner_id); cell(r, money(x.annual_saving), "num"); cell(r, money(x.projected_saving), "num");
  }
}

// The contracts table keeps one row per contract, by id: an update redraws only the rows it
// carries, so a page with thousands of contracts follows updates as quickly as one with three.
const contractRows = new Map();

function fillContract(r, c) {
  r.replaceChildren();
  cell(r, c.contract_id); cell(r, c.supplier || "–"); cell(r, c.partners ?? "–", "num");
  cell(r, money(c.annual_saving), "num"); cell(r, c.status);
  const [cls, label] = rag(c);
  const span = document.createElement("span"); span.className = "rag " + cls; span.textContent = label;
  r.insertCell().appendChild(span);
}

function position(id) {  // where id is, or would go, in the sorted state.contracts
  let lo = 0, hi = state.contracts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (state.contracts[mid].contract_id < id) lo = mid + 1; else hi = mid;
  }
  return lo;
}

function showContracts(ids, removed) {
  const body = document.querySelector("#contracts tbody");
  for (const id of removed) { contractRows.get(id)?.remove(); contractRows.delete(id); }
  for (const id of [...ids].sort().reverse()) {  // last first: a new row goes before the next one
    const i = position(id);
    let r = contractRows.get(id);
    if (!r) {
      r = document.createElement("tr");
      const next = state.contracts[i + 1] && contractRows.get(state.contracts[i + 1].contract_id);
      body.insertBefore(r, next || null);
      contractRows.set(id, r);
    }
    fillContract(r, state.contracts[i]);
  }
}

function showAll() {
  document.querySelector("#contracts tbody").replaceChildren();
  contractRows.clear();
  render(state);
  showContracts(state.contracts.map(c => c.contract_id), []);
}

async function recent() {
  try {
    const res = await fetch("/events/recent?limit=12", { cache: "no-store" });
    if (!res.ok) return;
    const list = document.getElementById("events");
    list.replaceChildren();
    for (const e of (await res.json()).events) {
      const li = document.createElement("li");
      const when = document.createElement("time");
      when.textContent = e.time ? new Date(e.time).toLocaleString("en-GB") + ": " : "";
      li.append(when, `${e.type} ${e.subject ? "(" + e.subject + ")" : ""} from ${e.source}`);
      list.appendChild(li);
    }
  } catch (_) { /* the list is a convenience; the figures come from the stream */ }
}

function status(live) {
  const el = document.getElementById("status");
  el.textContent = live ? "Live" : "Disconnected: reconnecting…";
  el.className = "status " + (live ? "live" : "down");
}

// The figures shown: the whole projection from GET /savings, then each savings.updated applied
// to it. An update carries the summary complete and only the contracts that changed.
let state = null;
let source = null;
// partners' names from the registry (GET /workspace/partners.json); ids where it is not served
let names = {};

// code-unit order, as the service sorts ids (not the locale's)
const byId = (a, b) => (a.contract_id < b.contract_id ? -1 : a.contract_id > b.contract_id ? 1 : 0);

function apply(update) {
  for (const key of Object.keys(update)) {
    if (key !== "contracts" && key !== "contracts_removed") state[key] = update[key];
  }
  const at = new Map(state.contracts.map((c, i) => [c.contract_id, i]));
  let added = false;
  for (const c of update.contracts || []) {
    if (at.has(c.contract_id)) Object.assign(state.contracts[at.get(c.contract_id)], c);
    else { state.contracts.push({ ...c }); added = true; }
  }
  const removed = new Set(update.contracts_removed || []);
  if (removed.size) state.contracts = state.contracts.filter(c => !removed.has(c.contract_id));
  if (added) state.contracts.sort(byId);
  render(state);
  showContracts((update.contracts || []).map(c => c.contract_id), removed);
}

async function start() {
  if (source) source.close();
  let after = "0-0";  // no update yet: every update kept applies
  try {
    const known = await fetch("/workspace/partners.json", { cache: "no-store" });
    if (known.ok) names = await known.json();
  } catch (_) { /* names are a convenience: ids are shown */ }
  try {
    const res = await fetch("/savings", { cache: "no-store" });
    if (!res.ok) throw new Error(res.status);
    state = await res.json();
    after = res.headers.get("Savings-Update-Id") || after;
    showAll();
  } catch (_) { status(false); setTimeout(start, 2000); return; }
  recent();
  // the updates after the one these figures were published as; EventSource reconnects by
  // itself, sending Last-Event-ID
  source = new EventSource("/savings/stream?after=" + encodeURIComponent(after));
  source.onopen = () => status(true);
  source.onerror = () => status(false);
  source.addEventListener("savings.updated", (msg) => {
    status(true);
    apply(JSON.parse(msg.data).data);
    recent();
  });
  source.addEventListener("reset", () => start());  // what it missed was trimmed: start again
}

start();
