// The fleet overview: counters, filters, and the heat map (one cell per box, by region and site), kept live by
// the event stream. The cells are drawn once per snapshot; a change repaints only the cells it names.
import { h, onFleet, t } from "./app.js";

const STATES = ["unreachable", "lost", "never-seen", "node-not-ready", "degraded", "online"];
const COLOURINGS = ["state", "temperature", "utilization", "version"];
// A cell as the API sends it: [site, state, GPU temperature C, GPU utilisation %, apps].
const SITE = 0, STATE = 1, TEMPERATURE = 2, UTILIZATION = 3, APPS = 4;

function hue(text) {
  let hash = 0;
  for (const ch of text) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % 360;
}

/** The background of a cell in an alternative colouring; null: the state's own class colours it. */
function paintOf(cell, colouring) {
  const quiet = cell[STATE] === "lost" || cell[STATE] === "unreachable" || cell[STATE] === "never-seen";
  if (colouring === "state") return null;
  if (colouring === "temperature") {
    const c = cell[TEMPERATURE];
    if (c === null || quiet) return "var(--never-seen)";
    const k = Math.min(1, Math.max(0, (c - 35) / 55)); // 35 C blue .. 90 C red
    return `hsl(${Math.round(220 - 220 * k)} 75% 48%)`;
  }
  if (colouring === "utilization") {
    const u = cell[UTILIZATION];
    if (u === null || quiet) return "var(--never-seen)";
    return `hsl(215 80% ${Math.round(88 - 0.6 * u)}%)`;
  }
  const apps = cell[APPS];
  return apps ? `hsl(${hue(apps)} 60% 50%)` : "var(--never-seen)";
}

