// notify.js — owns desktop notifications and the favicon badge. Notifications are opt-in:
// the member turns them on with the bell button (the browser is asked for permission from
// that click, never on load), and may turn them off again; the choice is kept per member on
// this device. A notification names the sender with a short preview, opens the conversation
// when clicked, replaces an older one of the same conversation, and is not shown when the
// page is in front, nor ever for the conversation the member has open and visible.
// Notifications while the page is closed would need Web Push: out of scope (README).

import { byId, toast } from "./dom.js";

const PREVIEW_CHARS = 100;

/** A short one-line preview of `text`, at most `max` characters. */
export function preview(text, max = PREVIEW_CHARS) {
  const chars = [...String(text || "").replace(/\s+/g, " ").trim()];
  return chars.length > max ? `${chars.slice(0, max).join("")}…` : chars.join("");
}

function store() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

/**
 * One person's opt-in to notifications, kept on this device under `key` (null: nobody yet),
 * and the browser's permission. Shared by the member page and the moderator page.
 */
export class NotificationChoice {
  constructor(key = null) {
    this.key = key;
    this.supported = "Notification" in window;
  }

  get permission() {
    return this.supported ? Notification.permission : "denied";
  }

  get enabled() {
    return this.supported && Boolean(this.key) && store()?.getItem(this.key) === "on"
      && this.permission === "granted";
  }

  /**
   * From a click (a user gesture): the only place permission is ever asked for. Turns the
   * choice off when on; otherwise asks the browser if it hasn't been asked. Returns the new
   * state: "off", "on" or "blocked".
   */
  async toggle() {
    if (this.enabled) {
      store()?.removeItem(this.key);
      return "off";
    }
    let permission = this.permission;
    if (permission === "default") {
      try {
        permission = await Notification.requestPermission();
      } catch {
        permission = "denied";
      }
    }
    if (permission !== "granted") return "blocked";
    store()?.setItem(this.key, "on");
    return "on";
  }
}

/** What either page says when the browser's site settings block notifications. */
export const BLOCKED = "Notifications are blocked for this site. Allow them in your browser's site settings to turn them on.";

export class Notifier {
  /** onOpen(conversationId): a notification was clicked. */
  constructor(memberId, { onOpen }) {
    this.choice = new NotificationChoice(`wb-notify:${memberId}`);
    this.onOpen = onOpen;
    this.button = byId("notify");
    this.label = byId("notify-label");
    this.button.addEventListener("click", () => this.toggle());
    this.render();
  }

  get enabled() {
    return this.choice.enabled;
  }

  async toggle() {
    const state = await this.choice.toggle();
    this.render();
    toast({
      off: "Notifications are off.",
      on: "Notifications are on: you'll hear about new messages while this page is in the background.",
      blocked: BLOCKED,
    }[state]);
  }

  render() {
    this.button.hidden = !this.choice.supported;
    const on = this.enabled;
    const blocked = this.choice.permission === "denied";
    this.button.setAttribute("aria-pressed", on ? "true" : "false");
    this.button.dataset.state = on ? "on" : blocked ? "blocked" : "off";
    this.label.textContent = on ? "Notifications on" : blocked ? "Notifications blocked" : "Notify me";
    this.button.title = on ? "Turn notifications off"
      : blocked ? "Notifications are blocked in this browser's site settings"
        : "Get a notification when a message arrives while this page is in the background";
  }

  /**
   * A peer's message arrived. `openId` is the conversation open in the page (or null).
   * Nothing while the page is in front, and nothing for the open conversation while the
   * page can be seen.
   */
  message(message, senderName, openId) {
    this.render(); // the permission may have changed in the browser's settings meanwhile
    if (!this.enabled) return;
    const visible = document.visibilityState === "visible";
    if (visible && document.hasFocus()) return;
    if (visible && openId === message.conversation_id) return;
    let notification;
    try {
      notification = new Notification(senderName, {
        body: preview(message.body),
        tag: `wb-conversation-${message.conversation_id}`,
        icon: "static/favicon.svg",
      });
    } catch {
      return; // e.g. a browser that only notifies from a service worker
    }
    notification.addEventListener("click", () => {
      window.focus();
      this.onOpen(message.conversation_id);
      notification.close();
    });
  }
}

/** The favicon carries a dot while anything is unread. */
export function setFaviconBadge(unread) {
  const icon = document.querySelector('link[rel="icon"]');
  if (!icon) return;
  const href = unread ? "static/favicon-unread.svg" : "static/favicon.svg";
  if (icon.getAttribute("href") !== href) icon.setAttribute("href", href);
}
