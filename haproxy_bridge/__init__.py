"""The HAProxy bridge: marathon-lb's job for Pacer, without its failures.

It follows the cluster through Pacer's API (`/v2/events`, falling back to polling
`/v2/apps?embed=apps.tasks`), renders haproxy.cfg from `HAPROXY_*` labels, checks it with
`haproxy -c`, writes it atomically, and applies it to a master-worker HAProxy: server-only
changes through the Runtime API (no reload), everything else through a seamless reload on the
master socket.

Decide in pure functions, act at the edges:

    labels.py   pure   label vocabulary and value checks (a bad value rejects one app, with a reason)
    model.py    pure   build_model(apps, group) -> Model: services, servers, per-app verdicts
    servers.py  pure   which tasks serve, as which servers (model.py's per-task half)
    render.py   pure   render_haproxy_config(model, settings) -> str (deterministic)
    plan.py     pure   runtime-API plan between two models (None: a reload is needed)
    narrow.py   pure   attribute `haproxy -c` errors to apps; bisect when it cannot
    validate.py pure   narrow a failing config to the apps to leave out; keep those exclusions
    sse.py      pure   Marathon SSE frame parser
    haproxy.py  edge   haproxy -c, the master-worker process, master CLI and Runtime API sockets
    watch.py    edge   event stream consumer with polling fallback, periodic resync, debounce
    service.py  edge   HaproxyBridge: the loops, the apply step
    netprobe.py edge   task host resolution cache, bind probes
    draining.py edge   servers draining after a Runtime API update, and their reaping
    status_view.py     the status document
    status_api.py      aiohttp sub-application (/v2/haproxy)
    cli.py, __main__   `pacer haproxy-bridge` / `python -m haproxy_bridge`

Exceptions (errors.py):

    BridgeError
     ├── HaproxyError            haproxy failed to start, answer, or reload
     │    └── SocketError        a CLI socket could not be reached or answered badly
     └── ConfigRejected          no valid configuration could be produced (last good one stays)
"""
