// The rollout pages: the list (/rollouts), one rollout (/rollouts/{id}: each wave and site with its state, reason
// and gates, the deferred, held and blocked sites, and the release manager's commands), and a new one
// (/rollouts/new: a release pasted or picked from a file, its plan previewed, then started). The commands call the
// API the CLI calls; abort, rollback and start ask for a confirmation first. Read again when the event stream says
// the rollouts changed.
import { api, fill, h, onActivity, send, t, when } from "./app.js";

const REFRESH_MS = 300;

function stateBadge(state) {
  return h("span", { class: `badge r-${state}`, "data-state": state }, t(`rollout.${state}`));
}

function live(load) {
  let timer = null;
  onActivity((what) => {
    if (what === "rollouts" && timer === null) timer = setTimeout(() => { timer = null; load(); }, REFRESH_MS);
  });
}

export function mountRollouts(main) {
  let rollouts = null, error = null;

  function draw() {
    if (rollouts === null && !error) return;
    const rows = (rollouts ?? []).map((r) =>
      h("tr", { "data-rollout": r.id },
        h("td", {}, h("a", { href: `/rollouts/${encodeURIComponent(r.id)}` }, r.id)),
        h("td", {}, r.app), h("td", {}, r.version),
        h("td", {}, stateBadge(r.state)),
        h("td", {}, Object.entries(r.sites).map(([state, n]) => `${t(`site_state.${state}`)} ${n}`).join(", ")),
        h("td", {}, when(r.created_at)), h("td", {}, r.created_by),
      ),
    );
    fill(main, 
      h("h1", {}, t("rollouts.title")),
      h("p", {}, h("a", { class: "button", href: "/rollouts/new", id: "new-rollout" }, t("rollouts.new"))),
      error ? h("p", { class: "error" }, t("error.load", { what: "rollouts", message: error })) : null,
      h("div", { class: "scroll" }, h("table", { id: "rollouts" },
        h("thead", {}, h("tr", {}, ["col.rollout", "col.app", "col.version", "col.state", "col.sites", "col.started", "col.by"].map((k) => h("th", {}, t(k))))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "muted" }, t("rollouts.none")))),
      )),
    );
    document.body.dataset.ready = "rollouts";
  }

  async function load() {
    try {
      rollouts = await api("/api/v1/rollouts?limit=100");
      error = null;
    } catch (e) {
      error = e.message;
    }
    draw();
  }
  live(load);
  load();
  return { redraw: draw };
}

// Which commands the rollout takes in its state (the API refuses the others with 409 anyway), and which of them
// ask for a confirmation: those a mistake makes costly.
function commands(r) {
  const ended = ["aborted", "rolled-back", "done"].includes(r.state);
  const waiting = r.waves.some((w) => w.needs_approval && !r.promoted.includes(w.number) && w.state !== "passed");
  return [
    { name: "pause", show: r.active && !r.paused },
    { name: "resume", show: r.active && r.paused },
    { name: "promote", show: r.active && waiting },
    { name: "abort", show: r.active && !ended, confirm: true },
    { name: "rollback", show: !r.rolled_back && r.state !== "aborting", confirm: true },
    { name: "override-blackout", show: r.active && r.blocked.length > 0 && !r.blackout_override, reason: true },
  ].filter((c) => c.show);
}

/** "canary", "wave 2", and the wave's own name when the release gives it another. */
function waveLabel(w) {
  const label = w.number === 0 ? t("versions.canary") : t("versions.wave", { n: w.number });
  const plain = w.number === 0 ? "canary" : `wave ${w.number}`;
  return w.name && w.name !== plain ? `${label} (${w.name})` : label;
}

function gates(site) {
  return site.gates.map((g) => h("div", { class: `gate g-${g.verdict}`, "data-gate": g.name },
    `${g.name}: ${t(`gate.${g.verdict}`)}${g.known ? "" : ` (${t("gate.unknown")})`} — ${g.reason}`));
}

