// Deployments: steps and current actions with progress; roll back or force-cancel; canary steering;
// and the deployments that wait (scheduled cutovers, approval gates, ended unstarted).
import { api, get } from "./api.js";
import { currentUser, may } from "./auth.js";
import { abort, cancelPending, decide, move, promote } from "./deployment-steer.js";
import { dialog, fill, h, notify, time } from "./dom.js";

const KNOWN = new Set(["id", "version", "affectedApps", "affectedPods", "steps", "currentActions", "currentStep",
                       "totalSteps", "canary", "canaries", "status", "scheduledAt", "approval", "author", "reason", "rejectedBy"]);
const CANARY_DONE = new Set(["promoted", "aborted"]);

async function cancel(deployment, force) {
  const what = force ? "Stop the deployment where it is, without rolling back."
                     : "Stop the deployment and deploy the previous definitions again.";
  if (!await dialog(force ? "Force-cancel the deployment" : "Roll the deployment back", h("p", {}, what),
                    force ? "Force-cancel" : "Roll back")) return;
  try {
    await api("DELETE", `/v2/deployments/${encodeURIComponent(deployment.id)}${force ? "?force=true" : ""}`);
  } catch (err) { notify(err.message, "error"); }
}

/** Where each app of a current action stands: tasks running of those wanted, and why it waits. */
function appProgress(d, apps, queue) {
  return h("ul", {class: "app-progress"}, d.currentActions.map(action => {
    const app = apps.get(action.app);
    const waiting = queue.get(action.app);
    return h("li", {}, h("b", {}, action.action), " ", h("a", {href: `#/apps${action.app}`}, action.app),
      app ? ` · ${app.tasksRunning} of ${app.instances} running` + ((app.healthChecks || []).length ? `, ${app.tasksHealthy} healthy` : "") : "",
      waiting ? h("span", {class: "reason"}, ` · waiting: ${waiting.reason || "for resources"}`) : null);
  }));
}

/** A deployment's canary blocks: one per canary app (`canaries`), or the single `canary` a Pacer
 *  that ran one canary per deployment shows. */
const canaryBlocks = d => Array.isArray(d.canaries) ? d.canaries : d.canary ? [d.canary] : [];

/** One canary app's block: its weight, step and phase, the analysis behind it, and (for a
 *  deployer on its apps, while it steps) promote and abort. With several canaries in the
 *  deployment the buttons name the app (`?appId=`); an abort still rolls back the whole deployment. */
function canaryBox(d, canary, canSteer) {
  const appId = canaryBlocks(d).length > 1 ? canary.app : undefined;
  const {app, weight = 0, step = 0, steps = 0, phase, waitingForPromotion, lastAnalysis, reason, ...rest} = canary;
  const analysis = lastAnalysis ? `last analysis ${lastAnalysis.verdict}${lastAnalysis.reason ? `: ${lastAnalysis.reason}` : ""}` : null;
  return h("div", {class: "canary", "data-phase": phase || "", "data-app": app || ""},
    h("p", {}, h("b", {}, "Canary "), `${app}: weight ${weight}%, step ${step} of ${steps}`, phase ? ` · ${phase}` : "",
      waitingForPromotion ? h("span", {class: "badge"}, "waiting for promotion") : null),
    h("div", {class: "progress"}, h("span", {style: `width:${Math.min(100, Math.max(0, weight))}%`})),
    analysis ? h("p", {class: "analysis"}, analysis) : null,
    reason ? h("p", {class: "reason"}, reason) : null,
    h("details", {}, h("summary", {}, "Analysis"), h("pre", {}, JSON.stringify({lastAnalysis, ...rest}, null, 2))),
    canSteer && !CANARY_DONE.has(phase) ? h("div", {class: "actions"},
      h("button", {onclick: () => promote(d, "next", appId)}, "Promote step"),
      h("button", {onclick: () => promote(d, "full", appId)}, "Promote fully"),
      h("button", {class: "danger", onclick: () => abort(d, appId)}, "Abort canary")) : null);
}

