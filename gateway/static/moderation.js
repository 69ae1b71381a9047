// moderation.js — the moderator page: the reports queue and the audited export. The server
// decides who may do what; this page only asks it, and says plainly when the answer is no.
// HTTP goes through api.js (relative paths, ApiError) and elements through dom.js, like the
// member's client; nothing here touches innerHTML.

import { api, ApiError, get, post, request } from "./api.js";
import { byId, el } from "./dom.js";

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
  byId("who").textContent = "";
  byId("tools").hidden = true;
  show("refused", message);
  if (link) byId("refused").append(" ", link);
}

// Reports

function renderMessage(message, names, reportedId) {
  const sender = names.get(message.sender_id) || `member #${message.sender_id}`;
  return el("li", { class: message.id === reportedId ? "message reported" : "message" },
    el("span", { class: "meta", text: `${sender} · ${message.created_at}` }),
    el("p", { class: "body", text: message.body }));
}

function renderReport(report) {
  const names = new Map([
    [report.reporter.user_id, report.reporter.username],
    [report.reported.user_id, report.reported.username],
  ]);
  const context = el("ol", { class: "context" },
    ...report.context.map((message) => renderMessage(message, names, report.message_id)));
  if (!report.context.length) context.append(el("li", { class: "message", text: "No messages." }));
  return el("li", { class: "report", "data-report-id": report.id },
    el("h3", { text: `#${report.id} · ${report.category} · ${report.created_at}` }),
    el("p", {
      class: "parties",
      text: `${report.reporter.username} (#${report.reporter.user_id}) reported `
        + `${report.reported.username} (#${report.reported.user_id}) `
        + `in conversation ${report.conversation_id}`,
    }),
    report.note ? el("p", { class: "note", text: `Note: ${report.note}` }) : null,
    context,
    report.status === "resolved"
      ? el("p", { class: "resolution", text: `Resolved: ${report.resolution} (${report.resolved_at})` })
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
    await loadReports();
  });
  return form;
}

async function loadReports() {
  const status = byId("report-status").value;
  const list = byId("reports");
  let reports;
  try {
    ({ reports } = await get(`api/moderation/reports?status=${encodeURIComponent(status)}`));
  } catch (error) {
    list.replaceChildren();
    show("reports-error", describe(error));
    return;
  }
  show("reports-error", "");
  byId("reports-empty").hidden = reports.length > 0;
  list.replaceChildren(...reports.map(renderReport));
}

// Export

function filenameOf(response, exportId) {
  const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  return match ? match[1] : `wb-export-${exportId}`;
}

async function runExport(event) {
  event.preventDefault();
  show("export-error", "");
  byId("export-result").hidden = true;
  const memberId = byId("export-member").value.trim();
  const reason = byId("export-reason").value.trim();
  if (!/^[1-9][0-9]*$/.test(memberId)) return show("export-error", "Enter the member's id.");
  if (!reason) return show("export-error", "A reason is required: a case reference or a sentence.");
  const params = new URLSearchParams({
    member_id: memberId,
    scope: byId("export-scope").value,
    format: byId("export-format").value,
    reason,
  });
  for (const name of ["since", "until"]) {
    const value = byId(`export-${name}`).value;
    if (value) params.set(name, value);
  }
  const button = byId("export-submit");
  button.disabled = true;
  button.textContent = "Exporting…";
  try {
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
    await showExport(exportId, filename);
  } catch (error) {
    show("export-error", error instanceof ApiError ? describe(error) : `The export failed: ${error.message}`);
  } finally {
    button.disabled = false;
    button.textContent = "Download export";
  }
}

async function showExport(exportId, filename) {
  // The audit entry is completed before the file's last bytes are sent.
  const entry = (await get(`api/moderation/exports/${encodeURIComponent(exportId)}`)).export;
  byId("export-id").textContent = `#${entry.id} (${entry.outcome})`;
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
  byId("report-status").addEventListener("change", loadReports);
  byId("reload-reports").addEventListener("click", loadReports);
  byId("export-form").addEventListener("submit", runExport);
  await loadReports();
}

start();
