// notify.js — owns desktop notifications and the favicon badge. Notifications are opt-in:
// the member turns them on with the bell button (the browser is asked for permission from
// that click, never on load), and may turn them off again; the choice is kept per member on
// this device. A notification names the sender with a short preview, opens the conversation
// when clicked, replaces an older one of the same conversation, and is not shown when the
// page is in front, nor ever for the conversation the member has open and visible.
// Notifications while the page is closed would need Web Push: out of scope (README).

import { byId, toast } from "./dom.js";

const PREVIEW_CHARS = 100;

function preview(text) {
  const chars = [...text.replace(/\s+/g, " ").trim()];
  return chars.length > PREVIEW_CHARS ? `${chars.slice(0, PREVIEW_CHARS).join("")}…` : chars.join("");
}

function store() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

export class Notifier {
  /** onOpen(conversationId): a notification was clicked. */
  constructor(memberId, { onOpen }) {
    this.key = `wb-notify:${memberId}`;
    this.onOpen = onOpen;
    this.supported = "Notification" in window;
    this.button = byId("notify");
    this.label = byId("notify-label");
    this.button.addEventListener("click", () => this.toggle());
    this.render();
  }

  get permission() {
    return this.supported ? Notification.permission : "denied";
  }

  get wanted() {
    return store()?.getItem(this.key) === "on";
  }

  get enabled() {
    return this.supported && this.wanted && this.permission === "granted";
  }

  /** From the bell's click (a user gesture): the only place permission is ever asked for. */
  async toggle() {
    if (this.enabled) {
      store()?.removeItem(this.key);
      this.render();
      toast("Notifications are off.");
      return;
    }
    let permission = this.permission;
    if (permission === "default") {
      try {
        permission = await Notification.requestPermission();
      } catch {
        permission = "denied";
      }
    }
    if (permission === "granted") {
      store()?.setItem(this.key, "on");
      toast("Notifications are on: you'll hear about new messages while this page is in the background.");
    } else {
      toast("Notifications are blocked for this site. Allow them in your browser's site settings to turn them on.");
    }
    this.render();
  }

  render() {
    this.button.hidden = !this.supported;
    const on = this.enabled;
    const blocked = this.permission === "denied";
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
