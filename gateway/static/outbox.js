// outbox.js — owns the member's unsent messages: kept in localStorage per member (so they
// survive a reload), sent one at a time in the order they were written, each with its own
// client_id (a resend is stored at most once by the server), and resent automatically when
// the connection returns. A refusal that waiting can't fix (blocked, too long, the
// conversation is gone) stops that message with the reason and lets later ones go on; a
// lost connection or a rate limit holds the queue, in order, until it can work again.
//
// The page shares its origin with WhiteBalloon and devices are shared: the stored outbox is
// cleared when the member signs out, and other members' outboxes are cleared on start.

import { api, ApiError } from "./api.js";

const PREFIX = "wb-outbox:";
const RETRY_DELAYS_MS = [1000, 2000, 4000, 8000, 15000];

function storage() {
  try {
    return window.localStorage;
  } catch {
    return null; // storage disabled: the outbox still works for this page's lifetime
  }
}

/** Forget every stored outbox (sign-out), or every one but `keepMemberId`'s. */
export function clearStoredOutboxes(keepMemberId = null) {
  const store = storage();
  if (!store) return;
  const keep = keepMemberId === null ? null : PREFIX + keepMemberId;
  for (let i = store.length - 1; i >= 0; i -= 1) {
    const key = store.key(i);
    if (key?.startsWith(PREFIX) && key !== keep) store.removeItem(key);
  }
}

/** Why a send failed, in words for the member, and whether waiting will fix it. */
export function describeFailure(error) {
  if (!(error instanceof ApiError)) return { wait: true, text: "Not sent yet: can't reach the server. It will be sent when the connection is back." };
  if (error.status === 0 || error.status === 408 || error.status >= 500) {
    const offline = navigator.onLine === false;
    return {
      wait: true,
      text: offline
        ? "Not sent yet: you're offline. It will be sent when you're back online."
        : "Not sent yet: can't reach the server. It will be sent when the connection is back.",
    };
  }
  if (error.status === 429) {
    const seconds = error.retryAfterSeconds ?? 10;
    const text = `Not sent yet: too many messages at once. Trying again in ${Math.ceil(seconds)} s.`;
    return { wait: true, retryAfterMs: seconds * 1000, text };
  }
  if (error.status === 401) return { wait: false, text: "Not sent: you're signed out." };
  if (error.code === "blocked") return { wait: false, blocked: true, text: "Not sent: you can't message each other right now." };
  if (error.code === "invalid_body" || error.status === 413) {
    return { wait: false, text: `Not sent: ${error.serverMessage || "messages can be at most 4,000 characters."}` };
  }
  if (error.status === 404) return { wait: false, text: "Not sent: this conversation no longer exists." };
  return { wait: false, text: error.serverMessage ? `Not sent: ${error.serverMessage}` : "Not sent." };
}

export class Outbox {
  /**
   * hooks: onChange(item) (an item's state changed: pending / waiting / failed),
   *   onSent(message, item) (the server stored it), onBlocked(conversationId)
   * Items: {clientId, conversationId, body, createdAt, state, error}
   */
  constructor(memberId, hooks) {
    this.key = PREFIX + memberId;
    this.hooks = hooks;
    this.items = [];
    this.sending = false;
    this.timer = 0;
    this.paused = false; // the page is signed out: never send again
    this.notBefore = 0; // a rate limit's Retry-After: no send before this time (ms)
    this.waits = 0; // consecutive failures that waiting should fix, for the backoff
    clearStoredOutboxes(memberId);
    this.load();
  }

  load() {
    let stored = [];
    try {
      stored = JSON.parse(storage()?.getItem(this.key) || "[]");
    } catch {
      stored = [];
    }
    this.items = (Array.isArray(stored) ? stored : [])
      .filter((item) => item && typeof item.clientId === "string" && typeof item.body === "string")
      .map((item) => ({
        clientId: item.clientId,
        conversationId: Number(item.conversationId),
        body: item.body,
        createdAt: String(item.createdAt || new Date().toISOString()),
        // After a reload everything not refused for good is simply waiting to be sent.
        state: item.state === "failed" ? "failed" : "waiting",
        error: item.state === "failed" ? item.error || "Not sent." : "",
      }));
  }

