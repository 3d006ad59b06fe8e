// The console's entry point: language, navigation, the one event stream, and the page the address names.
// Plain JavaScript modules, no build step: what is here is what the browser runs.
import en from "./strings/en.js";
import zhCN from "./strings/zh-CN.js";
import { mountOverview } from "./overview.js";

const CATALOGUES = { en, "zh-CN": zhCN };
const LANG_KEY = "edgefleet.lang";

// The navigation: a new page joins it here.
const NAV = [
  { key: "nav.overview", href: "/", match: (path) => path === "/" },
  { key: "nav.versions", href: "/versions", match: (path) => path === "/versions" },
  { key: "nav.rollouts", href: "/rollouts", match: (path) => path.startsWith("/rollouts") },
  { key: "nav.alerts", href: "/alerts", match: (path) => path === "/alerts" },
  { key: "nav.clusters", href: "/clusters", match: (path) => path.startsWith("/clusters") },
];

let lang = pickLanguage();

function pickLanguage() {
  const stored = localStorage.getItem(LANG_KEY);
  if (stored && stored in CATALOGUES) return stored;
  return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

// Keys asked for that the chosen language's catalogue lacks (the English text, or the key itself, stands in). Each
// is said once on the console, with this prefix: the browser tests fail on it, in either language.
const MISSING_STRING = "edgefleet: no string in the catalogue:";
const missing = new Set();

/** The string `key` in the chosen language, with `{name}` filled from `values`. */
export function t(key, values = {}) {
  let text = CATALOGUES[lang][key];
  if (text === undefined) {
    if (!missing.has(`${lang} ${key}`)) {
      missing.add(`${lang} ${key}`);
      console.warn(`${MISSING_STRING} ${lang} ${key}`);
    }
    text = CATALOGUES.en[key] ?? key;
  }
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

/** An element: `h("a", {href: "/"}, "text", child)`. Text is set as text, never parsed as HTML; children may be
 * nested arrays, and null, undefined or false leave nothing. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace what `el` holds with `children`, as `h` takes them (nested arrays; null, undefined and false skipped). */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

/** The console session's CSRF token (the edgefleet_csrf cookie the sign-in set); every unsafe request sends it. */
export function csrfToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("edgefleet_csrf="));
  return found ? decodeURIComponent(found.slice("edgefleet_csrf=".length)) : "";
}

/** A session that ended (signed out elsewhere, expired): back to the sign-in page, then to this page. */
function signInAgain(response) {
  if (response.status === 401) location.assign(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
}

/** GET a path of the versioned API as JSON; throws an Error with the API's own message. */
export async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  signInAgain(response);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body?.error?.message ?? `${response.status} ${response.statusText}`);
  return body;
}

