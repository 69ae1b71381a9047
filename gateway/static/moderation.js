// moderation.js — the moderator page: the reports queue and the audited export. The server
// decides who may do what; this page only asks it, and says plainly when the answer is no.
// HTTP goes through api.js (relative paths, ApiError) and elements through dom.js, like the
// member's client; nothing here touches innerHTML.
//
// The open queue is live: the page polls api/moderation/reports/summary (not audited) and
// reloads the queue (each load is audited) only when the summary changed, so one new report
// costs one audited view however long the page stays open. The poll interval may be
// shortened for tests with window.WB_MODERATION_OPTIONS = {pollMs}, read once at start-up.
// Safety reports come first in the open queue; opt-in notifications (asked for from the
// button's click, never on load) announce each new report, safety ones first, while the
// page is in the background.

import { api, ApiError, get, post, request } from "./api.js";
import { byId, el } from "./dom.js";
import { BLOCKED, NotificationChoice, preview } from "./notify.js";

const OPTIONS = { pollMs: 10_000, ...(window.WB_MODERATION_OPTIONS || {}) };
const BASE_TITLE = document.title;

/** What to tell the moderator about a failed call: the server's words when it sent any. */
function describe(error) {
  if (error instanceof ApiError) {
    if (error.serverMessage) return error.serverMessage;
    return error.status ? `The gateway answered ${error.status}.` : error.message;
  }
  return `Something went wrong: ${error?.message || error}`;
}

function show(id, text) {
  const element = byId(id);
  element.textContent = text;
  element.hidden = !text;
}

function refuse(message, link = null) {
  stopPolling();
  byId("who").textContent = "";
  byId("tools").hidden = true;
  document.title = BASE_TITLE;
  show("refused", message);
  if (link) byId("refused").append(" ", link);
}

// Times: the moderator's locale and time zone on screen, the exact UTC instant in the
// element's datetime and tooltip.

const localFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function utcText(date) {
  return `${date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "").replace(/Z$/, "")} UTC`;
}

/** A <time> for an ISO timestamp: "3 Mar 2025, 14:05" shown, the UTC instant on hover. */
function timeEl(iso) {
  const date = new Date(iso);
  if (!iso || Number.isNaN(date.getTime())) return el("span", { text: iso || "" });
  return el("time", { datetime: iso, title: utcText(date) }, localFmt.format(date));
}

// Reports

function renderMessage(message, names, reportedId) {
  const sender = names.get(message.sender_id) || `member #${message.sender_id}`;
  return el("li", { class: message.id === reportedId ? "message reported" : "message" },
    el("span", { class: "meta" }, `${sender} · `, timeEl(message.created_at)),
    el("p", { class: "body", text: message.body }));
}

function renderReport(report) {
  const names = new Map([
    [report.reporter.user_id, report.reporter.username],
    [report.reported.user_id, report.reported.username],
  ]);
  const safety = report.category === "safety";
  const context = el("ol", { class: "context" },
    ...report.context.map((message) => renderMessage(message, names, report.message_id)));
  if (!report.context.length) context.append(el("li", { class: "message", text: "No messages." }));
  return el("li", {
    class: safety ? "report safety" : "report",
    "data-report-id": report.id,
    "data-category": report.category,
    tabindex: "-1",
  },
  el("h3", {},
    safety ? el("span", { class: "badge safety-badge", text: "Safety" }) : null,
    safety ? " " : null,
    `#${report.id} · ${report.category} · `, timeEl(report.created_at)),
  el("p", {
    class: "parties",
    text: `${report.reporter.username} (#${report.reporter.user_id}) reported `
      + `${report.reported.username} (#${report.reported.user_id}) `
      + `in conversation ${report.conversation_id}`,
  }),
  report.note ? el("p", { class: "note", text: `Note: ${report.note}` }) : null,
  context,
  report.status === "resolved"
    ? el("p", { class: "resolution" }, `Resolved: ${report.resolution} (`, timeEl(report.resolved_at), ")")
    : resolveForm(report.id));
}

