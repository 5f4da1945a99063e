// HAProxy: the bridge's status and its verdict on each app (included, rejected, skipped, with why).
import { get, getOptional, getText } from "./api.js";
import { fill, h, time } from "./dom.js";
import { routesFromConfig } from "./haproxy-config.js";

/** The badge colour for HAProxy's own status text: "UP", "DOWN", "UP 1/3" (going down), "MAINT (via x/y)"… */
function stateClass(status) {
  if (/^(UP|DOWN) \d/.test(status)) return "changing";
  const word = status.split(/[\s(]/)[0].toLowerCase();
  return ["up", "down", "maint", "drain", "nolb"].includes(word) ? word : "other";
}

/** A server's line: address and weight from the configuration, state and last check from HAProxy. */
function serverLine(s, live) {
  const parts = [`${s.address} (${s.weight})`];
  if (live) {
    parts.push(" ", h("span", {class: `srv-state ${stateClass(live.status)}`,
                                title: live.lastChangeSeconds === null ? null : `for ${live.lastChangeSeconds} s`},
                      live.status));
    if (live.checkStatus) {
      parts.push(" ", h("span", {class: "muted", title: "last health check"},
                        `${live.checkStatus}${live.checkCode !== null ? ` ${live.checkCode}` : ""}`));
    }
  } else {
    parts.push(`${s.checked ? " checked" : ""}${s.disabled ? " disabled" : ""}`);
  }
  return h("div", {class: s.disabled ? "muted" : "", "data-server": s.name, "data-status": live ? live.status : null},
           parts);
}

/** vhost or service port -> app -> servers, from the running configuration, the verdicts and
 *  HAProxy's server states ("backend/server" -> state). */
function routes(config, apps, states) {
  if (!config) return h("p", {class: "muted"}, "HAProxy has no configuration yet.");
  const {backends, ports, vhosts} = routesFromConfig(config);
  const owner = new Map(apps.flatMap(a => a.backends.map(b => [b, a.id])));
  const rows = [...vhosts.map(v => [`${v.host}${v.path}`, v.backend]), ...ports.map(p => [`:${p.port}`, p.backend])];
  if (!rows.length) return h("p", {class: "muted"}, "No routes.");
  return h("table", {class: "routes"},
    h("thead", {}, h("tr", {}, ["Virtual host / service port", "App", "Backend",
                                "Servers (weight) · state · last check"].map(t => h("th", {}, t)))),
    h("tbody", {}, rows.map(([route, backend]) => {
      const app = owner.get(backend);
      const servers = (backends[backend] || {servers: []}).servers;
      return h("tr", {"data-route": route},
        h("td", {class: "mono"}, route),
        h("td", {}, app ? h("a", {href: `#/apps${app}`}, app) : "–"),
        h("td", {class: "mono"}, backend),
        h("td", {class: "mono"},
          servers.length ? servers.map(s => serverLine(s, states.get(`${backend}/${s.name}`))) : "none"));
    })));
}

function verdicts(apps, state) {
  const shown = apps.filter(a => a.state === state);
  if (!shown.length) return h("p", {class: "muted"}, `No ${state} app.`);
  return h("table", {class: `haproxy-${state}`},
    h("thead", {}, h("tr", {}, ["App", "Backends (service port / vhost)", "Servers", "Why"].map(t => h("th", {}, t)))),
    h("tbody", {}, shown.map(a => h("tr", {"data-app": a.id},
      h("td", {}, h("a", {href: `#/apps${a.id}`}, a.id)),
      h("td", {class: "mono"}, a.backends.join(", ") || "–"),
      h("td", {class: "num"}, String(a.servers)),
      h("td", {}, [...a.reasons, ...a.warnings].join("; ") || "–")))));
}

/** "backend/server" -> HAProxy's runtime view of it (GET /v2/haproxy/servers); empty, with the
 *  reason, while HAProxy is down. */
async function serverStates() {
  try {
    const answer = await get("/v2/haproxy/servers");
    return {states: new Map(answer.servers.map(s => [`${s.backend}/${s.server}`, s])), error: null};
  } catch (err) {
    if (err.status === 401) throw err;
    return {states: new Map(), error: err.message};
  }
}

export default {
  title: "HAProxy",
  nav: "haproxy",
  async mount(root) {
    const body = h("div");
    fill(root, h("div", {class: "toolbar"}, h("h1", {}, "HAProxy")), body);
    const refresh = async () => {
      const status = await getOptional("/v2/haproxy");
      if (!status) { fill(body, h("p", {class: "empty-state"}, "No HAProxy bridge in this process.")); return; }
      const [config, servers] = await Promise.all([getText("/v2/haproxy/config"), serverStates()]);
      const hp = status.haproxy, reload = status.lastReload;
      fill(body,
        h("p", {}, hp.running ? "HAProxy running" : "HAProxy not running", ` · master pid ${hp.masterPid ?? "–"}`,
          ` · ports http ${hp.ports.http}, https ${hp.ports.https}, stats ${hp.ports.stats}`),
        h("p", {}, "Last reload: ", reload ? `${reload.ok ? "ok" : "failed"} at ${time(reload.at)} ${reload.message || ""}` : "none yet"),
        status.lastError ? h("p", {class: "error"}, status.lastError) : null,
        h("h2", {}, "Routes"),
        servers.error ? h("p", {class: "muted"}, `Server states unavailable: ${servers.error}`) : null,
        routes(config, status.apps, servers.states),
        ["included", "rejected", "skipped"].map(state => [h("h2", {}, state), verdicts(status.apps, state)]));
    };
    await refresh();
    return {refresh};
  },
};
