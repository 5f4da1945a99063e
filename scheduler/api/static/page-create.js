// Create (or change) an app from pasted JSON: a 422's details appear next to the field each names,
// and an id that exists already shows the diff against the current definition before the PUT.
// With an environment's file pasted too, the server merges it as `pacer deploy --env` does
// (POST /v2/deploy/dry-run) and the page shows the command's own --dry-run diff before the PUT.
import { api, ApiError, get, idPath } from "./api.js";
import { jsonDiff, unifiedDiff } from "./diff.js";
import { dialog, fill, h, notify } from "./dom.js";

const LINE = 18;   // px, the editor's line height (style.css .editor)
const EXAMPLE = {id: "/example/web", cmd: "sleep 3600", instances: 1, cpus: 0.1, mem: 32};
const STATUS_FIELDS = ["tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy", "deployments", "tasks",
                       "lastTaskFailure", "version", "versionInfo"];

/** Pretty JSON as lines, and the line of each JSON pointer ("/a/0/b") in it. */
export function prettyWithLines(value) {
  const lines = [], where = new Map();
  const walk = (v, path, indent, prefix, comma) => {
    where.set(path || "/", lines.length);
    const pad = "  ".repeat(indent);
    if (v && typeof v === "object" && Object.keys(v).length) {
      const isArray = Array.isArray(v);
      lines.push(`${pad}${prefix}${isArray ? "[" : "{"}`);
      const keys = Object.keys(v);
      keys.forEach((k, i) => walk(v[k], `${path}/${k}`, indent + 1, isArray ? "" : `${JSON.stringify(k)}: `,
                                  i < keys.length - 1 ? "," : ""));
      lines.push(`${pad}${isArray ? "]" : "}"}${comma}`);
    } else {
      lines.push(`${pad}${prefix}${JSON.stringify(v)}${comma}`);
    }
  };
  walk(value, "", 0, "", "");
  return {text: lines.join("\n"), where};
}

/** The line a 422 detail's path points at: the field, or the closest parent that exists. */
export function lineOf(where, path) {
  const parts = path.replace(/\((\d+)\)/g, "/$1").split("/").filter(Boolean);
  for (let n = parts.length; n >= 0; n--) {
    const key = "/" + parts.slice(0, n).join("/");
    if (where.has(key)) return [where.get(key), n === parts.length];
  }
  return [0, false];
}

/** An app as the API shows it, without what the scheduler adds (counts, tasks, deployments). */
export function definitionOf(app) {
  const out = {...app};
  for (const key of STATUS_FIELDS) delete out[key];
  return out;
}

