"""The autoscaler: policies, the pure scaling decision, the loop and its REST API.

Modules, pure first:
    cron      a 5-field cron matcher in an explicit IANA zone (``last_fire`` / ``next_fire``)
    schedule  scheduled windows: parsing, ``active_windows(schedule, now)``, ``effective_bounds``
              (the highest active minimum and maximum win)
    policy    ``Policy``; parsing from ``AUTOSCALE_*`` labels or REST JSON (``PolicyError``),
              including its ``schedule`` (label ``AUTOSCALE_SCHEDULE``: the JSON text of the list)
    observe   per running task the mean of its samples in the window, per app their sum (numpy,
              in place on the sources' ``UsageBatch``)
    recommend one app's arithmetic: the HPA replica calculator, marathon-autoscale thresholds,
              stabilization windows (read from a history's ``Timeline``), bounded steps
    decision  ``desired_instances(policy, inputs, state, now)`` and ``decide_all`` (thousands of
              apps, their samples observed in one numpy pass): the ``recommend`` steps composed
              within the bounds the schedule sets at ``now`` (a raised minimum is reached at once)
    series    ``shape_series``: an app's usage and instance count in chart buckets, as the decisions see it
    store     ``PolicyStore``: REST-registered policies in ``<dir>/policies.json``
    service   ``Autoscaler``: the loop (scheduler API client + metrics source/sink), decision log
    api       ``build_autoscaler_app``: ``/v2/autoscaler`` (policies CRUD, decisions, series, status)

It reaches the scheduler only through ``pacer_client.PacerClient``, as marathon-autoscale
reached Marathon, so it runs inside ``pacer serve`` or as ``pacer autoscaler`` unchanged.

Errors:
    PolicyError (ValueError)   a policy that does not validate; lists (field, message) pairs
    ScheduleError (ValueError) a schedule that does not validate (its pairs end up in a
                               PolicyError); CronError (ValueError) is one cron expression's
Everything else is caught where it happens and becomes a decision's reason: the scheduler
client's ``ClientError``, the metrics layer's ``MetricsError`` tree.
"""