export function mountRollout(main, rolloutId) {
  let rollout = null, error = null, notice = null, busy = false;

  async function command(c) {
    if (c.confirm && !confirm(t(`rollout.confirm_${c.name}`, { id: rollout.id, app: rollout.app, version: rollout.version }))) return;
    let body = {};
    if (c.reason) {
      const reason = prompt(t("rollout.override_reason"), "");
      if (reason === null || !reason.trim()) return;
      body = { reason: reason.trim() };
    }
    busy = true;
    draw();
    try {
      rollout = await send("POST", `/api/v1/rollouts/${encodeURIComponent(rollout.id)}/${c.name}`, body);
      notice = null;
    } catch (e) {
      notice = e.message;
    }
    busy = false;
    draw();
  }

  function draw() {
    if (error) {
      fill(main, h("p", { class: "error" }, t("error.load", { what: rolloutId, message: error })));
      return;
    }
    if (!rollout) return;
    const r = rollout;
    const list = (key, sites) => sites.length ? [h("dt", {}, t(key)), h("dd", { "data-list": key }, sites.join(", "))] : [];
    fill(main, 
      h("h1", {}, `${t("rollout.title")} ${r.id} `, stateBadge(r.state)),
      h("div", { class: "actions", id: "commands" }, commands(r).map((c) =>
        h("button", { "data-command": c.name, class: c.confirm ? "danger" : null, disabled: busy, onclick: () => command(c) }, t(`command.${c.name}`)))),
      notice ? h("p", { class: "error", id: "notice" }, notice) : null,
      h("dl", { class: "facts", id: "facts" },
        h("dt", {}, t("col.app")), h("dd", {}, `${r.app} ${r.version} (${r.release})`),
        h("dt", {}, t("rollout.reason")), h("dd", { "data-fact": "reason" }, r.reason || "—"),
        r.stopped_because ? [h("dt", {}, t("rollout.stopped_because")), h("dd", {}, r.stopped_because)] : null,
        h("dt", {}, t("col.started")), h("dd", {}, `${when(r.created_at)} · ${r.created_by}`),
        h("dt", {}, t("rollout.updated")), h("dd", {}, when(r.updated_at)),
        r.paused ? [h("dt", {}, t("rollout.paused")), h("dd", { "data-fact": "paused" }, t("yes"))] : null,
        r.blackout_override ? [h("dt", {}, t("rollout.blackout_override")), h("dd", {}, r.blackout_override)] : null,
        list("rollout.deferred", r.deferred), list("rollout.held", r.held), list("rollout.blocked", r.blocked),
        Object.entries(r.images).map(([c, image]) => [h("dt", {}, c), h("dd", { class: "mono" }, image)]),
      ),
      r.waves.map((w) => h("section", { class: "wave", "data-wave": w.number },
        h("h2", {}, `${waveLabel(w)} `,
          h("span", { class: `badge w-${w.state}` }, t(`wave.${w.state}`)),
          w.needs_approval ? h("span", { class: "muted" }, ` · ${t(r.promoted.includes(w.number) ? "wave.promoted" : "wave.needs_approval")}`) : null),
        h("div", { class: "scroll" }, h("table", {},
          h("thead", {}, h("tr", {}, ["col.site", "col.state", "rollout.reason", "rollout.previous", "col.started", "rollout.gates"].map((k) => h("th", {}, t(k))))),
          h("tbody", {}, w.sites.map((s) => h("tr", { "data-site": s.site, "data-state": s.state },
            h("td", {}, h("a", { href: `/sites/${encodeURIComponent(s.site)}` }, s.site)),
            h("td", {}, h("span", { class: `badge ss-${s.state}` }, t(`site_state.${s.state}`))),
            h("td", {}, s.reason, s.blackout_override ? h("div", { class: "muted" }, s.blackout_override) : null),
            h("td", {}, s.previous_release ?? "—"),
            h("td", {}, when(s.started_at)),
            h("td", {}, gates(s)),
          ))),
        )),
      )),
    );
    document.body.dataset.ready = "rollout";
  }

  async function load() {
    try {
      rollout = await api(`/api/v1/rollouts/${encodeURIComponent(rolloutId)}`);
      error = null;
    } catch (e) {
      error = e.message;
    }
    draw();
  }
  live(load);
  load();
  return { redraw: draw };
}

