// Apps: a tree by group, filtered by id, label or status, with instance bars and deployment badges.
import { get } from "./api.js";
import { mayAnywhere } from "./auth.js";
import { fill, h, instanceBar } from "./dom.js";

/** The one-word status an operator filters by. */
export function appStatus(app, waiting) {
  if (app.deployments.length) return "deploying";
  if (app.instances === 0) return "suspended";
  if (waiting.has(app.id)) return "waiting";
  if (app.tasksUnhealthy > 0) return "unhealthy";
  if (app.tasksRunning < app.instances) return "waiting";
  return "running";
}

function matches(app, status, words) {
  const labels = Object.entries(app.labels || {}).map(([k, v]) => `${k}=${v}`.toLowerCase());
  return words.every(word => app.id.toLowerCase().includes(word) || status === word
                             || labels.some(label => label.includes(word)));
}

function groupsOf(id) {
  const parts = id.split("/").filter(Boolean);
  return parts.slice(0, -1).map((_, i) => "/" + parts.slice(0, i + 1).join("/"));
}

function rows(apps, waiting, filter) {
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  const out = [];
  const shown = new Set();
  for (const app of apps) {
    const status = appStatus(app, waiting);
    if (!matches(app, status, words)) continue;
    const groups = groupsOf(app.id);
    groups.forEach((group, depth) => {
      if (shown.has(group)) return;
      shown.add(group);
      out.push(h("tr", {class: "group"}, h("td", {colspan: 6, style: `padding-left:${depth * 1.2 + 0.5}em`},
        "▾ ", group.split("/").pop(), "/")));
    });
    out.push(h("tr", {"data-app": app.id},
      h("td", {style: `padding-left:${groups.length * 1.2 + 0.5}em`},
        h("a", {href: `#/apps${app.id}`}, app.id.split("/").pop())),
      h("td", {}, h("span", {class: `status ${status}`}, status),
        app.deployments.length ? h("a", {class: "badge", href: "#/deployments"}, "deployment") : null),
      h("td", {}, instanceBar(app)),
      h("td", {class: "num"}, `${app.tasksRunning} / ${app.instances}`),
      h("td", {class: "num"}, (app.healthChecks || []).length ? String(app.tasksHealthy) : "–"),
      h("td", {class: "num"}, String(app.tasksStaged))));
  }
  if (!out.length) out.push(h("tr", {}, h("td", {colspan: 6, class: "muted"}, apps.length ? "No app matches." : "No apps yet.")));
  return out;
}

export default {
  title: "Apps",
  nav: "apps",
  async mount(root) {
    let apps = [], waiting = new Set();
    const filter = h("input", {type: "search", placeholder: "filter by id, label (key=value) or status",
                               "aria-label": "Filter apps", oninput: () => draw()});
    const body = h("tbody");
    fill(root,
      h("div", {class: "toolbar"}, h("h1", {}, "Apps"), filter,
        mayAnywhere("deployer") ? h("a", {class: "button primary", href: "#/create"}, "Create app") : null),
      h("table", {class: "apps"},
        h("thead", {}, h("tr", {}, ["App", "Status", "Instances", "Running", "Healthy", "Staged"].map(t => h("th", {}, t)))),
        body));
    const draw = () => fill(body, rows(apps, waiting, filter.value));
    const refresh = async () => {
      const [list, queue] = await Promise.all([get("/v2/apps"), get("/v2/queue")]);
      apps = list.apps;
      waiting = new Set(queue.queue.map(q => q.app.id));
      draw();
    };
    await refresh();
    return {refresh};
  },
};
