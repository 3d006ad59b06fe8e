// The versions matrix: apps by sites, which version runs where (from each box's latest heartbeat). A site with
// mixed versions, or lagging behind the app's newest (the active rollout's target), is highlighted; the active
// rollout's waves are marked, the wave under way most. Read from /api/v1/versions; read again when the event
// stream says boxes changed (a new version reported) or the rollouts changed.
import { api, fill, h, onActivity, onFleet, t } from "./app.js";

const REFRESH_MS = 1000;

export function mountVersions(main) {
  let matrix = null, error = null, timer = null;

  function draw() {
    if (error) {
      fill(main, h("p", { class: "error" }, t("error.load", { what: "versions", message: error })));
      return;
    }
    if (!matrix) return;
    const head = h("tr", {}, h("th", {}, t("col.app")),
      matrix.sites.map((s) => h("th", { "data-site": s.id }, h("a", { href: `/sites/${encodeURIComponent(s.id)}` }, s.id))));
    const rows = matrix.apps.map((row) =>
      h("tr", { "data-app": row.app },
        h("th", {},
          h("div", {}, row.app),
          h("div", { class: "muted" }, t("versions.newest", { version: row.newest })),
          row.rollout ? h("a", { href: `/rollouts/${encodeURIComponent(row.rollout)}`, class: "rollout-link" },
            t("versions.rollout", { id: row.rollout, wave: row.current_wave ?? "—" })) : null,
        ),
        row.cells.map((cell, i) => {
          if (!cell) return h("td", { class: "absent", "data-site": matrix.sites[i].id }, "—");
          const classes = ["version", cell.mixed && "mixed", cell.lagging && "lagging", cell.in_current_wave && "current-wave"].filter(Boolean);
          return h("td", {
            class: classes.join(" "), "data-site": cell.site, "data-mixed": String(cell.mixed), "data-lagging": String(cell.lagging),
            "data-wave": cell.wave ?? null, title: cell.versions.map(([v, n]) => t("versions.boxes", { version: v, n })).join("\n"),
          },
            cell.versions.map(([v, n]) => h("div", {}, cell.versions.length > 1 ? `${v} ×${n}` : v)),
            cell.wave !== null ? h("span", { class: "wave" }, cell.wave === 0 ? t("versions.canary") : t("versions.wave", { n: cell.wave })) : null,
          );
        }),
      ),
    );
    fill(main, 
      h("h1", {}, t("versions.title")),
      h("div", { class: "legend" },
        h("span", {}, h("i", { class: "v-mixed" }), t("versions.legend_mixed")),
        h("span", {}, h("i", { class: "v-lagging" }), t("versions.legend_lagging")),
        h("span", {}, h("i", { class: "v-wave" }), t("versions.legend_wave")),
      ),
      h("div", { class: "scroll" }, h("table", { id: "versions", class: "matrix" }, h("thead", {}, head), h("tbody", {}, rows))),
    );
    if (!document.body.dataset.ready) performance.mark("versions-drawn"); // bench/console.py reads it
    document.body.dataset.ready = "versions";
  }

  async function load() {
    timer = null;
    try {
      matrix = await api("/api/v1/versions");
      error = null;
    } catch (e) {
      error = e.message;
    }
    draw();
  }

  const later = () => { if (timer === null) timer = setTimeout(load, REFRESH_MS); };
  // A cell's apps ("name version, ...") changed: a box reports another version. Other changes (state, readings)
  // leave the matrix as it is.
  const apps = {};
  onFleet((kind, body) => {
    let moved = false;
    for (const [box, cell] of Object.entries(body.cells)) {
      if (kind === "changes" && apps[box] !== cell[4]) moved = true;
      apps[box] = cell[4];
    }
    if (moved) later();
  });
  onActivity((what) => { if (what === "rollouts") later(); });
  load();
  return { redraw: draw };
}
