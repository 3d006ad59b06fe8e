// A site's page, the one site staff open: its boxes with state, last seen, GPU readings, apps and node state; its
// hold (hold with a reason, release), its recent alerts, and charts of the last hours of GPU temperature and
// utilisation. Read from /api/v1/sites/{site} and its boxes; read again (at most once a second) when the event
// stream says one of its boxes changed, and the state badges follow the stream at once. The alerts are read again
// when the stream says alerts changed; the charts every minute (a step of the history is a minute at least).
import { ago, api, bytes, fill, fmt, h, onActivity, onFleet, send, t, when } from "./app.js";
import { alertsTable } from "./alerts.js";
import { lineChart } from "./charts.js";

const REFRESH_MS = 1000;
const CHARTS_EVERY_MS = 60_000;
const ALERTS_SHOWN = 20;
export const HISTORY_S = 3 * 3600;

/** The site's hold: the hold, null when the site is not held, undefined when it cannot be known (rollouts do not
 * run here, or the store is away): then the page offers no button. */
async function readHold(siteId) {
  const response = await fetch(`/api/v1/sites/${encodeURIComponent(siteId)}/hold`, { headers: { Accept: "application/json" } });
  if (response.status === 404) return null;
  return response.ok ? response.json() : undefined;
}

/** The two charts of a series of points ({at, gpu_temperature_max_c, gpu_utilization_avg_percent}). */
export function gpuCharts(points, gapMs) {
  const series = (field) => points.map((p) => ({ at: Date.parse(p.at), value: p[field] }));
  return h("div", { class: "charts" },
    lineChart({ id: "temperature", title: t("chart.temperature"), unit: " °C", low: 30, high: 90, gap: gapMs,
      colour: "var(--lost)", points: series("gpu_temperature_max_c") }),
    lineChart({ id: "utilization", title: t("chart.utilization"), unit: " %", low: 0, high: 100, gap: gapMs,
      points: series("gpu_utilization_avg_percent") }),
  );
}

function gpuMemory(box) {
  const gpus = box.latest?.gpu?.gpus ?? [];
  const used = gpus.reduce((sum, g) => sum + (g.memory_used_bytes ?? 0), 0);
  const total = gpus.reduce((sum, g) => sum + (g.memory_total_bytes ?? 0), 0);
  return total ? `${bytes(used)} / ${bytes(total)}` : "—";
}

export function stateOf(box, cells) {
  const cell = cells[box.id];
  if (cell) return cell[1];
  return box.reachability.state === "online" ? "online" : box.reachability.state === "never-seen" ? "never-seen" : "lost";
}

export function badge(state) {
  return h("span", { class: `badge s-${state}`, "data-state": state }, t(`state.${state}`));
}

