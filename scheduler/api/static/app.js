// The shell: hash routes to pages, the live event stream, the banner, and the login prompt.
import { whenUnauthorized } from "./api.js";
import { currentUser, loadIdentity, logout, showLogin } from "./auth.js";
import { fill, h, notify } from "./dom.js";
import { connectEvents } from "./live.js";
import appsPage from "./page-apps.js";
import appPage from "./page-app.js";
import autoscalerPage from "./page-autoscaler.js";
import createPage from "./page-create.js";
import deploymentsPage from "./page-deployments.js";
import haproxyPage from "./page-haproxy.js";
import logsPage from "./page-logs.js";

const ROUTES = [
  [/^#?\/?(apps)?$/, appsPage],
  [/^#\/create$/, createPage],
  [/^#\/apps(\/.+)$/, appPage],
  [/^#\/logs\/([^/]+)\/(stdout|stderr)$/, logsPage],
  [/^#\/deployments$/, deploymentsPage],
  [/^#\/autoscaler(\/.+)?$/, autoscalerPage],
  [/^#\/haproxy$/, haproxyPage],
];

const main = document.getElementById("main");
let current = null;
let pending = null;      // a refresh timer
let running = false;     // a refresh in flight: another one waits for it, so answers never land out of order
let again = false;
let stream = null;
let shown = 0;           // which navigation the page on screen belongs to

function route() {
  const hash = location.hash || "#/apps";
  for (const [pattern, page] of ROUTES) {
    const found = hash.match(pattern);
    if (found) return [page, found.slice(1).map(p => p && decodeURIComponent(p))];
  }
  return [null, []];
}

async function show() {
  if (current && current.unmount) current.unmount();
  current = null;
  const [page, params] = route();
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", page !== null && link.dataset.nav === page.nav);
  }
  if (!page) { fill(main, h("p", {}, "No such page. ", h("a", {href: "#/apps"}, "Back to the apps"))); return; }
  document.title = `Pacer · ${page.title}`;
  const root = h("section", {class: `page page-${page.nav}`});
  fill(main, root);
  const navigation = ++shown;
  try {
    const mounted = await page.mount(root, params);
    if (navigation === shown) current = mounted;
    else if (mounted && mounted.unmount) mounted.unmount();       // the user went elsewhere meanwhile
  } catch (err) {
    if (err.status !== 401) fill(root, h("p", {class: "error"}, `Could not load the page: ${err.message}`));
  }
}

/** Reload the current page soon, at most a few times a second and one reload at a time. */
function scheduleRefresh() {
  if (!pending) pending = setTimeout(runRefresh, 250);
}

async function runRefresh() {
  pending = null;
  if (running) { again = true; return; }
  if (!current || !current.refresh) return;
  running = true;
  try {
    await current.refresh();
  } catch (err) {
    if (err.status !== 401) notify(err.message, "error");
  } finally {
    running = false;
    if (again) { again = false; scheduleRefresh(); }
  }
}

/** Events that change what a page shows reload it. */
function onEvent(type) {
  if (type !== "event_stream_attached" && type !== "event_stream_detached") scheduleRefresh();
}

function onStreamState(state) {
  document.getElementById("banner").hidden = state !== "disconnected";
  document.body.dataset.stream = state;
  if (state === "connected") scheduleRefresh();       // whatever happened while it was down
  if (state === "unauthorized") askLogin();
}

function askLogin() {
  if (stream) { stream.stop(); stream = null; }
  showLogin(start);
}

async function start() {
  if (!(await loadIdentity())) { askLogin(); return; }
  const user = currentUser();
  fill(document.getElementById("who"), user ? [user, " ", h("button", {class: "link", onclick: logout}, "sign out")] : "");
  stream = connectEvents(onEvent, onStreamState);
  await show();
}

whenUnauthorized(askLogin);
window.addEventListener("hashchange", show);
start();