/** POST (or DELETE...) JSON to a path of the versioned API, as the CLI does; throws an Error with the API's message. */
export async function send(method, path, body = undefined, headers = {}) {
  const response = await fetch(path, {
    method,
    headers: {
      Accept: "application/json",
      "X-CSRF-Token": csrfToken(),
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  signInAgain(response);
  const answer = await response.json().catch(() => null);
  if (!response.ok) throw new Error(answer?.error?.message ?? `${response.status} ${response.statusText}`);
  return answer;
}

/** A time as the browser's local time, "—" for none. */
export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

/** "12 s ago" from an age in seconds as the controller computed it (the browser's clock may be off). */
export function ago(seconds) {
  if (seconds === null || seconds === undefined) return t("never");
  const s = Math.max(0, seconds);
  if (s < 90) return t("ago.s", { n: Math.round(s) });
  if (s < 5400) return t("ago.m", { n: Math.round(s / 60) });
  return t("ago.h", { n: Math.round(s / 3600) });
}

export function fmt(value, unit = "", digits = 0) {
  return value === null || value === undefined ? "—" : `${Number(value).toFixed(digits)}${unit}`;
}

export function bytes(value) {
  if (value === null || value === undefined) return "—";
  const gib = value / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${(value / 2 ** 20).toFixed(0)} MiB`;
}

// --- the one event stream --------------------------------------------------------------------------------
const listeners = new Set();

const activityListeners = new Set();
let lastActivity = null;

/** Listen to the fleet's events: `handler(kind, body)` with kind "snapshot" or "changes". Returns a stop. */
export function onFleet(handler) {
  listeners.add(handler);
  return () => listeners.delete(handler);
}

/** Listen to the rollouts' and alerts' changes: `handler(what)` with what "rollouts" or "alerts", called when its
 * token changes (not for the first tokens the stream sends: a page reads its API when it opens). */
export function onActivity(handler) {
  activityListeners.add(handler);
  return () => activityListeners.delete(handler);
}

function openStream() {
  const live = document.getElementById("live");
  const show = (state) => {
    live.dataset.state = state;
    live.textContent = t(`live.${state}`);
  };
  show("connecting");
  const source = new EventSource("/api/v1/events");
  source.onopen = () => show("open");
  source.onerror = () => show(source.readyState === EventSource.CLOSED ? "closed" : "connecting");
  source.addEventListener("activity", (event) => {
    const body = JSON.parse(event.data);
    const before = lastActivity;
    lastActivity = body;
    if (before === null) return;
    for (const what of ["rollouts", "alerts"]) {
      if (body[what] !== before[what]) for (const handler of activityListeners) handler(what);
    }
  });
  for (const kind of ["snapshot", "changes"]) {
    source.addEventListener(kind, (event) => {
      show("open");
      const body = JSON.parse(event.data);
      for (const handler of listeners) handler(kind, body);
    });
  }
  return show;
}

// --- pages -----------------------------------------------------------------------------------------------
// The overview is loaded with this module (it is the page to be ready in under a second with the whole fleet);
// the other pages' modules only when their page is opened, so the overview does not carry their weight.
async function route(path, main) {
  let match;
  if ((match = path.match(/^\/sites\/([^/]+)$/))) return (await import("./site.js")).mountSite(main, decodeURIComponent(match[1]));
  if ((match = path.match(/^\/boxes\/([^/]+)$/))) return (await import("./box.js")).mountBox(main, decodeURIComponent(match[1]));
  if (path === "/versions") return (await import("./versions.js")).mountVersions(main);
  if (path === "/alerts") return (await import("./alerts.js")).mountAlerts(main);
  if (path === "/clusters") return (await import("./clusters.js")).mountClusters(main);
  if ((match = path.match(/^\/clusters\/([^/]+)$/))) return (await import("./clusters.js")).mountCluster(main, decodeURIComponent(match[1]));
  if (path === "/rollouts") return (await import("./rollouts.js")).mountRollouts(main);
  if (path === "/rollouts/new") return (await import("./rollouts.js")).mountNewRollout(main);
  if ((match = path.match(/^\/rollouts\/([^/]+)$/))) return (await import("./rollouts.js")).mountRollout(main, decodeURIComponent(match[1]));
  return mountOverview(main);
}

function drawChrome() {
  document.documentElement.lang = lang;
  document.getElementById("lang").value = lang;
  document.getElementById("lang-label").textContent = t("lang.label");
  const nav = document.getElementById("nav");
  nav.replaceChildren(
    ...NAV.map((item) =>
      h("a", { href: item.href, "aria-current": item.match(location.pathname) ? "page" : null }, t(item.key)),
    ),
  );
  const live = document.getElementById("live");
  live.textContent = t(`live.${live.dataset.state}`);
  document.getElementById("signout").textContent = t("signout");
}

/** Who is signed in, beside a sign-out button; nothing where the caller has no console session (a token). */
async function showWho() {
  const me = await api("/api/v1/me").catch(() => null);
  if (!me?.via) return;
  const who = document.getElementById("who");
  who.textContent = me.name;
  who.hidden = false;
  const button = document.getElementById("signout");
  button.hidden = false;
  button.addEventListener("click", async () => {
    await send("POST", "/auth/signout").catch(() => null);
    location.assign("/signin");
  });
}

async function start() {
  drawChrome();
  const main = document.getElementById("main");
  // The page listens to the stream before the stream opens: its snapshot is not missed.
  const page = await route(location.pathname, main);
  document.getElementById("lang").addEventListener("change", (event) => {
    lang = event.target.value;
    localStorage.setItem(LANG_KEY, lang);
    drawChrome();
    page.redraw();
  });
  openStream();
  showWho();
}

start();