export function mountSite(main, siteId) {
  let site = null, boxes = [], error = null, cells = {}, timer = null;
  let hold = undefined, alerts = [], history = null, notice = null;
  const holdBox = h("div", { id: "hold" }), alertsBox = h("div", { id: "site-alerts" }), chartsBox = h("div", { id: "site-charts" });

  function drawHold() {
    if (hold === undefined) return fill(holdBox);
    fill(holdBox, 
      hold
        ? h("p", { class: "held", "data-held": "true" }, t("hold.held", { reason: hold.reason, by: hold.by, since: when(hold.since) }), " ",
            h("button", { "data-action": "release", onclick: release }, t("hold.release")))
        : h("p", { "data-held": "false" }, h("button", { "data-action": "hold", onclick: holdSite }, t("hold.hold")), " ",
            h("span", { class: "muted" }, t("hold.help"))),
      notice ? h("p", { class: "error" }, notice) : null,
    );
  }

  async function act(action) {
    try {
      await action();
      notice = null;
    } catch (e) {
      notice = e.message;
    }
    hold = await readHold(siteId);
    drawHold();
  }

  function holdSite() {
    const reason = prompt(t("hold.reason"), "");
    if (reason === null || !reason.trim()) return;
    act(() => send("POST", `/api/v1/sites/${encodeURIComponent(siteId)}/hold`, { reason: reason.trim() }));
  }

  function release() {
    if (!confirm(t("hold.confirm_release", { site: siteId }))) return;
    act(() => send("DELETE", `/api/v1/sites/${encodeURIComponent(siteId)}/hold`));
  }

  function drawAlerts() {
    fill(alertsBox, alertsTable(alerts, { changed: loadAlerts, failed: (m) => { notice = m; drawHold(); } }));
  }

  function drawCharts() {
    if (history) fill(chartsBox, gpuCharts(history.points, 2.5 * history.step_s * 1000));
  }

  async function loadAlerts() {
    try {
      alerts = await api(`/api/v1/alerts?site=${encodeURIComponent(siteId)}&limit=${ALERTS_SHOWN}`);
    } catch (e) {
      alerts = [];
      fill(alertsBox, h("p", { class: "muted" }, e.message));
      return;
    }
    drawAlerts();
  }

  async function loadCharts() {
    try {
      history = await api(`/api/v1/sites/${encodeURIComponent(siteId)}/history?history_s=${HISTORY_S}`);
      drawCharts();
    } catch (e) {
      fill(chartsBox, h("p", { class: "muted" }, e.message));
    }
  }

  function draw() {
    if (error) {
      fill(main, h("p", { class: "error" }, t("error.load", { what: siteId, message: error })));
      return;
    }
    if (!site) return;
    const rows = boxes.map((box) =>
      h("tr", { "data-box": box.id },
        h("td", {}, h("a", { href: `/boxes/${encodeURIComponent(box.id)}` }, box.id)),
        h("td", {}, box.role),
        h("td", { class: "state" }, badge(stateOf(box, cells))),
        h("td", {}, ago(box.last_seen_age_s)),
        h("td", {}, fmt(box.gpu_utilization_avg_percent, " %")),
        h("td", {}, fmt(box.gpu_temperature_max_c, " °C")),
        h("td", {}, gpuMemory(box)),
        h("td", {}, (box.latest?.apps?.apps ?? []).map((a) => h("div", {}, `${a.name} ${a.version} (${t(`app_state.${a.state}`)})`))),
        h("td", { "data-node": box.node.state }, t(`node.${box.node.state}`)),
      ),
    );
    fill(main, 
      h("h1", {}, `${t("site.title")} ${site.display_name} `, h("span", { class: "muted" }, site.id)),
      h("dl", { class: "facts" },
        h("dt", {}, t("site.region")), h("dd", {}, site.region),
        h("dt", {}, t("site.kind")), h("dd", {}, t(`kind.${site.kind}`)),
        h("dt", {}, t("site.cluster")), h("dd", {}, site.cluster ? h("a", { href: `/clusters/${encodeURIComponent(site.cluster)}` }, site.cluster) : "—"),
        h("dt", {}, t("site.health")), h("dd", { "data-health": site.health }, t(`health.${site.health}`)),
      ),
      holdBox,
      h("h2", {}, t("site.charts", { hours: HISTORY_S / 3600 })),
      chartsBox,
      h("h2", {}, t("site.alerts")),
      alertsBox,
      h("h2", {}, t("site.boxes")),
      h("div", { class: "scroll" }, h("table", { id: "boxes" },
        h("thead", {}, h("tr", {}, ["col.box", "col.role", "col.state", "col.last_seen", "col.gpu_util", "col.gpu_temp",
          "col.gpu_memory", "col.apps", "col.node"].map((k) => h("th", {}, t(k))))),
        h("tbody", {}, rows),
      )),
    );
    drawHold();
    drawAlerts();
    drawCharts();
    document.body.dataset.ready = "site";
  }

  async function load() {
    timer = null;
    try {
      const base = `/api/v1/sites/${encodeURIComponent(siteId)}`;
      [site, boxes] = await Promise.all([api(base), api(`${base}/boxes`)]);
      error = null;
    } catch (e) {
      error = e.message;
    }
    draw();
  }

  onFleet((kind, body) => {
    let ours = false;
    for (const [box, cell] of Object.entries(body.cells)) {
      if (cell[0] !== siteId) continue;
      cells[box] = cell;
      ours = true;
      const td = main.querySelector(`tr[data-box="${CSS.escape(box)}"] td.state`);
      td?.replaceChildren(badge(cell[1]));
    }
    if (ours && kind === "changes" && timer === null) timer = setTimeout(load, REFRESH_MS);
  });
  onActivity((what) => {
    if (what === "alerts") loadAlerts();
    if (what === "rollouts") readHold(siteId).then((found) => { hold = found; drawHold(); });
  });
  // The page's first draw waits for the hold, alerts and charts too: no button appears late under a finger.
  Promise.all([readHold(siteId).then((found) => { hold = found; }), loadAlerts(), loadCharts()]).then(load);
  setInterval(loadCharts, CHARTS_EVERY_MS);
  return { redraw: draw };
}
