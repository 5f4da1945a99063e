// Autoscaler: the policies, and per app a chart of the metric against the policy's target or
// thresholds with the instance count, plus the decision timeline.
import { get, getOptional } from "./api.js";
import { legend, timeChart } from "./chart.js";
import { fill, h, time } from "./dom.js";

const MIN_SECONDS = 120, MAX_SECONDS = 7 * 86400;

/** The series window: back to the oldest decision shown, so its buckets are as fine as they can be. */
function seriesSeconds(decisions) {
  const span = decisions.length ? Date.now() / 1000 - decisions[0].time : 3600;
  return Math.min(MAX_SECONDS, Math.max(MIN_SECONDS, Math.ceil(span) + 30));
}

function policyTable(policies) {
  if (!policies.length) return h("p", {class: "muted"}, "No autoscaling policy. Add AUTOSCALE_* labels to an app or POST /v2/autoscaler/policies.");
  return h("table", {class: "policies"},
    h("thead", {}, h("tr", {}, ["App", "Source", "Mode", "Metric", "Target / thresholds", "Min–max"].map(t => h("th", {}, t)))),
    h("tbody", {}, policies.map(p => h("tr", {"data-app": p.appId},
      h("td", {}, h("a", {href: `#/autoscaler${p.appId}`}, p.appId)),
      h("td", {}, p.source), h("td", {}, p.error ? h("span", {class: "error"}, p.error) : p.mode),
      h("td", {}, p.metric ?? ""),
      h("td", {}, p.target !== undefined ? `target ${p.target}` : `up > ${p.scaleUpAbove ?? "–"}, down < ${p.scaleDownBelow ?? "–"}`),
      h("td", {}, p.min !== undefined ? `${p.min}–${p.max}` : "")))));
}

const windowName = w => w.name || `schedule[${w.index}]`;

function windowBounds(w) {
  return [w.minInstances != null ? `min ${w.minInstances}` : null, w.maxInstances != null ? `max ${w.maxInstances}` : null]
    .filter(Boolean).join(", ");
}

/** The scheduled windows to shade: their spans from the series API, else the spans the
 *  decisions carry (the windows that applied then), each span once. */
function windowBands(decisions, series) {
  const spans = series && series.windows ? series.windows
    : decisions.flatMap(d => (d.schedule && d.schedule.windows) || []);
  const seen = new Map();
  for (const w of spans) seen.set(`${w.index} ${w.from}`, w);
  return [...seen.values()].map(w => ({
    from: new Date(w.from).getTime() / 1000, to: new Date(w.to).getTime() / 1000, name: windowName(w),
    cls: "window", title: `${windowName(w)}: ${w.from} – ${w.to}${w.cron ? ` (${w.cron} until ${w.until}, ${w.timezone})` : ""}: ${windowBounds(w)}`,
  }));
}

/** Which windows set the bounds of a decision: "sale (min 30)", or "–" with no window active. */
function appliedWindows(d) {
  const windows = (d.schedule && d.schedule.windows) || [];
  if (!windows.length) return "–";
  return windows.map(w => `${windowName(w)}${w.sets && w.sets.length ? ` (sets ${w.sets.join(", ")})` : ""}`).join("; ")
    + ` → [${d.schedule.min}, ${d.schedule.max}]`;
}

/** Chart lines from the series API when it answers, else from what the decisions carry. */
function chartOf(decisions, series, policy) {
  const metric = (policy && policy.metric) || "cpu";
  const refs = [];
  if (policy) {
    if (policy.target !== undefined) refs.push({value: policy.target, name: "target", cls: "target"});
    if (policy.scaleUpAbove !== undefined) refs.push({value: policy.scaleUpAbove, name: "scale up above", cls: "up"});
    if (policy.scaleDownBelow !== undefined) refs.push({value: policy.scaleDownBelow, name: "scale down below", cls: "down"});
  }
  const desired = {name: "desired", cls: "desired", axis: "right", step: true, points: decisions.map(d => [d.time, d.desired])};
  const lines = series && series.points.length
    ? [{name: `${metric} %`, cls: "metric", points: series.points.map(p => [p.time, metric === "memory" ? p.memory : p.cpu])},
       {name: "instances", cls: "instances", axis: "right", step: true, points: series.points.map(p => [p.time, p.instances])},
       desired]
    : [{name: `${metric} % (observed)`, cls: "metric", points: decisions.map(d => [d.time, d.observed])},
       {name: "instances", cls: "instances", axis: "right", step: true, points: decisions.map(d => [d.time, d.current])},
       desired];
  const markers = decisions.map(d => ({t: d.time, value: d.observed ?? 0, cls: `decision ${d.action}`,
    title: `${time(d.time)}: ${d.action} ${d.current} → ${d.desired}: ${d.reason}`}));
  const bands = windowBands(decisions, series);
  return [timeChart({lines, refs, markers, bands}),
          legend([...lines.map(l => ({name: l.name, cls: l.cls})), ...refs.map(r => ({name: r.name, cls: `ref ${r.cls}`})),
                  {name: "decision", cls: "decision"}, ...(bands.length ? [{name: "scheduled window", cls: "window"}] : [])])];
}

function timeline(decisions) {
  return h("table", {class: "decisions"},
    h("thead", {}, h("tr", {}, ["Time", "Action", "Instances", "Observed", "Window", "Reason"].map(t => h("th", {}, t)))),
    h("tbody", {}, decisions.slice().reverse().slice(0, 50).map(d => h("tr", {class: d.action},
      h("td", {}, time(d.time)), h("td", {}, d.action), h("td", {class: "num"}, `${d.current} → ${d.desired}`),
      h("td", {class: "num"}, d.observed ?? "–"), h("td", {class: "window"}, appliedWindows(d)), h("td", {}, d.reason)))));
}

export default {
  title: "Autoscaler",
  nav: "autoscaler",
  async mount(root, [appId]) {
    const body = h("div");
    fill(root, h("div", {class: "toolbar"}, h("h1", {}, "Autoscaler", appId ? ` · ${appId}` : "")), body);
    const refresh = async () => {
      const listing = await getOptional("/v2/autoscaler/policies");
      if (!listing) { fill(body, h("p", {class: "empty-state"}, "No autoscaler in this process.")); return; }
      const policies = listing.policies;
      if (!appId) { fill(body, policyTable(policies)); return; }
      const query = `appId=${encodeURIComponent(appId)}`;
      const {decisions} = await get(`/v2/autoscaler/decisions?${query}&limit=500`);
      const series = await getOptional(`/v2/autoscaler/series?${query}&seconds=${seriesSeconds(decisions)}`);
      const policy = (series && series.policy) || policies.find(p => p.appId === appId);
      fill(body, h("p", {}, h("a", {href: "#/autoscaler"}, "All policies"), " · ", h("a", {href: `#/apps${appId}`}, "the app")),
        h("div", {class: "chart-box"}, chartOf(decisions, series, policy)),
        h("h2", {}, "Decisions"), decisions.length ? timeline(decisions) : h("p", {class: "muted"}, "No decision yet."));
    };
    await refresh();
    return {refresh};
  },
};
