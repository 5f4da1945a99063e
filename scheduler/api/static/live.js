// /v2/events read with fetch() so the Authorization header goes along (EventSource cannot send
// headers); reconnects with backoff and reports its state for the "disconnected" banner.
import { authHeaders } from "./auth.js";

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const SILENCE_MS = 35_000;   // the server sends a heartbeat every 10 s: this much silence is a dead stream

/** Parses one SSE frame ("event: x\ndata: {...}") into [type, data], or null for comments. */
export function parseFrame(frame) {
  let type = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith("event:")) type = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return null;
  try { return [type, JSON.parse(data.join("\n"))]; } catch { return [type, data.join("\n")]; }
}

/**
 * Streams events to onEvent(type, data) until stop() is called; onState("connected" |
 * "disconnected" | "unauthorized") on each change. After a reconnect onState("connected")
 * lets the page reload what it may have missed.
 */
export function connectEvents(onEvent, onState) {
  let stopped = false;
  let controller = null;
  let heard = Date.now();
  const watchdog = setInterval(() => {
    if (controller && Date.now() - heard > SILENCE_MS) controller.abort();
  }, 5000);
  (async () => {
    let delay = 500;
    while (!stopped) {
      controller = new AbortController();
      heard = Date.now();
      try {
        const response = await fetch("/v2/events", {signal: controller.signal, credentials: "omit",
          headers: {Accept: "text/event-stream", ...authHeaders()}});
        if (response.status === 401) { clearInterval(watchdog); onState("unauthorized"); return; }
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        onState("connected");
        delay = 500;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          heard = Date.now();
          buffer += value.replace(/\r\n/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const event = parseFrame(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (event) onEvent(...event);
          }
        }
      } catch (err) {
        if (stopped) return;
      }
      onState("disconnected");
      await sleep(delay);
      delay = Math.min(delay * 2, 8000);
    }
  })();
  return {stop() { stopped = true; clearInterval(watchdog); if (controller) controller.abort(); }};
}
