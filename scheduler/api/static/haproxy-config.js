// Reads the routes out of the haproxy.cfg the bridge runs (GET /v2/haproxy/config): which service
// port and which virtual host lead to which backend, and each backend's servers with their weights.

const HOST_ACL = /^acl\s+(\S+)\s+(?:var\(txn\.pacer_host\)\s+-m\s+str|hdr\(host\)\s+-i|req\.hdr\(host\)\s+-i)\s+(.+)$/;
const PATH_ACL = /^acl\s+(\S+)\s+path_beg\s+(.+)$/;

/**
 * {backends: {name: {servers: [{name, address, weight, checked, disabled}]}},
 *  ports: [{port, backend}], vhosts: [{host, path, backend}]}
 */
export function routesFromConfig(text) {
  const backends = {}, ports = [], vhosts = [];
  let section = null, name = null, binds = [], hosts = {}, paths = {};
  const endFrontend = () => { binds = []; hosts = {}; paths = {}; };
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const head = raw.match(/^(frontend|backend|listen|global|defaults|userlist|resolvers|peers)\b\s*(\S*)/);
    if (head) {
      endFrontend();
      [section, name] = [head[1], head[2]];
      if (section === "backend") backends[name] = {servers: []};
      continue;
    }
    if (section === "frontend") {
      const bind = line.match(/^bind\s+\S*:(\d+)/);
      if (bind) binds.push(Number(bind[1]));
      const host = line.match(HOST_ACL);
      if (host) hosts[host[1]] = host[2].split(/\s+/);
      const path = line.match(PATH_ACL);
      if (path) paths[path[1]] = path[2].split(/\s+/);
      const use = line.match(/^use_backend\s+(\S+)(?:\s+if\s+(.+))?$/);
      if (use && !use[2]) binds.forEach(port => ports.push({port, backend: use[1]}));
      if (use && use[2]) {
        const terms = use[2].split(/\s+/);
        const onHosts = terms.flatMap(t => hosts[t] || []), onPaths = terms.flatMap(t => paths[t] || []);
        if (onHosts.length || onPaths.length) {
          for (const host of onHosts.length ? onHosts : ["*"]) {
            for (const path of onPaths.length ? onPaths : [""]) vhosts.push({host, path, backend: use[1]});
          }
        }
      }
    } else if (section === "backend") {
      const server = line.match(/^server\s+(\S+)\s+(\S+)(.*)$/);
      if (server) {
        const weight = server[3].match(/\bweight\s+(\d+)/);
        backends[name].servers.push({name: server[1], address: server[2], weight: weight ? Number(weight[1]) : 1,
                                     checked: /\bcheck\b/.test(server[3]), disabled: /\bdisabled\b/.test(server[3])});
      }
    }
  }
  return {backends, ports, vhosts};
}
