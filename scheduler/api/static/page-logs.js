// A task's stdout/stderr: the tail, then followed by reading on from the last offset; download.
import { ApiError, get } from "./api.js";
import { authHeaders } from "./auth.js";
import { fill, h, notify } from "./dom.js";

const TAIL = 64 * 1024;
const CHUNK = 64 * 1024;
const KEEP = 1024 * 1024;           // characters kept on screen
const FOLLOW_MS = 1000;

export default {
  title: "Task logs",
  nav: "apps",
  async mount(root, [taskId, stream]) {
    const url = `/v2/tasks/${encodeURIComponent(taskId)}/files/${stream}`;
    const out = h("pre", {class: "log", "data-stream": stream});
    const follow = h("input", {type: "checkbox", checked: true, "aria-label": "Follow"});
    const status = h("span", {class: "muted"});
    let offset = 0, timer = null, stopped = false;

    const download = async () => {
      const response = await fetch(`${url}?download=1`, {credentials: "omit", headers: authHeaders()});
      if (!response.ok) { notify(`download failed: HTTP ${response.status}`, "error"); return; }
      const link = h("a", {href: URL.createObjectURL(await response.blob()), download: `${taskId}.${stream}`});
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 1000);
    };
    const other = stream === "stdout" ? "stderr" : "stdout";
    // a task id is its app id with "/" as "_" (never in an id segment), then ".instance-…"
    const appId = "/" + taskId.split(".instance-")[0].replace(/_/g, "/");
    fill(root,
      h("div", {class: "toolbar"}, h("h1", {}, h("a", {href: `#/apps${appId}`}, appId), ` · ${stream} of `,
                                                h("span", {class: "mono"}, taskId)),
        h("a", {href: `#/logs/${encodeURIComponent(taskId)}/${other}`}, other),
        h("label", {}, follow, " follow"), h("button", {onclick: download}, "Download"), status),
      out);

    const append = text => {
      out.textContent = (out.textContent + text).slice(-KEEP);
      if (follow.checked) out.scrollTop = out.scrollHeight;
    };

    const read = async () => {
      for (;;) {
        const chunk = await get(`${url}?offset=${offset}&length=${CHUNK}`);
        if (chunk.size < offset) {                  // rotated: the current file starts again at 0
          offset = 0;
          append("\n[the log was rotated]\n");
          continue;
        }
        if (!chunk.data) { status.textContent = `${chunk.size} bytes`; return; }
        offset = chunk.nextOffset ?? chunk.offset + new TextEncoder().encode(chunk.data).length;
        append(chunk.data);
        if (offset >= chunk.size) { status.textContent = `${chunk.size} bytes`; return; }
      }
    };

    const tick = async () => {
      if (stopped) return;
      try {
        if (follow.checked) await read();
      } catch (err) {
        status.textContent = err.message;
      }
      if (!stopped) timer = setTimeout(tick, FOLLOW_MS);
    };

    try {
      const {size} = await get(`${url}?offset=-1`);
      const start = Math.max(0, size - TAIL);
      offset = start;
      await read();
      if (start > 0 && out.textContent.includes("\n")) {
        out.textContent = out.textContent.slice(out.textContent.indexOf("\n") + 1);   // a partial first line
      }
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      fill(out, err.message);
    }
    timer = setTimeout(tick, FOLLOW_MS);
    return {unmount() { stopped = true; clearTimeout(timer); }};
  },
};
