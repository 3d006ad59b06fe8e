// The Kubernetes clusters of the inventory (/clusters) and one cluster (/clusters/{name}): its health, its platform
// policy said part by part in the page's language (GET .../policy), the audit of what breaks it (GET .../audit,
// which reads the cluster now; "Audit again" reads it again), and its GPUs: allocatable and requested per node
// and per namespace beside what the agents on its GPU nodes report (GET .../gpus, read again when the event
// stream says a box of the cluster's sites changed).
import { api, bytes, fill, fmt, h, onFleet, t, when } from "./app.js";

const REFRESH_MS = 1000;
const RULES = ["off-ratio", "no-anti-affinity", "exclusive-host"];

function health(c) {
  if (c.reachable === null) return h("span", { class: "muted", "data-health": "unknown" }, t("cluster.unprobed"));
  if (c.reachable) return h("span", { "data-health": "reachable" }, t("cluster.reachable", { ms: fmt(c.latency_ms, "", 0) }));
  return h("span", { class: "error-text", "data-health": "unreachable" }, t("cluster.unreachable", { error: c.last_error ?? "—" }));
}

export function mountClusters(main) {
  let clusters = null, error = null;

  function draw() {
    if (clusters === null && !error) return;
    const rows = (clusters ?? []).map((c) =>
      h("tr", { "data-cluster": c.name },
        h("td", {}, h("a", { href: `/clusters/${encodeURIComponent(c.name)}` }, c.name)),
        h("td", {}, t(`cluster.role.${c.role}`)),
        h("td", {}, c.region),
        h("td", {}, c.sites.join(", ") || "—"),
        h("td", {}, health(c)),
        h("td", {}, c.version ?? "—"),
        h("td", {}, c.policy.length ? t("cluster.policy_parts", { n: c.policy.length }) : t("cluster.no_policy_short")),
      ),
    );
    fill(main,
      h("h1", {}, t("clusters.title")),
      error ? h("p", { class: "error" }, t("error.load", { what: "/api/v1/clusters", message: error })) : null,
      h("div", { class: "scroll" }, h("table", { id: "clusters" },
        h("thead", {}, h("tr", {}, ["col.cluster", "col.role", "site.region", "col.sites", "site.health", "cluster.version", "cluster.policy"].map((k) => h("th", {}, t(k))))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "muted" }, t("clusters.none")))),
      )),
    );
    document.body.dataset.ready = "clusters";
  }

  api("/api/v1/clusters?limit=500")
    .then((found) => { clusters = found; })
    .catch((e) => { error = e.message; })
    .then(draw);
  return { redraw: draw };
}

function table(id, keys, rows, empty) {
  return h("div", { class: "scroll" }, h("table", { id },
    h("thead", {}, h("tr", {}, keys.map((k) => h("th", {}, t(k))))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: keys.length, class: "muted" }, empty))),
  ));
}

