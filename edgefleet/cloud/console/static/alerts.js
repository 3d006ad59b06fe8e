// The alerts page: firing, acknowledged and resolved alerts, muted ones folded under what mutes them (a silence,
// the site alert that inhibits them); acknowledge and silence from the page (silence after a confirmation).
// Read from /api/v1/alerts and /api/v1/silences; read again when the event stream says the alerts changed.
// `alertsTable` is the compact list the site and box pages show.
import { api, fill, h, onActivity, send, t, when } from "./app.js";

// Newest first; a page of alerts this long holds every active one of a fleet on a normal day, and the latest
// resolved. More are a filter away in the API (and the CLI).
const LIMIT = 200;
const RESOLVED_SHOWN = 30;
const REFRESH_MS = 300;

// Who acts is who signed in (the controller records the caller); no body names it.
export async function acknowledge(alert) {
  await send("POST", `/api/v1/alerts/${encodeURIComponent(alert.id)}/ack`, {});
  return true;
}

/** Silence what the alert is about (its box, else its site) for its kind, for a duration and a reason asked here,
 * after a confirmation that names what will be muted. */
export async function silence(alert) {
  const target = alert.box ?? alert.site;
  const duration = prompt(t("alerts.silence_duration", { target, kind: alert.kind }), "2h");
  if (duration === null || !duration.trim()) return false;
  const comment = prompt(t("alerts.silence_comment"), "");
  if (comment === null || !comment.trim()) return false;
  if (!confirm(t("alerts.silence_confirm", { target, kind: alert.kind, duration: duration.trim() }))) return false;
  const matcher = alert.box ? { box: alert.box } : { site: alert.site };
  await send("POST", "/api/v1/silences", { ...matcher, kind: alert.kind, duration: duration.trim(), comment: comment.trim() });
  return true;
}

function place(alert) {
  return [
    h("a", { href: `/sites/${encodeURIComponent(alert.site)}` }, alert.site),
    alert.box ? [" / ", h("a", { href: `/boxes/${encodeURIComponent(alert.box)}` }, alert.box)] : null,
    alert.detail ? ` (${alert.detail})` : null,
  ];
}

/** A table of alerts with their actions; `changed()` is called after an action succeeded, `failed(message)` when
 * the API refused it. */
export function alertsTable(alerts, { changed, failed, id }) {
  const act = (action, alert) => async () => {
    try {
      if (await action(alert)) changed();
    } catch (e) {
      failed(e.message);
    }
  };
  const rows = alerts.map((a) =>
    h("tr", { "data-alert": a.id, "data-state": a.state, class: `sev-${a.severity}` },
      h("td", {}, h("span", { class: `badge a-${a.state}` }, t(`alert.${a.state}`))),
      h("td", {}, a.kind),
      h("td", {}, place(a)),
      h("td", {}, a.summary),
      h("td", {}, when(a.fired_at)),
      h("td", {}, a.state === "acknowledged" ? t("alerts.by", { who: a.acknowledged_by }) : a.state === "resolved" ? when(a.resolved_at) : ""),
      h("td", { class: "actions" },
        a.state === "firing" ? h("button", { "data-action": "ack", onclick: act(acknowledge, a) }, t("alerts.ack")) : null,
        a.state !== "resolved" && !a.muted ? h("button", { "data-action": "silence", onclick: act(silence, a) }, t("alerts.silence")) : null,
      ),
    ),
  );
  return h("div", { class: "scroll" }, h("table", { class: "alerts", id },
    h("thead", {}, h("tr", {}, ["col.alert_state", "col.kind", "col.where", "col.summary", "col.fired", "col.since", ""].map((k) => h("th", {}, k ? t(k) : "")))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "muted" }, t("alerts.none")))),
  ));
}

export function mountAlerts(main) {
  let alerts = null, silences = [], error = null, notice = null, timer = null;

  function draw() {
    if (alerts === null && !error) return;
    const active = (alerts ?? []).filter((a) => a.state !== "resolved");
    const firing = active.filter((a) => a.state === "firing" && !a.muted);
    const acknowledged = active.filter((a) => a.state === "acknowledged" && !a.muted);
    const muted = active.filter((a) => a.muted);
    const resolved = (alerts ?? []).filter((a) => a.state === "resolved").slice(0, RESOLVED_SHOWN);
    const bySilence = Object.fromEntries(silences.map((s) => [s.id, s]));
    // Folded under what mutes them: one group per silence or inhibiting alert, in the order first met.
    const groups = new Map();
    for (const a of muted) {
      const key = (a.muted_by.length ? a.muted_by : [a.muted]).join(", ");
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(a);
    }
    const muter = (key, list) => {
      const silenced = list[0].muted === "silenced";
      const s = silenced ? bySilence[list[0].muted_by[0]] : null;
      const what = s ? t("alerts.silence_by", { id: s.id, who: s.created_by, comment: s.comment, until: when(s.ends_at) })
        : silenced ? t("alerts.silenced", { by: key }) : t("alerts.inhibited", { by: key });
      return h("details", { class: "muted-group", "data-muted-by": key },
        h("summary", {}, `${what} — ${t("alerts.count", { n: list.length })}`),
        alertsTable(list, handlers),
      );
    };
    const handlers = { changed: load, failed: (m) => { notice = m; draw(); } };
    fill(main, 
      h("h1", {}, t("alerts.title")),
      notice ? h("p", { class: "error", id: "notice" }, notice) : null,
      error ? h("p", { class: "error" }, t("error.load", { what: "alerts", message: error })) : null,
      h("h2", {}, `${t("alerts.firing")} (${firing.length})`),
      alertsTable(firing, { ...handlers, id: "firing" }),
      h("h2", {}, `${t("alerts.acknowledged")} (${acknowledged.length})`),
      alertsTable(acknowledged, { ...handlers, id: "acknowledged" }),
      h("h2", {}, `${t("alerts.muted")} (${muted.length})`),
      h("div", { id: "muted" }, groups.size ? [...groups].map(([key, list]) => muter(key, list)) : h("p", { class: "muted" }, t("alerts.none"))),
      h("h2", {}, t("alerts.resolved")),
      alertsTable(resolved, { ...handlers, id: "resolved" }),
    );
    document.body.dataset.ready = "alerts";
  }

  async function load() {
    timer = null;
    try {
      [alerts, silences] = await Promise.all([api(`/api/v1/alerts?limit=${LIMIT}`), api("/api/v1/silences?limit=200")]);
      error = null;
    } catch (e) {
      error = e.message;
    }
    draw();
  }

  onActivity((what) => {
    if (what === "alerts" && timer === null) timer = setTimeout(load, REFRESH_MS);
  });
  load();
  return { redraw: draw };
}
