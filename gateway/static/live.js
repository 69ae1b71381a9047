// live.js — owns live delivery for the tab: one EventSource on api/stream, the fallback to
// long polling on api/events, periodic attempts to get the stream back, the connection
// state (connecting / live / reconnecting / polling / offline) and the event cursor. Both
// URLs are relative to the page, so they keep whatever prefix the gateway is served under.
//
// The state is honest: "live" only between a stream's hello and its end; "polling" only
// after a poll answered; "reconnecting" while neither works (the server is down, say); and
// "offline" while the browser says it is (the `offline` event), with nothing attempted until
// `online`, when the stream is tried at once. Waits between attempts are short (capped at
// `maxReconnectMs`) and jittered, so many tabs coming back together don't arrive at once.
//
// The server may end a stream with a final `closed` event ({"reason"}, no id):
//   signed_out  the session ended: stop everything and tell the app (signed-out screen);
//   evicted     too many streams for this member: poll from now on, without probing the
//               stream again (a probe would only be evicted, or evict another tab);
//   otherwise   (shutdown, lifetime, anything new) a routine cut: reconnect from the cursor.
//
// Both transports carry the same event ids, so every event goes through `accept()`, which
// drops anything at or below the cursor. Each transport starts from the cursor it was given
// and delivers in id order, so overlapping them (a probe stream while polling, a poll still in
// flight when the stream returns) can neither skip nor repeat an event.

import { api } from "./api.js";

export const DEFAULTS = {
  helloTimeoutMs: 4000, // an opened stream that says nothing for this long is buffered: poll
  maxStreamFailures: 3, // consecutive failed stream attempts before falling back to polling
  reconnectDelaysMs: [300, 1000, 2000], // between stream attempts
  healthyStreamMs: 1000, // a stream cut after living this long is a normal cut, not a failure
  streamRetryMs: [15000, 30000, 60000], // while polling a server that answers, try the stream
  pollWaitSeconds: 25,
  pollErrorDelaysMs: [1000, 2000, 3000], // while the server can't be reached at all
  maxReconnectMs: 4000, // no wait for the server to come back is longer than this
  jitter: 0.4, // each such wait is shortened by up to this fraction, at random
};

/** The n-th wait of `delays` (the last repeats), capped and jittered. */
export function backoff(delays, n, { maxReconnectMs, jitter }) {
  const base = Math.min(delays[Math.min(n, delays.length - 1)], maxReconnectMs);
  return Math.max(0, Math.round(base * (1 - jitter * Math.random())));
}

const EVENT_TYPES = ["message", "conversation", "read", "reset"];

export class LiveFeed {
  /**
   * handlers: onEvent(type, data, id), onReset(), onStatus(state), onUnauthenticated(error),
   *   onSignedOut() (the stream said the session ended; falls back to onUnauthenticated)
   * options: overrides of DEFAULTS (see app.js: window.WB_LIVE_OPTIONS, read once at
   *   start-up, so tests can shorten every wait).
   */
  constructor(handlers, options = {}) {
    this.handlers = handlers;
    this.options = { ...DEFAULTS, ...options };
    this.cursor = 0;
    this.state = "idle";
    this.source = null;
    this.failures = 0;
    this.retryRound = 0;
    this.timer = 0;
    this.pollToken = null;
    this.pollAbort = null;
    this.stopped = true;
    this.evicted = false; // the server said this tab has one stream too many: poll only
    this.offline = false; // the browser says there is no network: attempt nothing
  }

  start(cursor) {
    this.cursor = Number(cursor) || 0;
    this.stopped = false;
    this.evicted = false;
    this.failures = 0;
    this.retryRound = 0;
    if (!this.networkListeners) {
      this.networkListeners = true;
      window.addEventListener("offline", () => this.goOffline());
      window.addEventListener("online", () => this.backOnline());
    }
    if (navigator.onLine === false) {
      this.goOffline();
      return;
    }
    this.offline = false;
    this.setStatus("connecting");
    this.openStream();
  }

  /** The browser lost the network: drop the transports, say so, wait for `online`. */
  goOffline() {
    if (this.stopped) return;
    this.offline = true;
    clearTimeout(this.timer);
    this.closeStream();
    this.stopPolling();
    this.setStatus("offline");
  }

  /** Back from offline: don't wait for a scheduled attempt; try the stream at once. */
  backOnline() {
    if (this.stopped) return;
    this.offline = false;
    this.failures = 0;
    this.retryRound = 0;
    if (this.state === "live") return;
    this.setStatus("reconnecting");
    if (this.evicted) this.startPolling();
    else this.openStream();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.closeStream();
    this.stopPolling();
    this.setStatus("idle");
  }

  get polling() {
    return this.pollToken !== null;
  }

  // ---- events -------------------------------------------------------------------------

  /** Apply one event from either transport, exactly once, in order. */
  accept(type, data, rawId) {
    if (type === "hello") return;
    if (type === "reset") {
      // Our cursor means nothing to the server any more: continue from its cursor, refetch.
      this.cursor = Number(data.cursor) || 0;
      this.handlers.onReset?.();
      return;
    }
    const id = Number(rawId);
    if (!Number.isFinite(id) || id <= this.cursor) return; // already applied
    this.cursor = id;
    try {
      this.handlers.onEvent(type, data, id);
    } catch (error) {
      console.error("live event handler failed", type, error);
    }
  }

  // ---- stream -------------------------------------------------------------------------

