// A box's page: what the inventory says of it, its reachability and node, charts of its last hours (GPU
// temperature and utilisation, from the stored history), its alerts, and its latest heartbeat in full.
// Read again when the event stream says the box changed; the alerts when it says alerts changed; the charts every
// minute. The history holds readings, not app versions: the apps are the latest heartbeat's.
import { ago, api, bytes, fill, fmt, h, onActivity, onFleet, t } from "./app.js";
import { alertsTable } from "./alerts.js";
import { badge, gpuCharts, HISTORY_S, stateOf } from "./site.js";

const REFRESH_MS = 1000;
const CHARTS_EVERY_MS = 60_000;
const ALERTS_SHOWN = 20;

function table(heads, rows, id = null) {
  return h("div", { class: "scroll" }, h("table", { id },
    h("thead", {}, h("tr", {}, heads.map((k) => h("th", {}, t(k))))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
  ));
}

export function mountBox(main, boxId) {
  let box = null, error = null, cells = {}, timer = null;
  let alerts = [], history = null, notice = null;
  const alertsBox = h("div", { id: "box-alerts" }), chartsBox = h("div", { id: "box-charts" });

  function drawAlerts() {
    fill(alertsBox, 
      notice ? h("p", { class: "error" }, notice) : "",
      alertsTable(alerts, { changed: loadAlerts, failed: (m) => { notice = m; drawAlerts(); } }),
    );
  }

  function drawCharts() {
    // A gap of a few missed heartbeats breaks the line: the box was silent then.
    if (history) fill(chartsBox, gpuCharts(history.points, 3 * 1000 * (history.interval_s ?? 10)));
  }

  async function loadAlerts() {
    try {
      const site = box?.site;
      if (!site) return;
      const found = await api(`/api/v1/alerts?site=${encodeURIComponent(site)}&limit=200`);
      alerts = found.filter((a) => a.box === boxId).slice(0, ALERTS_SHOWN);
      drawAlerts();
    } catch (e) {
      fill(alertsBox, h("p", { class: "muted" }, e.message));
    }
  }

  async function loadCharts() {
    try {
      const long = await api(`/api/v1/boxes/${encodeURIComponent(boxId)}?history_s=${HISTORY_S}`);
      history = { points: long.history, interval_s: null };
      drawCharts();
    } catch (e) {
      fill(chartsBox, h("p", { class: "muted" }, e.message));
    }
  }

  function draw() {
    if (error) {
      fill(main, h("p", { class: "error" }, t("error.load", { what: boxId, message: error })));
      return;
    }
    if (!box) return;
    const beat = box.latest;
    const facts = [
      ["box.site", h("a", { href: `/sites/${encodeURIComponent(box.site)}` }, box.site)],
      ["col.state", badge(stateOf(box, cells))],
      ["box.reachability", `${t(`reach.${box.reachability.state}`)} (${box.reachability.reason})`],
      ["col.last_seen", ago(box.last_seen_age_s)],
      ["box.node", `${box.node.name}: ${t(`node.${box.node.state}`)} (${box.node.reason})`],
      ["box.model", box.model ?? "—"],
      ["box.agent", box.agent_version ?? "—"],
      ["box.boot", box.boot ?? "—"],
      ["box.clock_skew", fmt(box.clock_skew_s, " s", 2)],
    ];
    const parts = [
      h("h1", {}, `${t("box.title")} ${box.id}`),
      h("dl", { class: "facts", id: "facts" }, facts.flatMap(([k, v]) => [h("dt", {}, t(k)), h("dd", { "data-fact": k }, v)])),
      h("h2", {}, t("site.charts", { hours: HISTORY_S / 3600 })),
      chartsBox,
      h("h2", {}, t("site.alerts")),
      alertsBox,
      h("h2", {}, t("box.heartbeat")),
    ];
    if (!beat) {
      parts.push(h("p", { class: "muted" }, t("box.no_heartbeat")));
    } else {
      const host = beat.host;
      parts.push(
        h("dl", { class: "facts" },
          h("dt", {}, t("box.sent_at")), h("dd", {}, new Date(beat.sent_at).toLocaleString()),
          h("dt", {}, t("box.uptime")), h("dd", {}, fmt(beat.uptime_s / 3600, " h", 1)),
        ),
        h("h2", {}, t("box.host")),
        table(["host.cpu", "host.load", "host.memory", "host.disk"], [[
          fmt(host.cpu_percent, " %"),
          [host.load1, host.load5, host.load15].map((l) => fmt(l, "", 2)).join(" / "),
          `${bytes(host.memory_available_bytes)} / ${bytes(host.memory_total_bytes)}`,
          `${bytes(host.disk_free_bytes)} / ${bytes(host.disk_total_bytes)} (${host.disk_path})`,
        ]]),
        h("h2", {}, t("box.gpus")),
        beat.gpu.available
          ? table(["gpu.name", "gpu.util", "gpu.temp", "gpu.memory", "gpu.power"], beat.gpu.gpus.map((g) => [
              `${g.index}: ${g.name}`, fmt(g.utilization_percent, " %"), fmt(g.temperature_c, " °C"),
              `${bytes(g.memory_used_bytes)} / ${bytes(g.memory_total_bytes)}`, fmt(g.power_w, " W"),
            ]), "gpus")
          : h("p", { class: "muted" }, beat.gpu.reason ?? "—"),
        h("h2", {}, t("box.apps")),
        table(["app.name", "app.version", "app.state", "app.detail"], beat.apps.apps.map((a) => [a.name, a.version, t(`app_state.${a.state}`), a.detail ?? ""])),
        h("details", {}, h("summary", {}, t("box.raw")), h("pre", {}, JSON.stringify(beat, null, 2))),
      );
    }
    fill(main, ...parts);
    drawAlerts();
    drawCharts();
    document.body.dataset.ready = "box";
  }

  async function load() {
    timer = null;
    try {
      box = await api(`/api/v1/boxes/${encodeURIComponent(boxId)}?history_s=60`);
      error = null;
    } catch (e) {
      error = e.message;
    }
    draw();
  }

  onFleet((kind, body) => {
    const cell = body.cells[boxId];
    if (!cell) return;
    cells[boxId] = cell;
    if (kind === "changes" && timer === null) timer = setTimeout(load, REFRESH_MS);
    else if (box) draw();
  });
  onActivity((what) => {
    if (what === "alerts") loadAlerts();
  });
  load().then(() => Promise.all([loadAlerts(), loadCharts()]));
  setInterval(loadCharts, CHARTS_EVERY_MS);
  return { redraw: draw };
}
