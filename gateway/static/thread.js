// thread.js — owns the open conversation: loading its latest page and older pages on
// scroll-up, inserting live messages in id order without duplicates, optimistic sends with
// a client_id (pending -> sent, or failed with a retry that reuses the client_id), the
// composer (Enter sends, Shift+Enter newline, 4000-character counter), the read pointer, and
// each peer message's Report button (the dialog and the block state belong to safety.js).

import { api, ApiError, newClientId } from "./api.js";
import { announce, avatar, byId, charLength, clockTime, dayKey, dayLabel, el, fullTime, toast } from "./dom.js";

export const MAX_CHARS = 4000;
const PAGE = 50;
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

/** Pending sends survive switching threads: conversation id -> client_id -> pending. */
const pendingByConversation = new Map();

export class Thread {
  /** hooks: inbox (Inbox), safety (Safety), onSent(message), isVisible() */
  constructor(me, hooks) {
    this.me = me;
    this.hooks = hooks;
    this.conversation = null;
    this.messages = new Map(); // id -> message
    this.hasMore = false;
    this.loadingOlder = false;
    this.generation = 0; // bumps on every open/close so late responses are ignored
    this.readInFlight = 0;

    this.body = byId("thread-body");
    this.placeholder = byId("thread-placeholder");
    this.scroller = byId("messages");
    this.list = byId("message-list");
    this.loadOlderButton = byId("load-older");
    this.historyNote = byId("history-note");
    this.input = byId("composer-input");
    this.counter = byId("char-count");
    this.sendButton = byId("send");
    this.jump = byId("jump-latest");
    this.jump.addEventListener("click", () => {
      this.scrollToBottom();
      this.jump.hidden = true;
    });

    byId("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => this.updateCounter());
    this.scroller.addEventListener("scroll", () => {
      if (this.scroller.scrollTop < 160) this.loadOlder();
      if (this.nearBottom()) {
        this.jump.hidden = true;
        this.markRead();
      }
    }, { passive: true });
    this.loadOlderButton.addEventListener("click", () => this.loadOlder());
    this.list.addEventListener("click", (event) => {
      const retry = event.target.closest("button[data-retry]");
      if (retry) this.retry(retry.dataset.retry);
      const report = event.target.closest("button[data-report]");
      const message = report && this.messages.get(Number(report.dataset.report));
      if (message) this.hooks.safety.openReport(this.conversation, message, report);
    });
    this.updateCounter();
  }

  get id() {
    return this.conversation?.id ?? null;
  }

  pending() {
    const id = this.id;
    if (!pendingByConversation.has(id)) pendingByConversation.set(id, new Map());
    return pendingByConversation.get(id);
  }

  // ---- opening and loading --------------------------------------------------------------

  async open(conversation, { focusComposer = true } = {}) {
    const generation = ++this.generation;
    const switching = this.id !== conversation.id;
    this.conversation = conversation;
    this.messages.clear();
    this.list.replaceChildren();
    this.jump.hidden = true;
    this.hasMore = false;
    this.updateHistory();
    this.placeholder.hidden = true;
    this.body.hidden = false;
    byId("thread-title").textContent = conversation.peer.username;
    byId("thread-avatar").replaceWith(Object.assign(avatar(conversation.peer), { id: "thread-avatar" }));
    this.input.placeholder = `Message ${conversation.peer.username}…`;
    this.hooks.safety.show(conversation);
    if (switching) {
      this.input.value = "";
      this.updateCounter();
    }
    this.body.setAttribute("aria-busy", "true");
    for (const pending of this.pending().values()) this.list.append(pending.node);
    try {
      const page = await api.messages(conversation.id, { limit: PAGE });
      if (generation !== this.generation) return;
      this.hasMore = page.has_more;
      for (const message of page.messages) this.receive(message, { quiet: true });
    } catch (error) {
      if (generation !== this.generation) return;
      toast(error instanceof ApiError && error.status === 404
        ? "That conversation doesn't exist."
        : "Couldn't load this conversation. Check your connection.");
    } finally {
      if (generation === this.generation) this.body.removeAttribute("aria-busy");
    }
    this.updateHistory();
    this.decorate();
    this.scrollToBottom();
    if (focusComposer) {
      // In a blocked conversation the composer is replaced by a notice: focus the title.
      (byId("composer").hidden ? byId("thread-title") : this.input).focus({ preventScroll: true });
    }
    this.markRead();
  }

  close() {
    this.generation += 1;
    this.conversation = null;
    this.messages.clear();
    this.list.replaceChildren();
    this.body.hidden = true;
    this.placeholder.hidden = false;
  }

  /** After a feed reset: fetch the latest page again, keeping what we have. */
  async reload() {
    if (this.conversation) await this.open(this.conversation, { focusComposer: false });
  }

  async loadOlder() {
    if (!this.hasMore || this.loadingOlder || !this.conversation) return;
    const generation = this.generation;
    const oldest = Math.min(...this.messages.keys());
    if (!Number.isFinite(oldest)) return;
    this.loadingOlder = true;
    this.loadOlderButton.disabled = true;
    this.loadOlderButton.textContent = "Loading earlier messages…";
    try {
      const page = await api.messages(this.id, { before: oldest, limit: PAGE });
      if (generation !== this.generation) return;
      const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
      this.hasMore = page.has_more;
      for (const message of page.messages) this.receive(message, { quiet: true, decorate: false });
      this.decorate();
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom; // keep the reader's place
    } catch {
      toast("Couldn't load earlier messages.");
    } finally {
      this.loadingOlder = false;
      this.loadOlderButton.disabled = false;
      this.loadOlderButton.textContent = "Load earlier messages";
      this.updateHistory();
    }
  }

  updateHistory() {
    this.loadOlderButton.hidden = !this.hasMore;
    this.historyNote.hidden = this.hasMore || this.messages.size === 0;
  }

  // ---- messages ---------------------------------------------------------------------------

  /**
   * Show a message of this conversation, once. A message we sent optimistically (same
   * client_id) takes over its pending bubble instead of adding a second one.
   */
  receive(message, { quiet = false, decorate = true } = {}) {
    if (message.conversation_id !== this.id) return;
    if (this.messages.has(message.id)) return;
    const mine = message.sender_id === this.me.user_id;
    const pending = mine && message.client_id ? this.pending().get(message.client_id) : null;
    let node;
    if (pending) {
      this.pending().delete(message.client_id);
      node = pending.node;
      this.fillMessage(node, message, "sent");
    } else {
      node = this.messageNode(message);
    }
    const stick = mine || this.nearBottom();
    this.messages.set(message.id, message);
    this.place(node, message.id);
    if (decorate) this.decorate();
    if (!quiet) {
      if (stick) this.scrollToBottom();
      else if (!mine) this.jump.hidden = false; // don't yank a reader who scrolled up
      if (!mine) {
        this.hooks.safety.peerSpoke(this.id);
        announce(`New message from ${this.conversation.peer.username}: ${message.body}`);
        this.markRead();
      }
    }
    this.updateHistory();
  }

  /** Insert a confirmed message node in id order, before any still-pending ones. */
  place(node, id) {
    node.dataset.id = String(id);
    node.remove();
    let after = this.list.lastElementChild;
    while (after && (after.dataset.id === undefined || Number(after.dataset.id) > id)) {
      after = after.previousElementSibling;
    }
    if (after) after.after(node);
    else this.list.prepend(node);
  }

  messageNode(message, state = "sent") {
    const node = el("li", { class: "message" });
    this.fillMessage(node, message, state);
    return node;
  }

  fillMessage(node, message, state) {
    const mine = message.sender_id === this.me.user_id;
    node.className = `message ${mine ? "mine" : "theirs"} ${state}`;
    node.dataset.day = dayLabel(message.created_at || new Date().toISOString());
    node.dataset.dayKey = dayKey(message.created_at || new Date().toISOString());
    node.dataset.sender = String(message.sender_id);
    if (message.client_id) node.dataset.clientId = message.client_id;
    const who = mine ? "You" : this.conversation.peer.username;
    const meta = el("div", { class: "meta" });
    if (state === "sent") {
      meta.append(el("time", { datetime: message.created_at, title: fullTime(message.created_at), text: clockTime(message.created_at) }));
    } else if (state === "pending") {
      meta.append(el("span", { class: "status", text: "Sending…" }));
    } else {
      meta.append(el("span", { class: "status", role: "alert", text: message.error || "Not sent." }));
      // No retry while this pair can't message each other: the notice below says why.
      if (this.hooks.safety.canSend(message.conversation_id)) {
        meta.append(el("button", { type: "button", class: "link-button retry", "data-retry": message.client_id, text: "Retry" }));
      }
    }
    const bubble = el("div", { class: "bubble" },
      el("span", { class: "visually-hidden", text: `${who}: ` }),
      bodyWithLinks(message.body));
    const reportable = !mine && state === "sent" && message.id !== null && message.id !== undefined;
    node.replaceChildren(
      reportable
        ? el("div", { class: "bubble-row" }, bubble,
          el("button", { type: "button", class: "report-button", "data-report": message.id,
            "aria-label": `Report message from ${who}`, title: "Report to the moderators", text: "Report" }))
        : bubble,
      meta,
    );
  }

  /** Day separators and grouping of consecutive messages from the same sender. */
  decorate() {
    let previous = null;
    for (const node of this.list.children) {
      const newDay = !previous || previous.dataset.dayKey !== node.dataset.dayKey;
      node.classList.toggle("day-start", newDay);
      node.classList.toggle("grouped", !newDay && previous.dataset.sender === node.dataset.sender);
      previous = node;
    }
  }

  // ---- sending ------------------------------------------------------------------------------

  updateCounter() {
    const length = charLength(this.input.value.trim());
    this.counter.textContent = `${length.toLocaleString()} / ${MAX_CHARS.toLocaleString()}`;
    this.counter.classList.toggle("near", length > MAX_CHARS - 200 && length <= MAX_CHARS);
    this.counter.classList.toggle("over", length > MAX_CHARS);
    this.sendButton.disabled = length === 0 || length > MAX_CHARS;
    this.input.setAttribute("aria-invalid", length > MAX_CHARS ? "true" : "false");
  }

  submit() {
    const body = this.input.value.trim();
    if (!body || !this.conversation) return;
    if (charLength(body) > MAX_CHARS) {
      toast(`Messages can be at most ${MAX_CHARS.toLocaleString()} characters.`);
      return;
    }
    const clientId = newClientId();
    const pending = {
      clientId,
      conversationId: this.id,
      body,
      node: null,
    };
    pending.node = this.messageNode(
      { id: null, conversation_id: this.id, sender_id: this.me.user_id, body, client_id: clientId,
        created_at: new Date().toISOString() },
      "pending",
    );
    this.pending().set(clientId, pending);
    this.list.append(pending.node);
    this.decorate();
    this.updateHistory();
    this.input.value = "";
    this.updateCounter();
    this.scrollToBottom();
    this.deliver(pending);
  }

  async deliver(pending) {
    const { conversationId, body, clientId } = pending;
    try {
      const message = await api.send(conversationId, body, clientId);
      this.confirmed(message);
    } catch (error) {
      const stillPending = pendingByConversation.get(conversationId)?.get(clientId);
      if (!stillPending) return; // the live feed already brought the stored message
      const blocked = error instanceof ApiError && error.code === "blocked";
      stillPending.error = !blocked && error instanceof ApiError && !error.retriable && error.message
        ? `Not sent: ${error.message}` : "Not sent.";
      stillPending.failed = true;
      if (blocked) this.hooks.safety.refusedSend(conversationId); // shows the notice
      this.showFailed(stillPending);
    }
  }

  showFailed(pending) {
    this.fillMessage(pending.node,
      { id: null, conversation_id: pending.conversationId, sender_id: this.me.user_id,
        body: pending.body, client_id: pending.clientId, created_at: new Date().toISOString(),
        error: pending.error },
      "failed");
    if (pending.conversationId === this.id) this.decorate();
  }

  /** Who may message whom changed: failed sends offer Retry only when it can work. */
  refreshFailed() {
    if (this.id === null) return;
    for (const pending of this.pending().values()) if (pending.failed) this.showFailed(pending);
  }

  confirmed(message) {
    this.hooks.onSent(message);
    if (message.conversation_id === this.id) {
      this.receive(message, { quiet: true });
    } else {
      pendingByConversation.get(message.conversation_id)?.delete(message.client_id);
    }
  }

  retry(clientId) {
    const pending = this.pending().get(clientId);
    if (!pending) return;
    pending.failed = false;
    this.fillMessage(pending.node,
      { id: null, conversation_id: pending.conversationId, sender_id: this.me.user_id,
        body: pending.body, client_id: clientId, created_at: new Date().toISOString() },
      "pending");
    this.input.focus({ preventScroll: true });
    this.deliver(pending); // same client_id: the server stores it at most once
  }

  // ---- reading ------------------------------------------------------------------------------

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /** Move the read pointer to the newest message while the member can see the thread. */
  async markRead() {
    const c = this.conversation;
    if (!c || !this.hooks.isVisible()) return;
    const newest = this.messages.size ? Math.max(...this.messages.keys()) : 0;
    const known = this.hooks.inbox.get(c.id);
    const pointer = Math.max(known?.last_read_message_id ?? 0, this.readInFlight);
    if (!newest || newest <= pointer) return;
    this.readInFlight = newest;
    this.hooks.inbox.markReadLocally(c.id, newest);
    try {
      const state = await api.markRead(c.id, newest);
      this.hooks.inbox.applyRead(state);
    } catch {
      // The next visible moment tries again; the badge is fixed by the next read event.
    } finally {
      if (this.readInFlight === newest) this.readInFlight = 0;
    }
  }
}

/** Message text as text nodes, with http(s) URLs as plain links that open in a new tab. */
function bodyWithLinks(text) {
  const p = el("p", { class: "text" });
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    let href = null;
    try {
      const url = new URL(match[0]);
      if (url.protocol === "http:" || url.protocol === "https:") href = url.href;
    } catch {
      href = null;
    }
    if (!href) continue;
    p.append(document.createTextNode(text.slice(last, match.index)));
    p.append(el("a", { href, target: "_blank", rel: "noopener noreferrer nofollow ugc", text: match[0] }));
    last = match.index + match[0].length;
  }
  p.append(document.createTextNode(text.slice(last)));
  return p;
}