  save() {
    if (this.paused) return;
    const store = storage();
    if (!store) return;
    const data = this.items.map(({ clientId, conversationId, body, createdAt, state, error }) =>
      ({ clientId, conversationId, body, createdAt, state, error }));
    try {
      if (data.length) store.setItem(this.key, JSON.stringify(data));
      else store.removeItem(this.key);
    } catch {
      // Storage full or refused: the message is still queued in this page.
    }
  }

  /** Stop for good and forget the stored outbox (the member signed out). */
  clear() {
    this.paused = true;
    clearTimeout(this.timer);
    this.items = [];
    storage()?.removeItem(this.key);
  }

  forConversation(conversationId) {
    return this.items.filter((item) => item.conversationId === conversationId);
  }

  get(clientId) {
    return this.items.find((item) => item.clientId === clientId) || null;
  }

  add(item) {
    this.items.push({ state: "pending", error: "", ...item });
    this.save();
    this.flush();
  }

  /** The server has it (answer or live event): leave the outbox. */
  remove(clientId) {
    const before = this.items.length;
    this.items = this.items.filter((item) => item.clientId !== clientId);
    if (this.items.length !== before) this.save();
  }

  /** The member asked again (Retry) for an item refused earlier. */
  retry(clientId) {
    const item = this.get(clientId);
    if (!item) return;
    item.state = "pending";
    item.error = "";
    // To the back of the queue: it is sent after what is already waiting.
    this.items = [...this.items.filter((other) => other !== item), item];
    this.save();
    this.hooks.onChange(item);
    this.flush();
  }

  discard(clientId) {
    this.remove(clientId);
  }

  /** Send everything waiting, oldest first, one at a time. Safe to call at any moment. */
  async flush() {
    if (this.sending || this.paused) return;
    clearTimeout(this.timer);
    this.timer = 0;
    const early = this.notBefore - Date.now();
    if (early > 0) {
      this.timer = setTimeout(() => this.flush(), early);
      return;
    }
    this.sending = true;
    try {
      for (;;) {
        const item = this.items.find((candidate) => candidate.state !== "failed");
        if (!item || this.paused) return;
        if (navigator.onLine === false) {
          for (const waiting of this.items) {
            if (waiting.state === "failed") continue;
            waiting.state = "waiting";
            waiting.error = "Not sent yet: you're offline. It will be sent when you're back online.";
            this.hooks.onChange(waiting);
          }
          this.save();
          return;
        }
        if (item.state !== "pending") {
          item.state = "pending";
          item.error = "";
          this.hooks.onChange(item);
        }
        let message;
        try {
          message = await api.send(item.conversationId, item.body, item.clientId);
        } catch (error) {
          if (!this.get(item.clientId)) continue; // the live feed brought it meanwhile
          const failure = describeFailure(error);
          // Waiting holds the whole queue (order matters): everything after it waits too.
          for (const held of failure.wait ? this.items : [item]) {
            if (held.state === "failed") continue;
            held.error = failure.text;
            held.state = failure.wait ? "waiting" : "failed";
            this.hooks.onChange(held);
          }
          this.save();
          if (failure.blocked) this.hooks.onBlocked(item.conversationId);
          if (failure.wait) {
            // Hold the queue, in order, until it can work: a rate limit says when; a lost
            // connection comes back through `online` or the live feed (see app.js), and is
            // tried again here meanwhile, a little later each time (at most every 15 s).
            let delay = RETRY_DELAYS_MS[Math.min(this.waits, RETRY_DELAYS_MS.length - 1)];
            this.waits += 1;
            if (failure.retryAfterMs !== undefined) {
              delay = failure.retryAfterMs;
              this.notBefore = Date.now() + delay;
            }
            this.timer = setTimeout(() => this.flush(), delay);
            return;
          }
          continue;
        }
        this.waits = 0;
        const stillQueued = this.get(item.clientId);
        this.remove(item.clientId);
        this.hooks.onSent(message, stillQueued || item);
      }
    } finally {
      this.sending = false;
    }
  }
}
