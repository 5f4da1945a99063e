// App actions behind a confirmation: each says what it will do, and a 409 (the app is locked by a
// deployment) offers to force it.
import { api, ApiError, idPath } from "./api.js";
import { dialog, h, notify } from "./dom.js";

async function run(method, path, body, done) {
  try {
    await api(method, path, body);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 409) { notify(err.message, "error"); return; }
    const force = await dialog("A deployment holds this app", h("p", {}, err.message), "Force it");
    if (!force) return;
    try {
      await api(method, path + (path.includes("?") ? "&" : "?") + "force=true", body);
    } catch (again) { notify(again.message, "error"); return; }
  }
  if (done) done();
}

export async function scale(app) {
  const values = await dialog(`Scale ${app.id}`, h("p", {}, `Now ${app.instances} instances.`), "Scale",
    [{name: "instances", label: "Instances", type: "number", min: 0, value: app.instances}]);
  if (values) await run("PUT", `/v2/apps${idPath(app.id)}`, {instances: Number(values.instances)});
}

export async function suspend(app) {
  if (await dialog(`Suspend ${app.id}`, h("p", {}, "Scale to 0 instances: every task is killed."), "Suspend")) {
    await run("PUT", `/v2/apps${idPath(app.id)}`, {instances: 0});
  }
}

export async function restart(app) {
  if (await dialog(`Restart ${app.id}`, h("p", {}, "Replace every task, following the upgrade strategy."), "Restart")) {
    await run("POST", `/v2/apps${idPath(app.id)}/restart`);
  }
}

export async function destroy(app) {
  if (await dialog(`Destroy ${app.id}`, h("p", {}, "Kill every task and remove the app with its versions."), "Destroy")) {
    await run("DELETE", `/v2/apps${idPath(app.id)}`, undefined, () => { location.hash = "#/apps"; });
  }
}

export async function killTask(app, task, andScale) {
  const what = andScale ? "Kill the task and scale the app down by one." : "Kill the task; the scheduler replaces it.";
  if (await dialog(`Kill ${task.id}`, h("p", {}, what), andScale ? "Kill and scale" : "Kill")) {
    await run("DELETE", `/v2/apps${idPath(app.id)}/tasks/${encodeURIComponent(task.id)}${andScale ? "?scale=true" : ""}`);
  }
}

export async function rollBack(app, version) {
  if (await dialog(`Roll ${app.id} back`, h("p", {}, `Deploy version ${version} again.`), "Roll back")) {
    await run("PUT", `/v2/apps${idPath(app.id)}`, {version});
  }
}
