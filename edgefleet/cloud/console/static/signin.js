// The sign-in page (/signin): the company provider's button and the local users' form, in the console's languages.
// Standalone: it loads none of the console's pages (they need a session), only the string catalogues.

import en from "./strings/en.js";
import zhCN from "./strings/zh-CN.js";

const CATALOGUES = { en, "zh-CN": zhCN };
const LANG_KEY = "edgefleet.lang";
let lang = localStorage.getItem(LANG_KEY) || ((navigator.language || "").toLowerCase().startsWith("zh") ? "zh-CN" : "en");

function t(key) {
  return CATALOGUES[lang][key] ?? CATALOGUES.en[key] ?? key;
}

/** Where to go once signed in: the page that sent the person here, of this controller only. */
function nextPath() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

function draw() {
  document.documentElement.lang = lang;
  document.getElementById("lang").value = lang;
  document.getElementById("lang-label").textContent = t("lang.label");
  document.getElementById("signin-title").textContent = t("signin.title");
  document.getElementById("provider-link").textContent = t("signin.provider");
  document.getElementById("provider-hint").textContent = t("signin.provider.hint");
  document.getElementById("local-title").textContent = t("signin.local");
  document.getElementById("local-name-label").textContent = t("signin.name");
  document.getElementById("local-password-label").textContent = t("signin.password");
  document.getElementById("local-submit").textContent = t("signin.submit");
}

function showError(message) {
  const box = document.getElementById("signin-error");
  box.textContent = message;
  box.hidden = false;
}

async function start() {
  draw();
  document.getElementById("lang").addEventListener("change", (event) => {
    lang = event.target.value;
    localStorage.setItem(LANG_KEY, lang);
    draw();
  });
  document.getElementById("provider-link").href = `/auth/oidc/login?next=${encodeURIComponent(nextPath())}`;
  const methods = await fetch("/auth/methods", { headers: { Accept: "application/json" } }).then((r) => r.json());
  document.getElementById("provider").hidden = !methods.oidc;
  document.getElementById("local").hidden = !methods.local;
  document.getElementById("local").addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch("/auth/local", {
      method: "POST",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify({
        name: document.getElementById("local-name").value,
        password: document.getElementById("local-password").value,
        next: nextPath(),
      }),
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      showError(`${t("signin.failed")}: ${answer?.error?.message ?? response.status}`);
      return;
    }
    location.assign(answer.next);
  });
}

start().catch((error) => showError(`${t("signin.failed")}: ${error.message}`));