export function mountCluster(main, name) {
  const base = `/api/v1/clusters/${encodeURIComponent(name)}`;
  let cluster = null, policy = null, audit = null, gpus = null;
  let error = null, auditError = null, gpusError = null, auditing = false, timer = null;
  const sections = { audit: h("section", { id: "audit" }), gpus: h("section", { id: "gpus" }) };

  function drawAudit() {
    const header = h("h2", {}, t("cluster.audit"), " ",
      h("button", { id: "audit-again", disabled: auditing, onclick: readAudit }, t("cluster.audit_again")));
    if (auditError) return fill(sections.audit, header, h("p", { class: "error" }, auditError));
    if (!audit) return fill(sections.audit, header, h("p", { class: "muted" }, t("cluster.reading")));
    const counts = RULES.map((rule) => [rule, audit.findings.filter((f) => f.rule === rule).length]);
    fill(sections.audit, header,
      h("p", { id: "audit-summary" }, t("cluster.audit_summary", {
        workloads: audit.workloads, pods: audit.pods, time: when(audit.checked_at), local: audit.local_time, n: audit.findings.length })),
      audit.findings.length
        ? h("div", { class: "actions", id: "audit-counts" }, counts.filter(([, n]) => n).map(([rule, n]) =>
          h("span", { class: "badge rule", "data-rule": rule, "data-count": n }, `${t(`rule.${rule}`)}: ${n}`)))
        : null,
      audit.findings.length
        ? table("findings", ["col.namespace", "col.kind", "col.name", "col.rule", "col.what"], audit.findings.map((f) =>
          h("tr", { "data-rule": f.rule, "data-name": `${f.namespace}/${f.name}` },
            h("td", {}, f.namespace), h("td", {}, f.kind), h("td", { class: "mono" }, f.name),
            h("td", {}, t(`rule.${f.rule}`)), h("td", {}, f.message))), "")
        : h("p", { class: "muted", id: "audit-clean" }, t(audit.has_policy ? "cluster.audit_clean" : "cluster.audit_no_policy")),
    );
  }

  function gpuReadings(node) {
    if (!node.gpus.length) return node.agent_reason ?? (node.box ? t("cluster.no_readings") : "—");
    return node.gpus.map((g) => h("div", { "data-gpu": g.index },
      `#${g.index} ${fmt(g.utilization_percent, " %")} · ${fmt(g.temperature_c, " °C")} · ${bytes(g.memory_used_bytes)} / ${bytes(g.memory_total_bytes)}`));
  }

  function drawGpus() {
    const header = h("h2", {}, t("cluster.gpus"));
    if (gpusError) return fill(sections.gpus, header, h("p", { class: "error" }, gpusError));
    if (!gpus) return fill(sections.gpus, header, h("p", { class: "muted" }, t("cluster.reading")));
    fill(sections.gpus, header,
      h("p", { id: "gpus-summary" }, t("cluster.gpus_summary", { requested: gpus.requested, allocatable: gpus.allocatable, time: when(gpus.checked_at) })),
      h("h3", {}, t("cluster.gpus_nodes")),
      table("gpu-nodes", ["col.node", "col.box", "col.allocatable", "col.requested", "cluster.agents_say", "col.last_seen"], gpus.nodes.map((n) =>
        h("tr", { "data-node": n.node },
          h("td", { class: "mono" }, n.node),
          h("td", {}, n.box ? h("a", { href: `/boxes/${encodeURIComponent(n.box)}` }, n.box) : h("span", { class: "muted" }, t("cluster.no_box"))),
          h("td", { "data-allocatable": n.allocatable }, n.allocatable),
          h("td", { "data-requested": n.requested, class: n.requested > n.allocatable ? "over" : null }, n.requested),
          h("td", {}, gpuReadings(n)),
          h("td", {}, when(n.seen_at)),
        )), t("cluster.no_gpus")),
      h("h3", {}, t("cluster.gpus_namespaces")),
      table("gpu-namespaces", ["col.namespace", "col.requested", "col.pending", "col.pods"], gpus.namespaces.map((n) =>
        h("tr", { "data-namespace": n.namespace },
          h("td", {}, n.namespace), h("td", {}, n.requested), h("td", {}, n.pending), h("td", {}, n.pods))), t("cluster.no_gpus")),
      gpus.problems.length ? [h("h3", {}, t("cluster.problems")), h("ul", { class: "warnings" }, gpus.problems.map((p) => h("li", {}, p)))] : null,
    );
  }

  function draw() {
    if (error) return fill(main, h("p", { class: "error" }, t("error.load", { what: name, message: error })));
    if (!cluster || !policy) return;
    const c = cluster;
    fill(main,
      h("h1", {}, `${t("cluster.title")} ${c.name}`),
      h("dl", { class: "facts", id: "facts" },
        h("dt", {}, t("col.role")), h("dd", { "data-role": c.role }, t(`cluster.role.${c.role}`)),
        h("dt", {}, t("site.region")), h("dd", {}, c.region),
        h("dt", {}, t("cluster.context")), h("dd", { class: "mono" }, c.context),
        h("dt", {}, t("cluster.timezone")), h("dd", {}, c.timezone ?? "—"),
        h("dt", {}, t("site.health")), h("dd", {}, health(c)),
        h("dt", {}, t("cluster.version")), h("dd", {}, c.version ?? "—"),
        h("dt", {}, t("col.sites")), h("dd", {}, c.sites.length ? c.sites.map((s, i) => [i ? ", " : "", h("a", { href: `/sites/${encodeURIComponent(s)}` }, s)]) : "—"),
      ),
      h("h2", {}, t("cluster.policy")),
      policy.parts.length
        ? h("ul", { id: "policy" }, policy.parts.map((p) => h("li", { "data-part": p.key }, t(`policy.${p.key}`, p.values))))
        : h("p", { class: "muted", id: "policy" }, t("cluster.no_policy")),
      sections.audit,
      sections.gpus,
    );
    drawAudit();
    drawGpus();
    document.body.dataset.ready = "cluster";
  }

  async function readAudit() {
    auditing = true;
    drawAudit();
    try {
      audit = await api(`${base}/audit`);
      auditError = null;
    } catch (e) {
      auditError = e.message;
    }
    auditing = false;
    drawAudit();
  }

  async function readGpus() {
    timer = null;
    try {
      gpus = await api(`${base}/gpus`);
      gpusError = null;
    } catch (e) {
      gpusError = e.message;
    }
    drawGpus();
  }

  onFleet((kind, body) => {
    if (kind !== "changes" || !cluster || timer !== null) return;
    if (Object.values(body.cells).some((cell) => cluster.sites.includes(cell[0]))) timer = setTimeout(readGpus, REFRESH_MS);
  });

  // The page is drawn once the cluster, its policy, audit and GPUs are read: nothing jumps under a finger.
  Promise.all([api(base), api(`${base}/policy`)])
    .then(([found, said]) => { cluster = found; policy = said; })
    .catch((e) => { error = e.message; })
    .then(() => (error ? null : Promise.all([readAudit(), readGpus()])))
    .then(draw);
  return { redraw: draw };
}
