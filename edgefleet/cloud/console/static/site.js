// A site's page, the one site staff open: its boxes with state, last seen, GPU readings, apps and node state.
// Read from /api/v1/sites/{site} and its boxes; read again (at most once a second) when the event stream says
// one of its boxes changed, and the state badges follow the stream at once.
import { ago, api, bytes, fmt, h, onFleet, t } from "./app.js";

const REFRESH_MS = 1000;

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

  function draw() {
    if (error) {
      main.replaceChildren(h("p", { class: "error" }, t("error.load", { what: siteId, message: error })));
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
        h("td", {}, (box.latest?.apps?.apps ?? []).map((a) => h("div", {}, `${a.name} ${a.version} (${a.state})`))),
        h("td", {}, box.node.state),
      ),
    );
    main.replaceChildren(
      h("h1", {}, `${t("site.title")} ${site.display_name} `, h("span", { class: "muted" }, site.id)),
      h("dl", { class: "facts" },
        h("dt", {}, t("site.region")), h("dd", {}, site.region),
        h("dt", {}, t("site.kind")), h("dd", {}, t(`kind.${site.kind}`)),
        h("dt", {}, t("site.cluster")), h("dd", {}, site.cluster),
        h("dt", {}, t("site.health")), h("dd", { "data-health": site.health }, t(`health.${site.health}`)),
      ),
      h("h2", {}, t("site.boxes")),
      h("div", { class: "scroll" }, h("table", { id: "boxes" },
        h("thead", {}, h("tr", {}, ["col.box", "col.role", "col.state", "col.last_seen", "col.gpu_util", "col.gpu_temp",
          "col.gpu_memory", "col.apps", "col.node"].map((k) => h("th", {}, t(k))))),
        h("tbody", {}, rows),
      )),
    );
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
  load();
  return { redraw: draw };
}