// A key per previewed release: a start retried (a double click, a lost answer) answers the rollout the first
// started, and never starts a second. Not crypto.randomUUID: it needs a secure context, and the console is served
// over plain HTTP inside the network.
function idempotencyKey() {
  return `console-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

/** The sites of a plan inside a blackout window now: they stay blocked unless the start overrides the windows. */
function blackedOut(p) {
  return p ? p.sites.filter((s) => s.blackout_now) : [];
}

export function mountNewRollout(main) {
  let text = "", plan = null, planned = null, key = null, notice = null, busy = false;
  // Overriding the blackout windows at the start: offered only when the plan shows sites inside one, and only
  // with a reason (the API refuses a blank one; the button waits for it).
  let override = false, overrideReason = "";
  let drawButtons = () => {};

  function overriding() {
    return override && blackedOut(plan).length > 0;
  }

  async function preview() {
    busy = true;
    draw();
    try {
      plan = await send("POST", "/api/v1/rollouts/plan", { release: text });
      planned = text;
      key = idempotencyKey();
      notice = null;
    } catch (e) {
      plan = null;
      notice = e.message;
    }
    busy = false;
    draw();
  }

  async function start() {
    if (planned !== text || !plan) return;
    if (overriding() && !overrideReason.trim()) return;
    const asked = overriding()
      ? t("rollout.confirm_start_override", { app: plan.app, version: plan.version, sites: plan.sites.length, reason: overrideReason.trim() })
      : t("rollout.confirm_start", { app: plan.app, version: plan.version, sites: plan.sites.length });
    if (!confirm(asked)) return;
    busy = true;
    draw();
    try {
      const body = { release: text, ...(overriding() ? { override_blackout: overrideReason.trim() } : {}) };
      const started = await send("POST", "/api/v1/rollouts", body, { "Idempotency-Key": key });
      location.assign(`/rollouts/${encodeURIComponent(started.id)}`);
      return;
    } catch (e) {
      notice = e.message;
    }
    busy = false;
    draw();
  }

  function blackoutView(p) {
    const inside = blackedOut(p);
    if (!inside.length) return null;
    const reason = h("input", { type: "text", id: "override-reason", maxlength: 500, placeholder: t("plan.override_reason"),
      required: override, disabled: !override, "aria-label": t("plan.override_reason"),
      oninput: (e) => { overrideReason = e.target.value; drawButtons(); } });
    reason.value = overrideReason;
    return h("section", { id: "blackouts", class: "held" },
      h("h2", {}, t("plan.blackouts", { n: inside.length })),
      h("ul", {}, inside.map((s) => h("li", { "data-site": s.site },
        t("plan.blackout_site", { site: s.site, window: s.blackout_now.window, reason: s.blackout_now.reason, ends: when(s.blackout_now.ends) })))),
      h("p", { class: "muted" }, t("plan.blackouts_wait")),
      h("label", { class: "override" },
        h("input", { type: "checkbox", id: "override-blackout", checked: override,
          onchange: (e) => { override = e.target.checked; draw(); } }),
        " ", t("plan.override")),
      override ? reason : null,
    );
  }

  function planView(p) {
    const sites = (list) => (list.length ? list.join(", ") : "—");
    return h("section", { id: "plan" },
      h("h2", {}, t("plan.title", { app: p.app, version: p.version, release: p.release })),
      p.warnings.length ? h("ul", { class: "warnings" }, p.warnings.map((w) => h("li", {}, w))) : null,
      blackoutView(p),
      h("dl", { class: "facts" },
        h("dt", {}, t("plan.max_in_flight")), h("dd", {}, p.max_in_flight),
        h("dt", {}, t("plan.soak")), h("dd", {}, `${p.soak_s} s`),
        h("dt", {}, t("plan.up_to_date")), h("dd", {}, sites(p.up_to_date)),
        h("dt", {}, t("rollout.held")), h("dd", {}, sites(p.held)),
        h("dt", {}, t("plan.offline")), h("dd", {}, sites(p.offline)),
        h("dt", {}, t("plan.left_out")), h("dd", {}, p.left_out.length ? p.left_out.map((l) => `${l.site} (${l.reason})`).join("; ") : "—"),
        p.images.map((i) => [h("dt", {}, i.container), h("dd", { class: "mono" }, i.pinned ?? i.image, i.problem ? h("div", { class: "error" }, i.problem) : null)]),
      ),
      h("div", { class: "scroll" }, h("table", { id: "plan-waves" },
        h("thead", {}, h("tr", {}, ["plan.wave", "plan.size", "col.sites", "plan.hardware", "plan.approval"].map((k) => h("th", {}, t(k))))),
        h("tbody", {}, p.waves.map((w) => h("tr", { "data-wave": w.number },
          h("td", {}, waveLabel(w)),
          // The canary's size is the word "canary" in the plan: its count of sites says it in any language.
          h("td", {}, w.number === 0 ? w.sites.length : w.size),
          h("td", {}, w.sites.map((s) => {
            const site = p.sites.find((x) => x.site === s);
            // Said in words: the pause sign is missing from the fonts a closed network's tablets may have.
            const blackout = site?.blackout_now ? ` · ${t("site_state.blocked")} ${site.blackout_now.window}` : "";
            return h("div", { "data-site": s, "data-state": site?.state ?? "ready" }, `${s}${site && site.state !== "ready" ? ` (${t(`plan.${site.state}`)})` : ""}${blackout}`);
          })),
          h("td", {}, w.hardware.map((x) => `${x.gpu_model} / ${x.driver_version}`).join(", ") || "—"),
          h("td", {}, w.needs_approval ? t("yes") : "—"),
        ))),
      )),
    );
  }

  function draw() {
    const area = h("textarea", { id: "release", rows: 16, spellcheck: "false", placeholder: t("plan.placeholder"),
      oninput: (e) => { text = e.target.value; drawButtons(); } });
    area.value = text;
    const file = h("input", { type: "file", id: "release-file", accept: ".yaml,.yml,text/yaml", onchange: async (e) => {
      const chosen = e.target.files[0];
      if (!chosen) return;
      text = await chosen.text();
      plan = null;
      draw();
    } });
    const buttons = h("div", { class: "actions" });
    drawButtons = () => {
      const needsReason = overriding() && !overrideReason.trim();
      fill(buttons,
        h("button", { id: "preview", disabled: busy || !text.trim(), onclick: preview }, t("plan.preview")),
        h("button", { id: "start", class: "danger", disabled: busy || !plan || planned !== text || needsReason, onclick: start }, t("command.start")),
        plan && planned !== text ? h("span", { class: "muted" }, t("plan.stale")) : null,
        plan && planned === text && needsReason ? h("span", { class: "muted", id: "needs-reason" }, t("plan.override_needs_reason")) : null,
      );
    };
    drawButtons();
    fill(main, 
      h("h1", {}, t("rollouts.new")),
      h("p", { class: "muted" }, t("plan.help")),
      h("label", { class: "file" }, t("plan.file"), " ", file),
      area,
      buttons,
      notice ? h("p", { class: "error", id: "notice" }, notice) : null,
      plan ? planView(plan) : null,
    );
    document.body.dataset.ready = "new-rollout";
  }

  draw();
  return { redraw: draw };
}
