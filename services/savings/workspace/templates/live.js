// The workspace's live part: `savings.updated` over Server-Sent Events (/savings/stream, the same
// stream as the dashboard's). Headline figures and each partner's saving follow at once; on any
// other page a note offers a refresh. Nothing fetched from elsewhere.
"use strict";

const pounds = new Intl.NumberFormat("en-GB", { style: "currency", currency: "GBP", maximumFractionDigits: 0, minimumFractionDigits: 0 });

function money(text) {
  if (text === null || text === undefined) return "–";
  const value = Math.round(Number(text));
  const shown = pounds.format(Math.abs(value));
  return value < 0 ? "\u2212" + shown : shown;
}
function percent(ratio) { return ratio === null || ratio === undefined ? "–" : Math.round(Number(ratio) * 100) + "%"; }
function pick(data, path) { return path.split(".").reduce((x, k) => (x === null || x === undefined ? x : x[k]), data); }

function apply(data) {
  document.querySelectorAll("[data-live]").forEach(el => { el.textContent = money(pick(data, el.dataset.live)); });
  document.querySelectorAll("[data-live-pct]").forEach(el => { el.textContent = percent(pick(data, el.dataset.livePct)); });
  (data.partners || []).forEach(p => {
    const row = document.querySelector(`tr[data-partner="${CSS.escape(p.partner_id)}"]`);
    if (!row) return;
    row.querySelector(".saving").textContent = money(p.annual_saving);
    for (const key of ["realised_saving", "projected_saving", "baseline_annual_cost"]) {
      if (p[key] !== undefined) row.querySelector("." + key.replaceAll("_", "-")).textContent = money(p[key]);
    }
    // its share of the shared costs: its staff cost before less its annual saving, in pence
    if (p.baseline_annual_cost !== undefined) {
      const pence = Math.round(Number(p.baseline_annual_cost) * 100) - Math.round(Number(p.annual_saving) * 100);
      row.querySelector(".share").textContent = money(pence / 100);
    }
  });
}

function connect() {
  const status = document.getElementById("status");
  const source = new EventSource("/savings/stream");
  let first = true;
  source.onopen = () => { status.textContent = "Live"; status.className = "status live"; };
  source.addEventListener("savings.updated", msg => {
    const data = JSON.parse(msg.data).data;
    apply(data);
    if (!first) document.getElementById("stale").hidden = false;
    first = false;
  });
  source.addEventListener("reset", () => { document.getElementById("stale").hidden = false; });
  source.onerror = () => { status.textContent = "Disconnected: reconnecting…"; status.className = "status down"; };
}

document.addEventListener("DOMContentLoaded", connect);
