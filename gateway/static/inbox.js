// inbox.js — owns the conversation list: its state (one entry per conversation, as the
// signed-in member sees it), live updates from message/conversation/read events, unread
// badges, ordering (most recent first) and rendering into #conversation-list (with a quiet
// "Blocked" tag on conversations with someone the member blocked).

import { avatar, byId, el, fullTime, shortTime } from "./dom.js";
import { setFaviconBadge } from "./notify.js";

export class Inbox {
  /** isBlocked(userId) says whether the member blocked that peer. */
  constructor(meId, { isBlocked = () => false } = {}) {
    this.meId = meId;
    this.isBlocked = isBlocked;
    this.conversations = new Map(); // id -> conversation JSON, kept current by events
    this.activeId = null;
    this.nodes = new Map(); // id -> <li>
    this.list = byId("conversation-list");
    this.empty = byId("inbox-empty");
    this.loaded = false;
    // Up/Down move between conversations, Home/End jump to the ends of the list.
    this.list.addEventListener("keydown", (event) => {
      const links = [...this.list.querySelectorAll("a.conversation")];
      const index = links.indexOf(document.activeElement);
      if (index < 0) return;
      const target = { ArrowDown: index + 1, ArrowUp: index - 1, Home: 0, End: links.length - 1 }[event.key];
      if (target === undefined || !links[target]) return;
      event.preventDefault();
      links[target].focus();
    });
  }

  get(id) {
    return this.conversations.get(Number(id)) || null;
  }

  findByPeer(userId) {
    for (const c of this.conversations.values()) if (c.peer.user_id === userId) return c;
    return null;
  }

  /** Replace everything with a fresh fetch, keeping anything newer that arrived meanwhile. */
  setAll(conversations) {
    const previous = this.conversations;
    this.conversations = new Map();
    for (const fresh of conversations) {
      const old = previous.get(fresh.id);
      if (old?.last_message && (!fresh.last_message || old.last_message.id > fresh.last_message.id)) {
        fresh.last_message = old.last_message;
        fresh.updated_at = old.updated_at;
        fresh.unread_count = Math.max(fresh.unread_count, old.unread_count);
      }
      this.conversations.set(fresh.id, fresh);
    }
    this.loaded = true;
    this.render();
  }

  /** A conversation we learnt about (event, creation, direct fetch). Existing state wins. */
  upsert(conversation) {
    if (!this.conversations.has(conversation.id)) {
      this.conversations.set(conversation.id, conversation);
      this.render();
    }
    return this.conversations.get(conversation.id);
  }

  /**
   * A message in one of our conversations. `viewing` means the member is looking at that
   * thread right now, so it does not count as unread. Returns false if the conversation is
   * unknown (the caller fetches it).
   */
  applyMessage(message, viewing) {
    const c = this.conversations.get(message.conversation_id);
    if (!c) return false;
    if (!c.last_message || message.id > c.last_message.id) {
      c.last_message = message;
      c.updated_at = message.created_at;
      if (message.sender_id !== this.meId && message.id > c.last_read_message_id && !viewing) {
        c.unread_count += 1;
      }
      this.render();
    }
    return true;
  }

  /** Our read pointer moved (here or on another device). */
  applyRead({ conversation_id: id, message_id: messageId, unread_count: unread }) {
    const c = this.conversations.get(id);
    if (!c || messageId < c.last_read_message_id) return;
    c.last_read_message_id = messageId;
    c.unread_count = unread;
    this.render();
  }

  /** Optimistically clear the badge of a conversation being read up to `messageId`. */
  markReadLocally(id, messageId) {
    const c = this.conversations.get(id);
    if (!c || messageId <= c.last_read_message_id) return;
    c.last_read_message_id = messageId;
    c.unread_count = 0;
    this.render();
  }

  setActive(id) {
    this.activeId = id === null ? null : Number(id);
    this.render();
  }

  totalUnread() {
    let n = 0;
    for (const c of this.conversations.values()) n += c.unread_count;
    return n;
  }

  sorted() {
    return [...this.conversations.values()].sort((a, b) => {
      const at = a.last_message?.created_at || a.updated_at;
      const bt = b.last_message?.created_at || b.updated_at;
      if (at !== bt) return at < bt ? 1 : -1;
      return b.id - a.id;
    });
  }

  render() {
    const focusedId = document.activeElement?.closest?.("#conversation-list li")?.dataset.id;
    const ordered = this.sorted();
    const keep = new Set(ordered.map((c) => c.id));
    for (const [id, node] of this.nodes) {
      if (!keep.has(id)) {
        node.remove();
        this.nodes.delete(id);
      }
    }
    ordered.forEach((c, index) => {
      const node = this.renderItem(c);
      if (this.list.children[index] !== node) this.list.insertBefore(node, this.list.children[index] || null);
    });
    if (focusedId && document.activeElement === document.body) {
      this.nodes.get(Number(focusedId))?.querySelector("a")?.focus();
    }
    this.empty.hidden = !this.loaded || ordered.length > 0;
    const unread = this.totalUnread();
    document.title = unread ? `(${unread}) Messages · WhiteBalloon` : "Messages · WhiteBalloon";
    setFaviconBadge(unread);
    // On phones the inbox is hidden behind the thread: its back button carries the count.
    const back = byId("thread-back");
    back.dataset.unread = unread ? (unread > 99 ? "99+" : String(unread)) : "";
    back.setAttribute("aria-label", unread ? `Back to conversations, ${unread} unread` : "Back to conversations");
  }

  renderItem(c) {
    const last = c.last_message;
    const mine = last?.sender_id === this.meId;
    const preview = last ? last.body.replace(/\s+/g, " ") : "No messages yet";
    const when = last?.created_at || c.created_at;
    const unread = c.unread_count;
    const active = c.id === this.activeId;
    const blocked = this.isBlocked(c.peer.user_id);
    const signature = JSON.stringify([c.peer.username, mine, preview, when, unread, active, blocked]);
    let node = this.nodes.get(c.id);
    if (node && node.dataset.signature === signature) return node;

    // The link's name is its visible text (name, time, preview, unread count), so speech
    // input ("click bob") and screen readers agree with what is on screen.
    const link = el("a", {
      href: `#/c/${c.id}`,
      class: "conversation",
      "aria-current": active ? "page" : null,
    },
    avatar(c.peer),
    el("span", { class: "conversation-text" },
      el("span", { class: "conversation-top" },
        el("span", { class: "conversation-name", dir: "auto", text: c.peer.username }),
        blocked ? el("span", { class: "tag", text: "Blocked" }) : null,
        el("time", { class: "conversation-time", datetime: when, title: fullTime(when), text: shortTime(when) })),
      el("span", { class: "conversation-bottom" },
        // dir="auto": a Hebrew or Arabic preview reads right to left; <bdi> keeps "You: " apart.
        el("span", { class: `conversation-preview${last ? "" : " muted"}`, id: `preview-${c.id}`, dir: "auto" },
          mine ? "You: " : null, mine ? el("bdi", { dir: "auto", text: preview }) : preview),
        unread ? el("span", { class: "badge", text: unread > 99 ? "99+" : String(unread) }) : null,
        unread ? el("span", { class: "visually-hidden", text: " unread" }) : null)));
    const fresh = el("li", { "data-id": c.id, "data-signature": signature, class: unread ? "unread" : null }, link);
    if (node) {
      const hadFocus = node.contains(document.activeElement);
      node.replaceWith(fresh);
      if (hadFocus) link.focus();
    }
    this.nodes.set(c.id, fresh);
    return fresh;
  }
}
