// A time chart in hand-written SVG: lines on a left axis (a metric, in %), steps on a right axis
// (instance counts), horizontal reference lines (target, thresholds) and point markers.

const NS = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function scale(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return v => r0 + (v - d0) / span * (r1 - r0);
}

const clock = t => new Date(t * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"});

/**
 * lines: [{name, cls, points: [[t, v]], axis: "left" | "right", step}]
 * refs: [{value, name, cls}] on the left axis; markers: [{t, value, cls, title}] on the left axis;
 * bands: [{from, to, name, cls, title}] shaded time ranges (cut to the chart's time range).
 */
export function timeChart({lines = [], refs = [], markers = [], bands = [], width = 760, height = 260,
                           leftLabel = "%", rightLabel = "instances"}) {
  const pad = {l: 44, r: 44, t: 24, b: 28};
  const svg = el("svg", {viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img"});
  const all = lines.flatMap(l => l.points).concat(markers.map(m => [m.t, m.value]));
  if (!all.length) {
    svg.append(el("text", {x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty"}, "no data yet"));
    return svg;
  }
  const times = all.map(p => p[0]);
  let t0 = Math.min(...times), t1 = Math.max(...times);
  if (t1 - t0 < 10) { t0 -= 5; t1 += 5; }
  const leftValues = lines.filter(l => l.axis !== "right").flatMap(l => l.points.map(p => p[1]))
    .concat(refs.map(r => r.value), markers.map(m => m.value)).filter(v => v !== null && v !== undefined);
  const rightValues = lines.filter(l => l.axis === "right").flatMap(l => l.points.map(p => p[1]));
  const leftMax = Math.ceil(Math.max(100, ...leftValues) / 50) * 50;     // quarters of it are round numbers
  const rightMax = Math.max(1, ...rightValues) + 1;
  const x = scale(t0, t1, pad.l, width - pad.r);
  const yl = scale(0, leftMax, height - pad.b, pad.t);
  const yr = scale(0, rightMax, height - pad.b, pad.t);

  const axes = el("g", {class: "axes"});
  axes.append(el("line", {x1: pad.l, y1: height - pad.b, x2: width - pad.r, y2: height - pad.b}));
  for (let i = 0; i <= 4; i++) {
    const v = leftMax / 4 * i;
    axes.append(el("text", {x: pad.l - 6, y: yl(v) + 4, "text-anchor": "end"}, Math.round(v)));
    axes.append(el("line", {class: "grid", x1: pad.l, y1: yl(v), x2: width - pad.r, y2: yl(v)}));
  }
  for (let v = 0; v <= rightMax; v += Math.max(1, Math.ceil(rightMax / 5))) {
    axes.append(el("text", {x: width - pad.r + 6, y: yr(v) + 4}, v));
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + (t1 - t0) / 4 * i;
    axes.append(el("text", {x: x(t), y: height - 8, "text-anchor": "middle"}, clock(t)));
  }
  axes.append(el("text", {x: 4, y: 12, class: "unit"}, leftLabel));
  axes.append(el("text", {x: width - 4, y: 12, class: "unit", "text-anchor": "end"}, rightLabel));
  svg.append(axes);

  for (const band of bands) {
    const from = Math.max(band.from, t0), to = Math.min(band.to, t1);
    if (!(to > from)) continue;
    const g = el("g", {class: `band ${band.cls || ""}`, "data-window": band.name});
    g.append(el("rect", {x: x(from), y: pad.t, width: Math.max(1, x(to) - x(from)), height: height - pad.b - pad.t}));
    g.append(el("text", {x: x(from) + 3, y: pad.t + 11}, band.name));
    g.append(el("title", {}, band.title || band.name));
    svg.append(g);
  }

  for (const ref of refs) {
    const g = el("g", {class: `ref ${ref.cls || ""}`});
    g.append(el("line", {x1: pad.l, x2: width - pad.r, y1: yl(ref.value), y2: yl(ref.value)}));
    g.append(el("text", {x: width - pad.r - 4, y: yl(ref.value) - 4, "text-anchor": "end"}, `${ref.name} ${ref.value}`));
    svg.append(g);
  }
  for (const line of lines) {
    const y = line.axis === "right" ? yr : yl;
    const pts = line.points.filter(p => p[1] !== null && p[1] !== undefined);
    if (!pts.length) continue;
    let d = `M${x(pts[0][0])},${y(pts[0][1])}`;
    for (let i = 1; i < pts.length; i++) {
      d += line.step ? `H${x(pts[i][0])}V${y(pts[i][1])}` : `L${x(pts[i][0])},${y(pts[i][1])}`;
    }
    const path = el("path", {d, class: `series ${line.cls || ""}`});
    path.append(el("title", {}, line.name));
    svg.append(path);
  }
  for (const m of markers) {
    const dot = el("circle", {cx: x(m.t), cy: yl(m.value ?? 0), r: 4, class: `marker ${m.cls || ""}`});
    dot.append(el("title", {}, m.title || ""));
    svg.append(dot);
  }
  return svg;
}

/** The chart's legend: [{name, cls}] -> swatches. */
export function legend(items) {
  const box = document.createElement("div");
  box.className = "legend";
  for (const item of items) {
    const span = document.createElement("span");
    span.className = `swatch ${item.cls}`;
    box.append(span, ` ${item.name} `);
  }
  return box;
}