export function mountOverview(main) {
  const view = { regions: [], cells: {}, counters: null, colouring: "state", region: "", kind: "", state: "" };
  const elements = new Map(); // box -> its cell element
  const siteElements = new Map(); // site id -> its block
  const tip = document.getElementById("tip");
  let drawn = false;

  function paint(el, box, cell) {
    const background = paintOf(cell, view.colouring);
    el.className = background === null ? `cell s-${cell[STATE]}` : "cell";
    el.style.background = background ?? "";
    el.dataset.state = cell[STATE];
  }

  function counter(value, key, bad = false) {
    const shown = value === null || value === undefined ? t("counter.unknown") : value;
    return h("div", { class: bad && value > 0 ? "counter bad" : "counter", "data-counter": key }, h("b", {}, shown), h("span", {}, t(key)));
  }

  function drawCounters() {
    const c = view.counters;
    const box = main.querySelector(".counters");
    if (!box || !c) return;
    box.replaceChildren(
      counter(c.sites, "counter.sites"),
      counter(`${c.boxes_online} / ${c.boxes}`, "counter.online"),
      counter(c.boxes_lost, "counter.lost", true),
      counter(c.active_rollouts, "counter.rollouts"),
      counter(c.firing_alerts, "counter.alerts", true),
    );
  }

  function select(key, value, options, onchange) {
    return h(
      "label",
      {},
      `${t(key)} `,
      h(
        "select",
        { "data-filter": key, onchange: (e) => onchange(e.target.value) },
        options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)),
      ),
    );
  }

  function drawTools() {
    const regions = view.regions.map((r) => [r.name, r.name]);
    const all = ["", t("filter.all")];
    return h(
      "div",
      { class: "tools" },
      select("filter.region", view.region, [all, ...regions], (v) => { view.region = v; applyFilters(); }),
      select("filter.kind", view.kind, [all, ["transfer-center", t("kind.transfer-center")], ["central", t("kind.central")]],
        (v) => { view.kind = v; applyFilters(); }),
      select("filter.state", view.state, [all, ...STATES.map((s) => [s, t(`state.${s}`)])], (v) => { view.state = v; applyFilters(); }),
      select("filter.colour", view.colouring, COLOURINGS.map((c) => [c, t(`colour.${c}`)]), (v) => {
        view.colouring = v;
        for (const [box, el] of elements) paint(el, box, view.cells[box]);
        drawLegend();
      }),
    );
  }

  function drawLegend() {
    const legend = main.querySelector(".legend");
    if (view.colouring === "state") {
      legend.replaceChildren(...STATES.map((s) => h("span", {}, h("i", { class: `s-${s}` }), t(`state.${s}`))));
      return;
    }
    const swatch = (cell) => h("i", { style: `background: ${paintOf(cell, view.colouring)}` });
    const scale = {
      temperature: [[null, "online", 35, null, null], [null, "online", 62, null, null], [null, "online", 90, null, null]],
      utilization: [[null, "online", null, 0, null], [null, "online", null, 50, null], [null, "online", null, 100, null]],
      version: [],
    }[view.colouring];
    legend.replaceChildren(
      ...scale.map((cell) => h("span", {}, swatch(cell), view.colouring === "temperature" ? `${cell[TEMPERATURE]} °C` : `${cell[UTILIZATION]} %`)),
      h("span", {}, h("i", { class: "s-never-seen" }), t(`legend.${view.colouring}`)),
    );
  }

  function siteDown(site) {
    return site.boxes.length > 0 && site.boxes.every((b) => view.cells[b]?.[STATE] === "unreachable");
  }

  function applyFilters() {
    for (const region of view.regions) {
      let regionShown = false;
      for (const site of region.sites) {
        const block = siteElements.get(site.id);
        let shown = (!view.region || view.region === region.name) && (!view.kind || view.kind === site.kind);
        if (shown && view.state) {
          let any = false;
          for (const box of site.boxes) {
            const match = view.cells[box]?.[STATE] === view.state;
            elements.get(box).classList.toggle("hidden", !match);
            any ||= match;
          }
          shown = any;
        } else if (!view.state) {
          for (const box of site.boxes) elements.get(box).classList.remove("hidden");
        }
        block.classList.toggle("hidden", !shown);
        regionShown ||= shown;
      }
      main.querySelector(`.region[data-region="${CSS.escape(region.name)}"]`).classList.toggle("hidden", !regionShown);
    }
  }

  function draw() {
    elements.clear();
    siteElements.clear();
    const map = h("div", { id: "heatmap", class: "heatmap" });
    for (const region of view.regions) {
      const sites = h("div", { class: "sites" });
      for (const site of region.sites) {
        const cells = h("div", { class: "cells" });
        for (const box of site.boxes) {
          const el = h("a", { href: `/boxes/${encodeURIComponent(box)}`, "data-box": box, "aria-label": box });
          paint(el, box, view.cells[box]);
          elements.set(box, el);
          cells.append(el);
        }
        const block = h("section", { class: "site", "data-site": site.id, "data-kind": site.kind, "data-down": siteDown(site) },
          h("a", { href: `/sites/${encodeURIComponent(site.id)}`, title: site.id }, site.display_name), cells);
        siteElements.set(site.id, block);
        sites.append(block);
      }
      map.append(h("section", { class: "region", "data-region": region.name }, h("h2", {}, region.name), sites));
    }
    main.replaceChildren(
      h("h1", {}, t("overview.title")),
      h("div", { class: "counters" }),
      drawTools(),
      h("div", { class: "legend" }),
      map,
    );
    drawCounters();
    drawLegend();
    applyFilters();
    drawn = true;
    document.body.dataset.ready = "overview";
    performance.mark("heatmap-drawn");
  }

  function change(body) {
    const touched = new Set();
    for (const [box, cell] of Object.entries(body.cells)) {
      view.cells[box] = cell;
      const el = elements.get(box);
      if (el) paint(el, box, cell);
      touched.add(cell[SITE]);
    }
    for (const id of touched) {
      const block = siteElements.get(id);
      const site = view.regions.flatMap((r) => r.sites).find((s) => s.id === id);
      if (block && site) block.dataset.down = siteDown(site);
    }
    view.counters = body.counters;
    drawCounters();
    if (view.state) applyFilters();
  }

  onFleet((kind, body) => {
    if (kind === "snapshot") {
      view.regions = body.regions;
      view.cells = body.cells;
      view.counters = body.counters;
      draw();
    } else if (drawn) {
      change(body);
    }
  });

  main.addEventListener("mouseover", (event) => {
    const el = event.target.closest?.(".cell");
    if (!el) return;
    const cell = view.cells[el.dataset.box];
    let text = `${el.dataset.box} · ${t(`state.${cell[STATE]}`)}`;
    if (view.colouring === "temperature" && cell[TEMPERATURE] !== null) text += ` · ${cell[TEMPERATURE]} °C`;
    if (view.colouring === "utilization" && cell[UTILIZATION] !== null) text += ` · ${cell[UTILIZATION]} %`;
    if (view.colouring === "version" && cell[APPS]) text += ` · ${cell[APPS]}`;
    tip.textContent = text;
    const r = el.getBoundingClientRect();
    tip.style.left = `${Math.min(r.left, window.innerWidth - 320)}px`;
    tip.style.top = `${r.bottom + 6}px`;
    tip.hidden = false;
  });
  main.addEventListener("mouseout", (event) => {
    if (event.target.closest?.(".cell")) tip.hidden = true;
  });

  return { redraw: () => { if (drawn) draw(); } };
}
