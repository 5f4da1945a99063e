// App detail: tasks with health, actions, the queue reason, the last failure, versions and diffs.
import * as act from "./actions.js";
import { get, idPath } from "./api.js";
import { may } from "./auth.js";
import { jsonDiff } from "./diff.js";
import { definitionOf } from "./page-create.js";
import { ago, fill, h, instanceBar, time } from "./dom.js";

function health(task) {
  const results = task.healthCheckResults || [];
  if (!results.length) return h("span", {class: "muted"}, "–");
  return results.map(r => h("div", {class: r.alive ? "ok" : "bad",
    title: r.lastFailureCause || ""}, r.alive ? "healthy" : "unhealthy",
    h("span", {class: "muted"}, r.alive ? ` · ok ${ago(r.lastSuccess)}`
      : ` · ${r.lastFailureCause || "failed"} ${ago(r.lastFailure)}`)));
}

/** "a_b.instance-1f2e3d4c-…._app.2" -> "1f2e3d4c.2": enough to tell an app's tasks apart. */
function shortId(id) {
  const found = id.match(/instance-([0-9a-f]{8})[^.]*\._app\.(\d+)$/);
  return found ? `${found[1]}.${found[2]}` : id;
}

function taskRows(app, canDeploy) {
  if (!app.tasks.length) return [h("tr", {}, h("td", {colspan: 8, class: "muted"}, "No tasks."))];
  return app.tasks.map(task => h("tr", {"data-task": task.id},
    h("td", {class: "mono", title: task.id}, shortId(task.id)),
    h("td", {}, task.host), h("td", {class: "mono"}, task.ports.join(", ")),
    h("td", {}, h("span", {class: `state ${task.state}`}, task.state.replace("TASK_", "").toLowerCase())),
    h("td", {class: "health"}, health(task)), h("td", {}, time(task.startedAt)),
    h("td", {class: "mono muted"}, task.version),
    h("td", {class: "row-actions"},
      h("a", {href: `#/logs/${encodeURIComponent(task.id)}/stdout`}, "logs"),
      canDeploy ? [h("button", {onclick: () => act.killTask(app, task, false)}, "Kill"),
                   h("button", {onclick: () => act.killTask(app, task, true)}, "Kill & scale")] : null)));
}

function waitingBox(entry) {
  if (!entry) return null;
  const rejects = entry.processedOffersSummary.rejectSummaryLastOffers.filter(r => r.declined > 0);
  return h("div", {class: "waiting", "data-queue": ""},
    h("h2", {}, `${entry.count} instance${entry.count === 1 ? "" : "s"} waiting to launch`),
    h("p", {class: "reason"}, entry.reason || "waiting for resources"),
    entry.delay.timeLeftSeconds > 0 ? h("p", {class: "muted"}, `backoff: ${entry.delay.timeLeftSeconds} s left`) : null,
    rejects.length ? h("p", {class: "muted"}, "declined offers: ", rejects.map(r => `${r.reason} (${r.declined})`).join(", ")) : null);
}

function failureBox(failure) {
  if (!failure) return null;
  return h("div", {class: "failure"}, h("h2", {}, "Last task failure"),
    h("p", {}, h("b", {}, failure.state), ` on ${failure.host} at ${time(failure.timestamp)}`),
    h("pre", {}, failure.message || ""), h("p", {class: "muted mono"}, failure.taskId));
}

export default {
  title: "App",
  nav: "apps",
  async mount(root, [appId]) {
    const path = `/v2/apps${idPath(appId)}`;
    const versionCache = new Map();
    const pick = {a: null, b: null, chosen: false};     // until the user picks, the last change is shown
    const versionJson = async v => {
      if (!versionCache.has(v)) versionCache.set(v, await get(`${path}/versions/${encodeURIComponent(v)}`));
      return versionCache.get(v);
    };

    const drawVersions = async (box, app, versions) => {
      if (!pick.chosen || !versions.includes(pick.b)) pick.b = versions[0];
      if (!pick.chosen || !versions.includes(pick.a)) pick.a = versions[1] || versions[0];
      const canDeploy = may("deployer", app.id);
      const radio = (side, v) => h("input", {type: "radio", name: `side-${side}`, checked: pick[side] === v,
        "aria-label": `compare ${side} ${v}`, onchange: () => { pick[side] = v; pick.chosen = true; drawVersions(box, app, versions); }});
      const [a, b] = await Promise.all([versionJson(pick.a), versionJson(pick.b)]);
      fill(box, h("h2", {}, "Versions"),
        h("table", {class: "versions"},
          h("thead", {}, h("tr", {}, h("th", {}, "from"), h("th", {}, "to"), h("th", {}, "Version"), h("th", {}))),
          h("tbody", {}, versions.map(v => h("tr", {"data-version": v},
            h("td", {}, radio("a", v)), h("td", {}, radio("b", v)),
            h("td", {class: "mono"}, v, v === app.version ? h("span", {class: "badge"}, "current") : null),
            h("td", {}, canDeploy && v !== app.version
              ? h("button", {onclick: () => act.rollBack(app, v)}, "Roll back to this") : null))))),
        h("h3", {}, `Changes from ${pick.a} to ${pick.b}`),
        jsonDiff({...a, version: undefined}, {...b, version: undefined}));
    };

    const head = h("div"), queueBox = h("div"), tasksBody = h("tbody"), failure = h("div"),
          versionsBox = h("div", {class: "versions-box"}), config = h("pre", {class: "config"});
    fill(root, head, queueBox,
      h("h2", {}, "Tasks"),
      h("table", {class: "tasks"}, h("thead", {}, h("tr", {},
        ["Task", "Host", "Ports", "State", "Health", "Started", "Version", ""].map(t => h("th", {}, t)))), tasksBody),
      failure, versionsBox, h("details", {}, h("summary", {}, "Configuration"), config));

    const refresh = async () => {
      let app, versions, queue;
      try {
        [{app}, {versions}, {queue}] = await Promise.all([get(path), get(`${path}/versions`), get("/v2/queue?embed=reason")]);
      } catch (err) {
        if (err.status !== 404) throw err;
        fill(root, h("p", {class: "empty-state"}, `There is no app ${appId} (any more). `, h("a", {href: "#/apps"}, "All apps")));
        return;
      }
      const canDeploy = may("deployer", app.id);
      fill(head, h("div", {class: "toolbar"},
        h("h1", {}, h("a", {href: "#/apps"}, "Apps"), " ", app.id),
        instanceBar(app), h("span", {class: "counts"}, `${app.tasksRunning} / ${app.instances} running`),
        app.deployments.length ? h("a", {class: "badge", href: "#/deployments"}, "deployment in progress") : null),
        canDeploy ? h("div", {class: "actions"},
          h("button", {onclick: () => act.scale(app)}, "Scale"),
          h("button", {onclick: () => act.restart(app)}, "Restart"),
          h("button", {onclick: () => act.suspend(app)}, "Suspend"),
          h("button", {class: "danger", onclick: () => act.destroy(app)}, "Destroy")) : null);
      fill(queueBox, waitingBox(queue.find(q => q.app.id === app.id)));
      fill(tasksBody, taskRows(app, canDeploy));
      fill(failure, failureBox(app.lastTaskFailure));
      config.textContent = JSON.stringify(definitionOf(app), null, 2);
      await drawVersions(versionsBox, app, versions);
    };
    await refresh();
    return {refresh};
  },
};