function resolveForm(reportId) {
  const input = el("input", { name: "resolution", required: true, maxlength: 1000 });
  const button = el("button", { type: "submit", text: "Resolve" });
  const error = el("span", { class: "error" });
  const form = el("form", { class: "resolve" },
    el("label", {}, "Resolution ", input), button, error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!input.value.trim()) {
      error.textContent = "Say how it was resolved.";
      return;
    }
    button.disabled = true;
    try {
      await post(`api/moderation/reports/${reportId}/resolve`, { resolution: input.value });
    } catch (failure) {
      error.textContent = describe(failure);
      return;
    } finally {
      button.disabled = false;
    }
    // Take the summary first, so this page's own resolution isn't mistaken for news (and
    // the queue isn't loaded, and audited, a second time).
    await checkSummary({ reload: false });
    await loadReports();
  });
  return form;
}

/** Safety reports first; otherwise the server's order (open: oldest first). */
function ordered(reports, status) {
  if (status !== "open") return reports;
  return [...reports.filter((r) => r.category === "safety"), ...reports.filter((r) => r.category !== "safety")];
}

/** Loads (an audited view) and shows the queue; resolves to the reports, or null on failure. */
async function loadReports() {
  const status = byId("report-status").value;
  const list = byId("reports");
  let reports;
  try {
    ({ reports } = await get(`api/moderation/reports?status=${encodeURIComponent(status)}`));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return signedOut();
    list.replaceChildren();
    show("reports-error", describe(error));
    return null;
  }
  show("reports-error", "");
  byId("reports-empty").hidden = reports.length > 0;
  list.replaceChildren(...ordered(reports, status).map(renderReport));
  list.dataset.status = status;
  if (status === "open") {
    live.openShown = true;
    live.seenId = Math.max(live.seenId, ...reports.map((r) => r.id));
  }
  return reports;
}

// The live queue

const live = {
  summary: null, // the last summary seen: {open, open_safety, newest_open_id}
  seenId: 0, // the newest open report this page has shown or announced
  timer: 0,
  stopped: false,
  openShown: false,
  checking: Promise.resolve(null),
};

function stopPolling() {
  live.stopped = true;
  clearTimeout(live.timer);
}

function schedulePoll() {
  clearTimeout(live.timer);
  if (live.stopped) return;
  live.timer = setTimeout(async () => {
    await checkSummary({ reload: true });
    schedulePoll();
  }, OPTIONS.pollMs);
}

function renderSummary(summary) {
  const { open, open_safety: safety } = summary;
  const text = open === 0 ? "No open reports."
    : `${open} open ${open === 1 ? "report" : "reports"}`
      + (safety ? `, ${safety} about safety.` : ".");
  const line = byId("queue-summary");
  if (line.textContent !== text) line.textContent = text;
  line.classList.toggle("urgent", safety > 0);
  document.title = open ? `(${open}${safety ? ` · ${safety} safety` : ""}) ${BASE_TITLE}` : BASE_TITLE;
}

async function signedOut() {
  refuse("You are no longer signed in. Sign in to WhiteBalloon, then reload this page.",
    await signInLink());
  return null;
}

/**
 * Asks for the summary (not audited). With `reload`, a change in the open queue (a new
 * report, or one resolved elsewhere) reloads it once, and new reports are announced.
 */
function checkSummary(options) {
  // One at a time: a poll and a resolution racing must not both load (and audit) the queue.
  const next = live.checking.then(() => checkSummaryNow(options));
  live.checking = next.catch(() => null);
  return next;
}

async function checkSummaryNow({ reload }) {
  let summary;
  try {
    summary = await get("api/moderation/reports/summary");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return signedOut();
    if (error instanceof ApiError && error.status === 403) {
      return refuse("Not allowed any more: only WhiteBalloon moderators and admins can use this page.");
    }
    return null; // offline or a hiccup: try again at the next poll
  }
  const before = live.summary;
  live.summary = summary;
  renderSummary(summary);
  const changed = before && (before.open !== summary.open || before.newest_open_id !== summary.newest_open_id);
  if (!reload || !changed) return summary;
  const newest = summary.newest_open_id || 0;
  const seen = live.seenId;
  if (byId("report-status").value === "open") {
    const reports = await loadReports();
    const fresh = (reports || []).filter((r) => r.id > seen);
    if (fresh.length) notifier.reports(fresh);
    else if (newest > seen) notifier.summary(summary, before);
  } else if (newest > seen) {
    // The moderator is reading the resolved history: leave it, and say what came in.
    live.openShown = false;
    notifier.summary(summary, before);
  }
  live.seenId = Math.max(live.seenId, newest);
  return summary;
}

