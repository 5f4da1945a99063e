// Small DOM helpers: element building, formatting, and the confirm/prompt dialogs.

/** h("a", {href: "#/", class: "x", onclick: fn}, "text", child) -> element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key in el && !key.startsWith("data-") && !key.startsWith("aria-")) el[key] = value;   // a property
    else if (value !== false) el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function time(value) {
  if (value === undefined || value === null || value === "") return "–";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function ago(value) {
  if (!value) return "–";
  const seconds = Math.round((Date.now() - new Date(value).getTime()) / 1000);
  if (seconds < 60) return `${Math.max(seconds, 0)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

/** A bar of instances: healthy, running (health unknown or unhealthy), staged, missing. */
export function instanceBar(app) {
  const total = Math.max(app.instances, app.tasksRunning + app.tasksStaged, 1);
  const checked = (app.healthChecks || []).length > 0;
  const healthy = checked ? app.tasksHealthy : 0;
  const parts = [
    ["healthy", healthy], ["running", app.tasksRunning - healthy], ["staged", app.tasksStaged],
  ];
  return h("span", {class: "bar", title: `${app.tasksRunning} running, ${checked ? app.tasksHealthy + " healthy, " : ""}` +
                                         `${app.tasksStaged} staged of ${app.instances}`},
    parts.filter(([, n]) => n > 0).map(([cls, n]) => h("span", {class: cls, style: `width:${100 * n / total}%`})));
}

/** Shows a modal dialog; resolves with the form's values (or true), or null when cancelled. */
export function dialog(title, body, okText = "OK", fields = []) {
  return new Promise(resolve => {
    const inputs = fields.map(f => h("input", {name: f.name, type: f.type || "text", value: f.value ?? "",
                                               min: f.min, required: !f.optional, "aria-label": f.label}));
    const form = h("form", {method: "dialog"},
      h("h3", {}, title), h("div", {class: "dialog-body"}, body),
      fields.map((f, i) => h("label", {}, f.label, " ", inputs[i])),
      h("menu", {},
        h("button", {value: "cancel", type: "button", onclick: () => close(null)}, "Cancel"),
        h("button", {value: "ok", class: "primary", type: "submit"}, okText)));
    const dlg = h("dialog", {class: "confirm"}, form);
    const close = value => { dlg.close(); dlg.remove(); resolve(value); };
    form.addEventListener("submit", event => {
      event.preventDefault();
      close(fields.length ? Object.fromEntries(inputs.map(i => [i.name, i.value])) : true);
    });
    dlg.addEventListener("cancel", () => close(null));
    document.body.append(dlg);
    dlg.showModal();
    (inputs[0] || form.querySelector(".primary")).focus();
  });
}

/** A message at the top of the page that goes away after a while (errors stay until clicked). */
export function notify(text, kind = "info") {
  const box = document.getElementById("notices");
  const note = h("div", {class: `notice ${kind}`, role: kind === "error" ? "alert" : "status",
                         onclick: () => note.remove()}, text);
  box.append(note);
  if (kind !== "error") setTimeout(() => note.remove(), 5000);
}
