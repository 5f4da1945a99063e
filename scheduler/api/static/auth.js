// Credentials (kept in sessionStorage, sent as the Authorization header) and the caller's grants.
import { h } from "./dom.js";

const KEY = "pacer.authorization";
// The roles each role includes: the API's table (scheduler/auth/policy.py _IMPLIES); a deployer
// is not an approver, nor the other way round.
const IMPLIES = {viewer: ["viewer"], deployer: ["viewer", "deployer"], approver: ["viewer", "approver"],
                 admin: ["viewer", "deployer", "approver", "admin"]};
const includes = (granted, role) => (IMPLIES[granted] || []).includes(role);
let grants = [{role: "admin", pattern: "/**"}];
let user = null;
let loginShown = false;

export function authHeaders() {
  const value = sessionStorage.getItem(KEY);
  return value ? {Authorization: value} : {};
}

export function currentUser() { return user; }

/** Asks the API who we are; false when it wants credentials first. */
export async function loadIdentity() {
  const response = await fetch("/v2/auth/whoami", {credentials: "omit", headers: {Accept: "application/json", ...authHeaders()}});
  if (response.status === 401) return false;
  if (response.ok) {
    const body = await response.json();
    grants = body.grants;
    user = body.user;
  }
  return true;
}

function segments(path) { return path.split("/").filter(Boolean); }

function globToRegExp(glob) {
  const body = glob.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")
    .replace(/\[!/g, "[^");
  return new RegExp(`^${body}$`);
}

function match(pattern, path) {
  if (!pattern.length) return !path.length;
  const [head, ...rest] = pattern;
  if (head === "**") return path.some((_, i) => match(rest, path.slice(i))) || match(rest, []);
  return path.length > 0 && globToRegExp(head).test(path[0]) && match(rest, path.slice(1));
}

/** Whether `grants` give `role` (or more) on the app id: the API's own rule (scheduler/auth/policy.py). */
export function grantsAllow(someGrants, role, appId) {
  return someGrants.some(g => includes(g.role, role) && match(segments(g.pattern), segments(appId)));
}

/** Whether the caller may: the UI hides what it may not do (the API refuses it anyway). */
export function may(role, appId) {
  return grantsAllow(grants, role, appId);
}

/** Whether the caller holds `role` somewhere (to show "create app" at all). */
export function mayAnywhere(role) {
  return grants.some(g => includes(g.role, role));
}

export function logout() {
  sessionStorage.removeItem(KEY);
  location.reload();
}

/** Shows the login form; on success stores the credential and calls `done`. */
export function showLogin(done) {
  if (loginShown) return;
  loginShown = true;
  const error = h("p", {class: "error", role: "alert"});
  const user = h("input", {name: "user", autocomplete: "username", "aria-label": "User"});
  const password = h("input", {name: "password", type: "password", autocomplete: "current-password",
                               "aria-label": "Password"});
  const token = h("input", {name: "token", type: "password", autocomplete: "off", "aria-label": "Token"});
  const form = h("form", {class: "login", id: "login"},
    h("h2", {}, "Sign in to Pacer"),
    h("label", {}, "User ", user), h("label", {}, "Password ", password),
    h("p", {class: "muted"}, "or"),
    h("label", {}, "Token ", token),
    error,
    h("button", {class: "primary", type: "submit"}, "Sign in"));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const value = token.value ? `Bearer ${token.value}`
      : `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode(`${user.value}:${password.value}`)))}`;
    sessionStorage.setItem(KEY, value);
    if (await loadIdentity()) {
      form.remove();
      loginShown = false;
      done();
    } else {
      sessionStorage.removeItem(KEY);
      error.textContent = "Invalid user, password or token.";
    }
  });
  document.getElementById("main").replaceChildren(form);
  user.focus();
}