// Notifications

class ReportNotifier {
  constructor() {
    this.choice = new NotificationChoice(); // whose choice: known once start() is called
    this.button = byId("notify");
  }

  start(memberId) {
    this.choice = new NotificationChoice(`wb-moderation-notify:${memberId}`);
    this.button.addEventListener("click", () => this.toggle());
    this.render();
  }

  get enabled() {
    return this.choice.enabled;
  }

  async toggle() {
    const state = await this.choice.toggle();
    this.render({
      off: "Notifications about new reports are off.",
      on: "Notifications are on: each new report is announced, safety reports first.",
      blocked: BLOCKED,
    }[state]);
  }

  render(message = null) {
    this.button.hidden = !this.choice.supported || !this.choice.key;
    const on = this.enabled;
    const blocked = this.choice.permission === "denied";
    this.button.setAttribute("aria-pressed", on ? "true" : "false");
    this.button.dataset.state = on ? "on" : blocked ? "blocked" : "off";
    this.button.textContent = on ? "Notifications on" : blocked ? "Notifications blocked" : "Notify me of new reports";
    this.button.title = on ? "Turn notifications about new reports off"
      : blocked ? "Notifications are blocked in this browser's site settings"
        : "Get a notification when a report arrives";
    if (message !== null) show("notify-status", message);
  }

  /** One notification per new report, safety reports first and more insistent. */
  reports(reports) {
    this.render();
    if (!this.enabled) return;
    const sorted = [...reports.filter((r) => r.category === "safety"), ...reports.filter((r) => r.category !== "safety")];
    for (const report of sorted) {
      const safety = report.category === "safety";
      const title = safety
        ? `Safety report #${report.id}: someone may be in danger`
        : `New ${report.category} report #${report.id}`;
      const who = `${report.reporter.username} reported ${report.reported.username}`;
      this.notify(title, {
        body: report.note ? `${who}: ${preview(report.note)}` : `${who}.`,
        tag: `wb-report-${report.id}`,
        requireInteraction: safety,
      }, report.id);
    }
  }

  /** When the queue itself wasn't loaded: what the summary says, without details. */
  summary(summary, before) {
    this.render();
    if (!this.enabled) return;
    const moreSafety = summary.open_safety > (before?.open_safety || 0);
    this.notify(moreSafety ? "New safety report: someone may be in danger" : "New report in the queue", {
      body: `${summary.open} open, ${summary.open_safety} about safety.`,
      tag: `wb-report-${summary.newest_open_id}`,
      requireInteraction: moreSafety,
    }, null);
  }

  notify(title, options, reportId) {
    // In front, the queue, its count and the title already say it.
    if (document.visibilityState === "visible" && document.hasFocus()) return;
    let notification;
    try {
      notification = new Notification(title, { icon: "static/favicon.svg", ...options });
    } catch {
      return; // e.g. a browser that only notifies from a service worker
    }
    notification.addEventListener("click", () => {
      window.focus();
      notification.close();
      focusReport(reportId);
    });
  }
}

const notifier = new ReportNotifier();

/** A notification was clicked: show the open queue and the report. */
async function focusReport(reportId) {
  if (byId("report-status").value !== "open" || !live.openShown) {
    byId("report-status").value = "open";
    await checkSummary({ reload: false });
    await loadReports();
  }
  const item = reportId === null ? byId("reports").firstElementChild
    : byId("reports").querySelector(`[data-report-id="${reportId}"]`);
  if (item) {
    item.scrollIntoView({ block: "start" });
    item.focus();
  }
}

// Export

function filenameOf(response, exportId) {
  const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  return match ? match[1] : `wb-export-${exportId}`;
}

function clearExportResult() {
  byId("export-result").hidden = true;
  for (const id of ["export-id", "export-who", "export-when", "export-file", "export-rows", "export-sha"]) {
    byId(id).replaceChildren();
  }
}

/**
 * The member to export: a username is looked up (any member, for a moderator); a number is
 * taken as an id, so members who left (no longer in the directory) can still be exported.
 * Resolves to {id, label}; throws an Error with the words to show.
 */