export default {
  title: "Create app",
  nav: "apps",
  async mount(root) {
    const editor = h("textarea", {class: "editor", spellcheck: false, "aria-label": "App definition (JSON)",
                                  value: JSON.stringify(EXAMPLE, null, 2)});
    const notes = h("div", {class: "notes"});
    const review = h("div", {class: "review"});
    const submit = h("button", {class: "primary", type: "button"}, "Create");
    const message = h("p", {class: "error", role: "alert"});
    const envName = h("input", {name: "env", placeholder: "prod", "aria-label": "Environment", size: 12});
    const overlay = h("textarea", {class: "editor overlay", spellcheck: false, "aria-label": "Environment file (JSON)",
                                   placeholder: '{"instances": 4}  (app.<env>.json: merged onto the definition)'});
    const clear = () => { notes.replaceChildren(); message.textContent = ""; review.replaceChildren(); };
    editor.addEventListener("input", clear);
    overlay.addEventListener("input", clear);
    envName.addEventListener("input", clear);
    editor.addEventListener("scroll", () => { notes.style.transform = `translateY(${-editor.scrollTop}px)`; });
    fill(root,
      h("div", {class: "toolbar"}, h("h1", {}, "Create or change an app")),
      h("p", {class: "muted"}, "Paste a Marathon app definition. An id that exists already is shown as a diff first."),
      h("div", {class: "editor-box"}, editor, h("div", {class: "notes-clip"}, notes)),
      h("details", {class: "environment"},
        h("summary", {}, "Per-environment file (as pacer deploy -f app.json --env NAME)"),
        h("p", {class: "muted"}, "The definition above is app.json; paste app.<env>.json here. The page shows what ",
          h("code", {}, "pacer deploy --dry-run"), " prints before anything changes."),
        h("label", {}, "Environment ", envName), overlay),
      message, h("div", {class: "actions"}, submit), review);

    const showDetails = (body, details) => {
      const {text, where} = prettyWithLines(body);
      editor.value = text;
      notes.replaceChildren();
      for (const detail of details) {
        const [line, exact] = lineOf(where, detail.path);
        notes.append(h("div", {class: "field-error", "data-path": detail.path, style: `top:${line * LINE}px`},
          `← ${detail.path}${exact ? "" : " (missing)"}: ${detail.errors.join("; ")}`));
      }
    };

    const send = async (method, path, body, force = false, inEditor = true) => {
      try {
        await api(method, force ? `${path}${path.includes("?") ? "&" : "?"}force=true` : path, body);
        notify(`${method === "POST" ? "Created" : "Changed"} ${body.id}`);
        location.hash = `#/apps${idPath(body.id)}`;
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        if (err.status === 409 && err.body.deployments && !force
            && await dialog("A deployment holds this app", h("p", {}, err.message), "Force it")) {
          await send(method, path, body, true, inEditor);
          return;
        }
        message.textContent = err.message;
        if (err.body.details && inEditor) showDetails(body, err.body.details);
        else if (err.body.details) listDetails(err.body.details);
      }
    };

    const listDetails = details => message.append(h("ul", {class: "details"},
      details.map(d => h("li", {"data-path": d.path}, `${d.path}: ${d.errors.join("; ")}`))));

    /** The environment's definition through the server's merge, its dry-run diff, and the PUT. */
    const dryRun = async definition => {
      let patch = null;
      if (overlay.value.trim()) {
        try { patch = JSON.parse(overlay.value); } catch (err) { message.textContent = `Environment file: not valid JSON: ${err.message}`; return; }
      }
      const env = envName.value.trim() || null;
      let result;
      try {
        result = await api("POST", "/v2/deploy/dry-run", {definition, env, overlay: patch});
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        message.textContent = err.message;
        if (err.body.details) listDetails(err.body.details);
        return;
      }
      const where = env ? ` in ${env}` : "";
      fill(review,
        h("h2", {}, `${result.id}${where}: ${result.deployed ? "what changes" : "a new app"} (pacer deploy --dry-run)`),
        unifiedDiff(result.diff),
        h("details", {}, h("summary", {}, "The merged definition"), h("pre", {}, JSON.stringify(result.definition, null, 2))),
        h("button", {class: "primary", onclick: () => send("PUT", `/v2/apps${idPath(result.id)}?partialUpdate=false`,
                                                            result.definition, false, false)},
          `Deploy${where} (PUT)`));
    };

    submit.addEventListener("click", async () => {
      message.textContent = "";
      let body;
      try { body = JSON.parse(editor.value); } catch (err) { message.textContent = `Not valid JSON: ${err.message}`; return; }
      if (envName.value.trim() || overlay.value.trim()) { await dryRun(body); return; }
      const id = typeof body.id === "string" ? idPath(body.id) : null;
      const existing = id ? (await get(`/v2/apps?id=${encodeURIComponent(id)}`)).apps.find(a => a.id === id) : null;
      if (!existing) { await send("POST", "/v2/apps", body); return; }
      const current = definitionOf(existing);
      fill(review,
        h("h2", {}, `${id} exists: these changes will be applied`),
        jsonDiff(current, {...current, ...body, id}),
        h("button", {class: "primary", onclick: () => send("PUT", `/v2/apps${id}`, body)}, "Apply changes (PUT)"));
    });
    return {};
  },
};
