// What a person does to a deployment that waits or steps: cancel or move a scheduled one, approve
// or reject a held one, promote or abort a canary. Refusals (a 403 for the author approving, a
// 422 for a bad time) come back as the server's own message.
import { api } from "./api.js";
import { dialog, h, notify } from "./dom.js";

const path = (d, action = "") => `/v2/deployments/${encodeURIComponent(d.id)}${action}`;

async function send(method, url, body, done) {
  try {
    await api(method, url, body);
    if (done) notify(done);
  } catch (err) { notify(err.message, "error"); }
}

export async function cancelPending(d) {
  const ended = d.status === "failed";
  if (!await dialog(ended ? "Remove the ended deployment" : "Cancel the deployment",
                    h("p", {}, ended ? "Remove it from the list." : "Nothing has changed yet: the change is dropped."),
                    ended ? "Remove" : "Cancel deployment")) return;
  await send("DELETE", path(d), undefined, `${ended ? "Removed" : "Cancelled"} ${d.id}`);
}

export async function move(d) {
  const values = await dialog("Move the cutover", h("p", {}, "A new start time, ISO 8601 with its offset."), "Move",
    [{name: "scheduledAt", label: "Starts at", value: d.scheduledAt}]);
  if (values) await send("PUT", path(d), {scheduledAt: values.scheduledAt.trim()}, `Moved ${d.id}`);
}

export async function decide(d, verdict) {
  const values = await dialog(verdict === "approve" ? "Approve the deployment" : "Reject the deployment",
    h("p", {}, `${d.affectedApps.join(", ")}: the comment goes into the audit log.`),
    verdict === "approve" ? "Approve" : "Reject",
    [{name: "comment", label: "Comment", optional: verdict === "approve"}]);
  if (values) await send("POST", path(d, `/${verdict}`), {comment: values.comment}, `${verdict === "approve" ? "Approved" : "Rejected"} ${d.id}`);
}

// `appId`: the one canary app of a deployment of several to act on (undefined: every canary of it).
const ofApp = appId => appId ? `?appId=${encodeURIComponent(appId)}` : "";

export async function promote(d, mode, appId) {
  const what = mode === "full" ? "Skip every remaining step and roll the rest of the app."
                               : "End the current step now and go on to the next.";
  const title = `${mode === "full" ? "Promote the canary fully" : "Promote the canary one step"}${appId ? ` (${appId})` : ""}`;
  if (await dialog(title, h("p", {}, what), "Promote")) {
    await send("POST", path(d, `/promote${ofApp(appId)}`), {mode});
  }
}

export async function abort(d, appId) {
  const what = appId ? `Weight 0 for ${appId}'s canary; the whole deployment fails and every app of it rolls back to its stable version.`
                     : "Weight 0, the deployment fails and the app rolls back to its stable version.";
  const values = await dialog(`Abort the canary${appId ? ` (${appId})` : ""}`, h("p", {}, what),
    "Abort", [{name: "reason", label: "Reason", value: "aborted from the web UI"}]);
  if (values) await send("POST", path(d, `/abort${ofApp(appId)}`), {reason: values.reason});
}
