"""The HAProxy bridge: marathon-lb's job for Pacer, without its failures.

It follows the cluster through Pacer's API (`/v2/events`, falling back to polling
`/v2/apps?embed=apps.tasks`), renders haproxy.cfg from `HAPROXY_*` labels, checks it with
`haproxy -c`, writes it atomically, and applies it to a master-worker HAProxy: server-only
changes through the Runtime API (no reload), everything else through a seamless reload on the
master socket.

Decide in pure functions, act at the edges:

    labels.py       pure   label vocabulary (a bad value rejects one app, with a reason)
    label_values.py pure   the grammar of each label's value
    model.py        pure   build_model(apps, group) -> Model: services, servers, per-app verdicts
    app_model.py    pure   one app's part of the model (its services and claims), before apps compete
    incremental.py  pure   IncrementalRenderer: model + haproxy.cfg kept, redone only for changed apps
    servers.py      pure   which tasks serve, as which servers (model.py's per-task half)
    request_log.py  pure   when HAProxy logs a canary's requests, the line format, its parser
    checks.py       pure   Marathon health checks as HAProxy server checks
    ownership.py    pure   who a vhost belongs to: the first claimant, on a record that outlives restarts
    routes.py       pure   the shared frontends' rules and their order
    render.py       pure   render_haproxy_config(model, settings) -> str (deterministic)
    render_http.py  pure   a backend's access (allow-list, redirect, auth) and rewrite rules
    plan.py         pure   runtime-API plan between two models (None: a reload is needed)
    narrow.py       pure   attribute `haproxy -c` errors to apps; bisect when it cannot
    validate.py     pure   narrow a failing config to the apps to leave out; keep those exclusions
    outcomes.py     pure   what one refresh did (Unchanged, ServersUpdated, Reloaded, ...)
    state.py        pure   BridgeState: live config, verdicts, counters, last error, history
    sse.py          pure   Marathon SSE frame parser
    haproxy.py      edge   haproxy -c, the master-worker process, master CLI and Runtime API sockets
    config_files.py edge   haproxy.cfg and its siblings (and the vhost record), written atomically;
                           `haproxy -c` over them
    netprobe.py     edge   task host resolution cache, bind probes
    targets.py      edge   apps -> the model HAProxy should run (resolution, health memory, exclusions)
    applier.py      edge   HaproxyApplier: the one place that changes HAProxy (runtime API or reload)
    draining.py     edge   servers draining after a Runtime API update, and their reaping
    watch.py        loop   event stream consumer with polling fallback and periodic resync
    refresh.py      loop   change notices -> serial, spaced refreshes
    supervisor.py   loop   restart a dead HAProxy, reap drained servers
    service.py      wiring HaproxyBridge: the parts above, started, run and stopped as one
    status_view.py         the status document
    status_api.py          aiohttp sub-application (/v2/haproxy)
    cli.py, __main__       `pacer haproxy-bridge` / `python -m haproxy_bridge`

Exceptions (errors.py):

    BridgeError
     ├── HaproxyError            haproxy failed to start, answer, or reload
     │    └── SocketError        a CLI socket could not be reached or answered badly
     └── ConfigRejected          no valid configuration could be produced (last good one stays)
"""
