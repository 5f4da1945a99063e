// A line diff of two JSON values (keys sorted, so only real changes show), rendered as <pre>.
import { h } from "./dom.js";

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map(k => [k, sortKeys(value[k])]));
  }
  return value;
}

export const stableJson = value => JSON.stringify(sortKeys(value), null, 2);

/** [op, line] with op " " (both), "-" (only in a), "+" (only in b): longest common subsequence. */
export function lineDiff(aText, bText) {
  const a = aText.split("\n"), b = bText.split("\n");
  const n = a.length, m = b.length;
  const lcs = Array.from({length: n + 1}, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { out.push([" ", a[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(["-", a[i++]]);
    else out.push(["+", b[j++]]);
  }
  while (i < n) out.push(["-", a[i++]]);
  while (j < m) out.push(["+", b[j++]]);
  return out;
}

/** The diff of two JSON values with `context` unchanged lines around each change. */
export function jsonDiff(before, after, context = 3) {
  const ops = lineDiff(stableJson(before), stableJson(after));
  const changed = ops.map(([op]) => op !== " ");
  if (!changed.some(Boolean)) return h("p", {class: "muted diff-none"}, "No differences.");
  const near = ops.map((_, i) => changed.slice(Math.max(0, i - context), i + context + 1).some(Boolean));
  const lines = [];
  ops.forEach(([op, line], i) => {
    if (near[i]) lines.push(h("span", {class: op === "+" ? "add" : op === "-" ? "del" : "same"}, `${op} ${line}\n`));
    else if (near[i - 1] || i === 0) lines.push(h("span", {class: "skip"}, "  …\n"));
  });
  return h("pre", {class: "diff"}, lines);
}

/** A unified diff as text (the server's, as `pacer deploy --dry-run` prints it), coloured by line. */
export function unifiedDiff(text) {
  const lines = text.replace(/\n$/, "").split("\n").map(line => {
    const cls = line.startsWith("+++") || line.startsWith("---") || line.startsWith("@@") ? "skip"
      : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "same";
    return h("span", {class: cls}, `${line}\n`);
  });
  return h("pre", {class: "diff unified"}, lines);
}