/** A deployment that waits: a scheduled cutover, one held for approval, or one that ended unstarted. */
function pendingCard(d) {
  const canDeploy = d.affectedApps.every(app => may("deployer", app));
  const canApprove = d.status === "awaiting approval" && d.affectedApps.every(app => may("approver", app));
  const approval = d.approval;
  return h("article", {class: "deployment pending", "data-deployment": d.id, "data-status": d.status},
    h("header", {}, h("h2", {class: "mono"}, d.id), h("span", {class: "muted"}, d.version),
      h("span", {class: `badge status-${d.status.replace(/ /g, "-")}`}, d.status)),
    h("p", {}, "Apps: ", d.affectedApps.map(a => h("a", {href: `#/apps${a}`}, a, " ")),
      d.author ? h("span", {class: "muted"}, ` · submitted by ${d.author}`) : null),
    h("p", {class: "when"}, d.scheduledAt ? ["Starts ", h("time", {dateTime: d.scheduledAt, title: d.scheduledAt}, time(d.scheduledAt)),
                                             h("span", {class: "muted"}, ` (${d.scheduledAt})`)]
                                          : d.status === "awaiting approval" ? "Starts once approved" : null),
    approval ? h("p", {class: "approval"}, approval.approvedBy
      ? `Approved by ${approval.approvedBy}${approval.comment ? `: ${approval.comment}` : ""}`
      : [`Approval needed from one of: ${approval.approvers.length ? approval.approvers.join(", ") : "nobody (no user may approve it)"}`,
         ` · expires ${time(approval.expiresAt)}`,
         d.author && d.author === currentUser() ? h("span", {class: "muted"}, " · you submitted it") : null]) : null,
    d.reason ? h("p", {class: "reason error"}, d.reason) : null,
    h("ol", {class: "steps"}, d.steps.map(step => h("li", {}, step.actions.map(a => h("span", {class: "action"}, `${a.action} ${a.app}`))))),
    canDeploy || canApprove ? h("div", {class: "actions"},
      canApprove ? h("button", {class: "primary", onclick: () => decide(d, "approve")}, "Approve") : null,
      canApprove ? h("button", {onclick: () => decide(d, "reject")}, "Reject") : null,
      canDeploy && d.scheduledAt && d.status !== "failed" ? h("button", {onclick: () => move(d)}, "Move") : null,
      canDeploy ? h("button", {class: "danger", onclick: () => cancelPending(d)}, d.status === "failed" ? "Remove" : "Cancel") : null)
      : null);
}

function card(d, apps, queue) {
  const current = new Set(d.currentActions.map(a => `${a.action} ${a.app}`));
  const extra = Object.fromEntries(Object.entries(d).filter(([k]) => !KNOWN.has(k)));
  const canDeploy = d.affectedApps.every(app => may("deployer", app));
  return h("article", {class: "deployment", "data-deployment": d.id},
    h("header", {}, h("h2", {class: "mono"}, d.id), h("span", {class: "muted"}, d.version),
      d.status ? h("span", {class: "badge"}, d.status) : null,
      d.scheduledAt ? h("span", {class: "muted"}, `starts ${d.scheduledAt}`) : null),
    h("p", {}, "Apps: ", d.affectedApps.map(a => h("a", {href: `#/apps${a}`}, a, " "))),
    h("div", {class: "progress", title: `step ${d.currentStep} of ${d.totalSteps}`},
      h("span", {style: `width:${100 * Math.max(0, d.currentStep - 1) / Math.max(d.totalSteps, 1)}%`})),
    h("ol", {class: "steps"}, d.steps.map((step, i) => h("li", {class: i + 1 === d.currentStep ? "current" : i + 1 < d.currentStep ? "done" : ""},
      step.actions.map(a => h("span", {class: current.has(`${a.action} ${a.app}`) ? "action running" : "action"},
        `${a.action} ${a.app}`))))),
    appProgress(d, apps, queue),
    canaryBlocks(d).map(canary => canaryBox(d, canary, canDeploy)),
    d.currentActions.some(a => (a.readinessCheckResults || []).length)
      ? h("pre", {}, JSON.stringify(d.currentActions.map(a => a.readinessCheckResults), null, 2)) : null,
    Object.keys(extra).length ? h("details", {}, h("summary", {}, "More"), h("pre", {}, JSON.stringify(extra, null, 2))) : null,
    canDeploy ? h("div", {class: "actions"},
      h("button", {onclick: () => cancel(d, false)}, "Roll back"),
      h("button", {class: "danger", onclick: () => cancel(d, true)}, "Force-cancel")) : null);
}

export default {
  title: "Deployments",
  nav: "deployments",
  async mount(root) {
    const list = h("div");
    fill(root, h("div", {class: "toolbar"}, h("h1", {}, "Deployments")), list);
    const refresh = async () => {
      const [deployments, {apps}, {queue}] = await Promise.all(
        [get("/v2/deployments?embed=pending"), get("/v2/apps"), get("/v2/queue?embed=reason")]);
      const byId = new Map(apps.map(a => [a.id, a]));
      const waiting = new Map(queue.map(q => [q.app.id, q]));
      const running = deployments.filter(d => !d.status), held = deployments.filter(d => d.status);
      fill(list, running.length ? running.map(d => card(d, byId, waiting))
                                : h("p", {class: "muted"}, "No deployment is running."),
        held.length ? [h("h2", {}, "Scheduled and held"), held.map(pendingCard)] : null);
    };
    await refresh();
    return {refresh};
  },
};