  openStream() {
    if (this.stopped || this.evicted || this.offline) return;
    clearTimeout(this.timer); // this attempt replaces any scheduled one
    this.closeStream();
    const source = new EventSource(`api/stream?last_event_id=${this.cursor}`);
    this.source = source;
    let helloAt = 0;
    const helloTimer = setTimeout(() => {
      if (this.source !== source || helloAt) return;
      // Connected but silent: a buffering proxy holds the bytes back. Polling will work.
      this.closeStream();
      this.streamFailed(true);
    }, this.options.helloTimeoutMs);

    source.addEventListener("hello", () => {
      if (this.source !== source) return;
      helloAt = performance.now();
      clearTimeout(helloTimer);
      // `failures` is reset only once a stream has lived a while (see the error handler), so
      // a stream that says hello and dies at once, again and again, still ends in polling.
      this.retryRound = 0;
      if (this.polling) this.stopPolling(); // the stream is back; it resumed from our cursor
      clearTimeout(this.timer);
      this.setStatus("live");
    });
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (event) => {
        if (this.source !== source) return;
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        this.accept(type, data, event.lastEventId);
      });
    }
    // A named event: EventSource hands it only to addEventListener("closed"), not onmessage.
    source.addEventListener("closed", (event) => {
      if (this.source !== source) return;
      clearTimeout(helloTimer);
      let reason = "";
      try {
        reason = String(JSON.parse(event.data)?.reason || "");
      } catch {
        reason = "";
      }
      this.closeStream(); // before the browser's own reconnect can start
      this.streamClosed(reason);
    });
    source.addEventListener("error", () => {
      if (this.source !== source) return;
      clearTimeout(helloTimer);
      // Reconnect ourselves, from our own cursor, instead of the browser's automatic retry.
      this.closeStream();
      const lived = helloAt ? performance.now() - helloAt : 0;
      if (helloAt && lived >= this.options.healthyStreamMs) {
        this.failures = 0;
        this.scheduleStream(backoff(this.options.reconnectDelaysMs, 0, this.options), "reconnecting");
      } else {
        this.streamFailed(false);
      }
    });
  }

  closeStream() {
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  }

  streamClosed(reason) {
    if (this.stopped) return;
    if (reason === "signed_out") {
      this.stop();
      (this.handlers.onSignedOut || this.handlers.onUnauthenticated)?.();
      return;
    }
    if (reason === "evicted") {
      this.evicted = true;
      clearTimeout(this.timer);
      this.setStatus("reconnecting"); // until the first poll answers
      if (!this.polling) this.startPolling();
      return;
    }
    // A routine cut (shutdown, lifetime, or a reason this client doesn't know): not a failure.
    this.failures = 0;
    if (this.polling) this.scheduleProbe();
    else this.scheduleStream(backoff(this.options.reconnectDelaysMs, 0, this.options), "reconnecting");
  }

  streamFailed(silent) {
    if (this.stopped) return;
    if (this.polling) {
      // A probe while polling failed: keep polling, try again later.
      this.scheduleProbe();
      return;
    }
    this.failures += 1;
    if (silent || this.failures >= this.options.maxStreamFailures) {
      this.startPolling();
      return;
    }
    this.scheduleStream(backoff(this.options.reconnectDelaysMs, this.failures, this.options), "reconnecting");
  }

  scheduleStream(delayMs, status) {
    clearTimeout(this.timer);
    if (status) this.setStatus(status);
    this.timer = setTimeout(() => this.openStream(), delayMs);
  }

  scheduleProbe() {
    if (this.evicted || this.offline) return;
    const delays = this.options.streamRetryMs;
    const delay = delays[Math.min(this.retryRound, delays.length - 1)];
    this.retryRound += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.polling && !this.stopped) this.openStream();
    }, delay);
  }

  // ---- polling ------------------------------------------------------------------------

  startPolling() {
    if (this.polling || this.stopped || this.offline) return;
    this.failures = 0;
    // The status says "polling" once a poll has answered: until then the server may be down.
    if (this.state === "live") this.setStatus("reconnecting");
    this.scheduleProbe();
    this.pollLoop();
  }

  stopPolling() {
    this.pollToken = null;
    this.pollAbort?.abort();
    this.pollAbort = null;
  }

  async pollLoop() {
    const token = {};
    this.pollToken = token;
    this.pollAbort = new AbortController();
    const signal = this.pollAbort.signal;
    let errors = 0;
    let wait = 0; // the first poll (and the first after an error) answers at once: reachable?
    while (this.pollToken === token) {
      try {
        const result = await api.events(this.cursor, wait, signal);
        wait = this.options.pollWaitSeconds;
        if (this.pollToken !== token) return;
        if (errors > 0 && !this.evicted && !this.source) {
          // The server answers again after an outage: try the stream now, not in a minute.
          this.retryRound = 0;
          clearTimeout(this.timer);
          this.timer = setTimeout(() => {
            if (this.polling && !this.stopped) this.openStream();
          }, 0);
        }
        errors = 0;
        if (this.state !== "live") this.setStatus("polling");
        let reset = false;
        for (const event of result.events) {
          if (event.type === "reset") reset = true;
          this.accept(event.type, event.data, event.id);
        }
        if (!reset) this.cursor = Math.max(this.cursor, Number(result.cursor) || 0);
      } catch (error) {
        if (this.pollToken !== token) return;
        if (error?.status === 401) {
          this.stop();
          this.handlers.onUnauthenticated?.(error);
          return;
        }
        const delay = backoff(this.options.pollErrorDelaysMs, errors, this.options);
        errors += 1;
        wait = 0;
        if (this.state !== "live") this.setStatus(this.offline ? "offline" : "reconnecting");
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  setStatus(state) {
    if (state === this.state) return;
    this.state = state;
    this.handlers.onStatus?.(state);
  }
}
