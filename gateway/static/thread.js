// thread.js — owns the open conversation: loading its latest page and older pages on
// scroll-up, inserting live messages in id order without duplicates, optimistic sends with
// a client_id (pending -> sent; waiting, with the reason, until the outbox can resend it; or
// failed with the reason and a Retry that reuses the client_id), the composer (Enter sends,
// Shift+Enter newline, 4000-character counter), the read pointer, and each peer message's
// Report button (the dialog and the block state belong to safety.js). The unsent messages
// themselves belong to outbox.js: this module shows those of the open conversation.

import { api, ApiError, newClientId } from "./api.js";
import { announce, avatar, byId, charLength, clockTime, dayKey, dayLabel, el, fullTime, toast } from "./dom.js";
import { Outbox } from "./outbox.js";

export const MAX_CHARS = 4000;
const PAGE = 50;
const GAP_MS = 5 * 60_000; // a pause this long shows the time again and ends a group
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

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
    this.pendingNodes = new Map(); // client_id -> <li> of the open conversation's unsent messages
    this.outbox = new Outbox(me.user_id, {
      onChange: (item) => this.showUnsent(item),
      onSent: (message) => this.confirmed(message),
      onBlocked: (conversationId) => this.hooks.safety.refusedSend(conversationId),
    });

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
    this.rovingReport = null; // the message id whose Report button is the list's one Tab stop
    this.list.addEventListener("keydown", (event) => {
      const current = event.target.closest?.(".report-button");
      if (!current) return;
      const buttons = [...this.list.querySelectorAll(".report-button")];
      const index = buttons.indexOf(current);
      const target = { ArrowDown: index + 1, ArrowUp: index - 1, Home: 0, End: buttons.length - 1 }[event.key];
      if (target === undefined || !buttons[target]) return;
      event.preventDefault();
      buttons[target].focus();
      buttons[target].scrollIntoView({ block: "nearest" });
    });
    this.list.addEventListener("focusin", (event) => {
      const button = event.target.closest?.(".report-button");
      if (!button) return;
      this.rovingReport = button.dataset.report;
      this.updateRoving();
    });
    this.list.addEventListener("click", (event) => {
      const retry = event.target.closest("button[data-retry]");
      if (retry) this.retry(retry.dataset.retry);
      const discard = event.target.closest("button[data-discard]");
      if (discard) this.discard(discard.dataset.discard);
      const report = event.target.closest("button[data-report]");
      const message = report && this.messages.get(Number(report.dataset.report));
      if (message) this.hooks.safety.openReport(this.conversation, message, report);
    });
    this.updateCounter();
  }

  get id() {
    return this.conversation?.id ?? null;
  }

  // ---- opening and loading --------------------------------------------------------------

  async open(conversation, { focusComposer = true } = {}) {
    const generation = ++this.generation;
    const switching = this.id !== conversation.id;
    // Before the read pointer moves: where the member stopped reading.
    const lastRead = conversation.last_read_message_id ?? 0;
    const unread = switching ? conversation.unread_count || 0 : 0;
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
    this.pendingNodes.clear();
    for (const item of this.outbox.forConversation(conversation.id)) this.showUnsent(item);
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
    const firstUnread = this.markFirstUnread(lastRead, unread);
    if (firstUnread) {
      // Start where the member stopped reading, not at the bottom.
      const top = firstUnread.getBoundingClientRect().top - this.scroller.getBoundingClientRect().top;
      this.scroller.scrollTop += top - 12;
      this.jump.hidden = this.nearBottom();
    } else {
      this.scrollToBottom();
    }
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
    this.pendingNodes.clear();
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
    const pendingNode = mine && message.client_id ? this.pendingNodes.get(message.client_id) : null;
    if (mine && message.client_id) this.outbox.remove(message.client_id);
    let node;
    if (pendingNode) {
      this.pendingNodes.delete(message.client_id);
      node = pendingNode;
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
    node.dataset.at = String(Date.parse(message.created_at) || Date.now());
    node.dataset.sender = String(message.sender_id);
    if (message.client_id) node.dataset.clientId = message.client_id;
    const who = mine ? "You" : this.conversation.peer.username;
    const meta = el("div", { class: "meta" });
    if (state === "sent") {
      meta.append(el("time", { datetime: message.created_at, title: fullTime(message.created_at), text: clockTime(message.created_at) }));
    } else if (state === "pending") {
      meta.append(el("span", { class: "status", text: "Sending…" }));
    } else if (state === "waiting") {
      // Queued in the outbox: it goes by itself when it can; "Send now" doesn't wait.
      meta.append(el("span", { class: "status", role: "status", text: message.error || "Not sent yet." }));
      meta.append(el("button", { type: "button", class: "link-button retry", "data-retry": message.client_id, text: "Send now" }));
    } else {
      meta.append(el("span", { class: "status", role: "alert", text: message.error || "Not sent." }));
      // No retry while this pair can't message each other: the notice below says why.
      if (this.hooks.safety.canSend(message.conversation_id)) {
        meta.append(el("button", { type: "button", class: "link-button retry", "data-retry": message.client_id, text: "Retry" }));
      }
      meta.append(el("button", { type: "button", class: "link-button discard", "data-discard": message.client_id, text: "Delete" }));
    }
    const bubble = el("div", { class: "bubble" },
      el("span", { class: "visually-hidden", text: `${who}: ` }),
      bodyWithLinks(message.body));
    const reportable = !mine && state === "sent" && message.id !== null && message.id !== undefined;
    // One Tab stop for all Report buttons (a roving tabindex: arrows move between them), each
    // named by its message, so a list of them reads as different buttons.
    node.replaceChildren(
      reportable
        ? el("div", { class: "bubble-row" }, bubble,
          el("button", { type: "button", class: "report-button", "data-report": message.id, tabindex: "-1",
            "aria-label": `Report message from ${who}, ${clockTime(message.created_at)}: ${snippet(message.body)}`,
            title: "Report to the moderators", text: "Report" }))
        : bubble,
      meta,
    );
  }

  /** Exactly one Report button is reachable by Tab: the last one focused, else the newest. */
  updateRoving() {
    const buttons = [...this.list.querySelectorAll(".report-button")];
    const chosen = buttons.find((b) => b.dataset.report === this.rovingReport) || buttons.at(-1);
    for (const button of buttons) button.tabIndex = button === chosen ? 0 : -1;
  }

  /**
   * Day separators; a time on every message that starts a new minute, follows a gap or
   * changes sender; grouping of consecutive messages from one sender close in time.
   */
  decorate() {
    let previous = null;
    for (const node of this.list.children) {
      const at = Number(node.dataset.at);
      const newDay = !previous || previous.dataset.dayKey !== node.dataset.dayKey;
      const sameSender = !!previous && previous.dataset.sender === node.dataset.sender;
      const gap = !previous || at - Number(previous.dataset.at) >= GAP_MS;
      const newMinute = !previous || Math.floor(at / 60_000) !== Math.floor(Number(previous.dataset.at) / 60_000);
      node.classList.toggle("day-start", newDay);
      node.classList.toggle("grouped", !newDay && sameSender && !gap);
      node.classList.toggle("show-time", newDay || !sameSender || gap || newMinute);
      previous = node;
    }
    this.updateRoving();
  }

  /** "N new messages" above the first unread message, if it is loaded; returns its node. */
  markFirstUnread(lastRead, unread) {
    this.list.querySelector(".unread-divider")?.remove();
    if (!unread) return null;
    const first = [...this.messages.values()]
      .filter((m) => m.id > lastRead && m.sender_id !== this.me.user_id)
      .sort((a, b) => a.id - b.id)[0];
    const node = first && this.list.querySelector(`li[data-id="${first.id}"]`);
    // Not loaded (more unread than one page): the newest messages are shown as usual.
    if (!node || (this.hasMore && node === this.list.firstElementChild)) return null;
    node.prepend(el("div", { class: "unread-divider", role: "separator",
      text: unread === 1 ? "1 new message" : `${unread.toLocaleString()} new messages` }));
    return node;
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
    const item = {
      clientId: newClientId(),
      conversationId: this.id,
      body,
      createdAt: new Date().toISOString(),
      state: "pending",
    };
    this.showUnsent(item);
    this.input.value = "";
    this.updateCounter();
    this.scrollToBottom();
    this.outbox.add(item); // sent in order, after anything already waiting
  }

  /** Show (or update) an outbox item's bubble, if it belongs to the open conversation. */
  showUnsent(item) {
    if (item.conversationId !== this.id) return;
    let node = this.pendingNodes.get(item.clientId);
    if (!node) {
      node = el("li", { class: "message" });
      this.pendingNodes.set(item.clientId, node);
      this.list.append(node);
    }
    this.fillMessage(node,
      { id: null, conversation_id: item.conversationId, sender_id: this.me.user_id, body: item.body,
        client_id: item.clientId, created_at: item.createdAt, error: item.error },
      item.state);
    this.decorate();
    this.updateHistory();
  }

  /** Who may message whom changed: failed sends offer Retry only when it can work. */
  refreshFailed() {
    if (this.id === null) return;
    for (const item of this.outbox.forConversation(this.id)) {
      if (item.state === "failed") this.showUnsent(item);
    }
  }

  confirmed(message) {
    this.hooks.onSent(message);
    if (message.conversation_id === this.id) this.receive(message, { quiet: true });
  }

  retry(clientId) {
    this.input.focus({ preventScroll: true });
    const item = this.outbox.get(clientId);
    if (!item) return;
    if (item.state === "waiting") this.outbox.flush(); // "Send now": the queue, at once
    else this.outbox.retry(clientId); // same client_id: the server stores it at most once
  }

  discard(clientId) {
    this.outbox.discard(clientId);
    this.pendingNodes.get(clientId)?.remove();
    this.pendingNodes.delete(clientId);
    this.decorate();
    this.input.focus({ preventScroll: true });
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

/** The start of a message, on one line, for a button's name. */
function snippet(text) {
  const flat = text.replace(/\s+/g, " ").trim();
  const chars = [...flat];
  return chars.length > 40 ? `${chars.slice(0, 40).join("")}…` : flat;
}

/** Message text as text nodes, with http(s) URLs as plain links that open in a new tab. */
function bodyWithLinks(text) {
  const p = el("p", { class: "text", dir: "auto" }); // Hebrew, Arabic: right to left
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
