// dom.js — owns small DOM and formatting helpers shared by the other modules.
// Everything user-supplied goes through textContent here; nothing in the client uses innerHTML.

/** Create an element: el("li", {class: "x", "data-id": 3}, child, "text"). Strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

export const byId = (id) => document.getElementById(id);

/** A stable colour class for a member, so avatars look the same everywhere. */
export function hueClass(userId) {
  return `hue-${Math.abs(Number(userId) || 0) % 8}`;
}

export function initial(name) {
  const first = [...String(name || "?").trim()][0] || "?";
  return first.toUpperCase();
}

export function avatar(member, extraClass = "") {
  return el("span", { class: `avatar ${hueClass(member.user_id)} ${extraClass}`.trim(), "aria-hidden": "true" },
    initial(member.username));
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const weekdayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short" });
const shortDateFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const longDateFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });
const yearDateFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "long", day: "numeric" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

function startOfDay(date) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
}

function daysAgo(date, now = new Date()) {
  return Math.round((startOfDay(now) - startOfDay(date)) / 86_400_000);
}

/** Inbox style: "14:05" today, "Mon" this week, "Nov 3" before. */
export function shortTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const days = daysAgo(date);
  if (days <= 0) return timeFmt.format(date);
  if (days < 7) return weekdayFmt.format(date);
  return shortDateFmt.format(date);
}

export function clockTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : timeFmt.format(date);
}

export function fullTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : fullFmt.format(date);
}

/** Day separator label: "Today", "Yesterday", "Monday, November 3". */
export function dayLabel(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const days = daysAgo(date);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  if (date.getFullYear() === new Date().getFullYear()) return longDateFmt.format(date);
  return yearDateFmt.format(date);
}

export function dayKey(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : String(startOfDay(date));
}

/** Announce something to screen readers through the polite live region. */
export function announce(text) {
  const region = byId("announcer");
  region.textContent = "";
  // A fresh text node after a tick makes repeated identical texts be read again.
  setTimeout(() => { region.textContent = text; }, 50);
}

let toastTimer = 0;
export function toast(text, ms = 6000) {
  const box = byId("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, ms);
}

/** Code-point length, as the server counts characters against its limits (gateway/limits.py). */
export function charLength(text) {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}