async function memberToExport(text) {
  const byNumber = /^#?([1-9][0-9]*)$/.exec(text);
  if (byNumber) return { id: byNumber[1], label: `#${byNumber[1]}`, byId: true };
  try {
    const { member } = await get(`api/moderation/members?username=${encodeURIComponent(text.replace(/^@/, ""))}`);
    return { id: String(member.user_id), label: `${member.username} (#${member.user_id})`, byId: false };
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      throw new Error("No member has that name. Check the spelling, or enter the id of a member who left.");
    }
    throw new Error(describe(error));
  }
}

async function runExport(event) {
  event.preventDefault();
  show("export-error", "");
  clearExportResult();
  const memberText = byId("export-member").value.trim();
  const reason = byId("export-reason").value.trim();
  if (!memberText) return show("export-error", "Enter the member's username, or the id of a member who left.");
  if (!reason) return show("export-error", "A reason is required: a case reference or a sentence.");
  const button = byId("export-submit");
  button.disabled = true;
  button.textContent = "Exporting…";
  try {
    let member;
    try {
      member = await memberToExport(memberText);
    } catch (error) {
      show("export-error", error.message);
      return;
    }
    const params = new URLSearchParams({
      member_id: member.id,
      scope: byId("export-scope").value,
      format: byId("export-format").value,
      reason,
    });
    for (const name of ["since", "until"]) {
      const value = byId(`export-${name}`).value;
      if (value) params.set(name, value);
    }
    // The audit entry is committed before the first byte, so waiting for headers is enough
    // to know the export was allowed; the body may take a while longer.
    const response = await request("GET", `api/moderation/export?${params}`, { raw: true, timeoutMs: 60000 });
    const exportId = response.headers.get("X-Export-Id");
    const filename = filenameOf(response, exportId);
    const blob = await response.blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    await showExport(exportId, filename, member);
  } catch (error) {
    clearExportResult();
    if (error instanceof ApiError && error.code === "member_not_found") {
      show("export-error", "No member has that id, now or in any conversation.");
    } else {
      show("export-error", error instanceof ApiError ? describe(error) : `The export failed: ${error.message}`);
    }
  } finally {
    button.disabled = false;
    button.textContent = "Download export";
  }
}

async function showExport(exportId, filename, member) {
  // The audit entry is completed before the file's last bytes are sent.
  const entry = (await get(`api/moderation/exports/${encodeURIComponent(exportId)}`)).export;
  byId("export-id").textContent = `#${entry.id} (${entry.outcome})`;
  byId("export-who").textContent = member.label;
  byId("export-when").replaceChildren(timeEl(entry.completed_at || entry.created_at));
  byId("export-file").textContent = filename;
  byId("export-rows").textContent = String(entry.row_count);
  byId("export-sha").textContent = entry.sha256;
  byId("export-result").hidden = false;
}

/** A link to WhiteBalloon's sign-in (or, in demo mode, the demo's member picker). */
async function signInLink() {
  const { sign_in_url: raw } = await api.instance();
  if (!raw) return null;
  try {
    const url = new URL(raw, location.href);
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    return el("a", { href: url.href, id: "sign-in", text: "Sign in to WhiteBalloon" });
  } catch {
    return null;
  }
}

async function start() {
  let me;
  try {
    me = await get("api/moderation/me");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      return refuse("You are not signed in. Sign in to WhiteBalloon, then reload this page.",
        await signInLink());
    }
    if (error instanceof ApiError && error.status === 403) {
      return refuse("Not allowed: only WhiteBalloon moderators and admins can use this page.");
    }
    return refuse(describe(error));
  }
  byId("who").textContent = `Signed in as ${me.username} (${me.role}).`;
  if (me.role !== "admin") {
    const full = byId("export-scope").querySelector('option[value="full"]');
    full.disabled = true;
    full.textContent = "Full: every body (admins only; not available to you)";
  }
  byId("tools").hidden = false;
  notifier.start(me.user_id);
  byId("report-status").addEventListener("change", async () => {
    if (byId("report-status").value === "open") await checkSummary({ reload: false });
    await loadReports();
  });
  byId("reload-reports").addEventListener("click", async () => {
    await checkSummary({ reload: false });
    await loadReports();
  });
  byId("export-form").addEventListener("submit", runExport);
  // The summary first: a report filed between the two calls is then shown by the load and
  // not loaded again at the next poll.
  const summary = await checkSummary({ reload: false });
  live.seenId = summary?.newest_open_id || 0;
  await loadReports();
  if (!live.stopped) schedulePoll();
}

start();
