// The moderator page: the reports queue and the audited export. The server decides who may
// do what; this page only asks it, and says plainly when the answer is no.

const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(path, { credentials: "same-origin", ...options, headers });
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error?.message || `The gateway answered ${response.status}.`;
  } catch {
    return `The gateway answered ${response.status}.`;
  }
}

function show(id, text) {
  const element = $(id);
  element.textContent = text;
  element.hidden = !text;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function refuse(message) {
  $("who").textContent = "";
  $("tools").hidden = true;
  show("refused", message);
}

// Reports

function renderMessage(message, names, reportedId) {
  const item = element("li", message.id === reportedId ? "message reported" : "message");
  const sender = names.get(message.sender_id) || `member #${message.sender_id}`;
  item.append(element("span", "meta", `${sender} · ${message.created_at}`));
  item.append(element("p", "body", message.body));
  return item;
}

function renderReport(report) {
  const item = element("li", "report");
  item.dataset.reportId = String(report.id);
  const names = new Map([
    [report.reporter.user_id, report.reporter.username],
    [report.reported.user_id, report.reported.username],
  ]);
  item.append(element("h3", "", `#${report.id} · ${report.category} · ${report.created_at}`));
  item.append(
    element(
      "p",
      "parties",
      `${report.reporter.username} (#${report.reporter.user_id}) reported ` +
        `${report.reported.username} (#${report.reported.user_id}) ` +
        `in conversation ${report.conversation_id}`,
    ),
  );
  if (report.note) item.append(element("p", "note", `Note: ${report.note}`));
  const context = element("ol", "context");
  for (const message of report.context) {
    context.append(renderMessage(message, names, report.message_id));
  }
  if (!report.context.length) context.append(element("li", "message", "No messages."));
  item.append(context);
  if (report.status === "resolved") {
    item.append(element("p", "resolution", `Resolved: ${report.resolution} (${report.resolved_at})`));
  } else {
    item.append(resolveForm(report.id));
  }
  return item;
}

function resolveForm(reportId) {
  const form = element("form", "resolve");
  const label = element("label", "", "Resolution ");
  const input = element("input");
  input.name = "resolution";
  input.required = true;
  input.maxLength = 1000;
  label.append(input);
  const button = element("button", "", "Resolve");
  button.type = "submit";
  const error = element("span", "error");
  form.append(label, button, error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!input.value.trim()) {
      error.textContent = "Say how it was resolved.";
      return;
    }
    button.disabled = true;
    const response = await api(`/api/moderation/reports/${reportId}/resolve`, {
      method: "POST",
      body: JSON.stringify({ resolution: input.value }),
    });
    button.disabled = false;
    if (!response.ok) {
      error.textContent = await errorMessage(response);
      return;
    }
    await loadReports();
  });
  return form;
}

async function loadReports() {
  const status = $("report-status").value;
  const response = await api(`/api/moderation/reports?status=${status}`);
  const list = $("reports");
  list.replaceChildren();
  if (!response.ok) {
    show("reports-error", await errorMessage(response));
    return;
  }
  show("reports-error", "");
  const { reports } = await response.json();
  $("reports-empty").hidden = reports.length > 0;
  for (const report of reports) list.append(renderReport(report));
}

// Export

function filenameOf(response, exportId) {
  const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  return match ? match[1] : `wb-export-${exportId}`;
}

async function runExport(event) {
  event.preventDefault();
  show("export-error", "");
  $("export-result").hidden = true;
  const memberId = $("export-member").value.trim();
  const reason = $("export-reason").value.trim();
  if (!/^[1-9][0-9]*$/.test(memberId)) return show("export-error", "Enter the member's id.");
  if (!reason) return show("export-error", "A reason is required: a case reference or a sentence.");
  const params = new URLSearchParams({
    member_id: memberId,
    scope: $("export-scope").value,
    format: $("export-format").value,
    reason,
  });
  for (const name of ["since", "until"]) {
    const value = $(`export-${name}`).value;
    if (value) params.set(name, value);
  }
  const button = $("export-submit");
  button.disabled = true;
  button.textContent = "Exporting…";
  try {
    const response = await api(`/api/moderation/export?${params}`);
    if (!response.ok) return show("export-error", await errorMessage(response));
    const exportId = response.headers.get("X-Export-Id");
    const filename = filenameOf(response, exportId);
    const blob = await response.blob();
    const link = element("a");
    link.href = URL.createObjectURL(blob);
    link.download = filename;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    await showExport(exportId, filename);
  } catch (error) {
    show("export-error", `The export failed: ${error.message}`);
  } finally {
    button.disabled = false;
    button.textContent = "Download export";
  }
}

async function showExport(exportId, filename) {
  // The audit entry is completed before the file's last bytes are sent.
  const response = await api(`/api/moderation/exports/${exportId}`);
  if (!response.ok) return show("export-error", await errorMessage(response));
  const entry = (await response.json()).export;
  $("export-id").textContent = `#${entry.id} (${entry.outcome})`;
  $("export-file").textContent = filename;
  $("export-rows").textContent = String(entry.row_count);
  $("export-sha").textContent = entry.sha256;
  $("export-result").hidden = false;
}

async function start() {
  const response = await api("/api/moderation/me");
  if (response.status === 401) {
    return refuse("You are not signed in. Sign in to WhiteBalloon, then reload this page.");
  }
  if (response.status === 403) {
    return refuse("Not allowed: only WhiteBalloon moderators and admins can use this page.");
  }
  if (!response.ok) return refuse(await errorMessage(response));
  const me = await response.json();
  $("who").textContent = `Signed in as ${me.username} (${me.role}).`;
  if (me.role !== "admin") {
    const full = $("export-scope").querySelector('option[value="full"]');
    full.disabled = true;
    full.textContent = "Full: every body (admins only; not available to you)";
  }
  $("tools").hidden = false;
  $("report-status").addEventListener("change", loadReports);
  $("reload-reports").addEventListener("click", loadReports);
  $("export-form").addEventListener("submit", runExport);
  await loadReports();
}

start();
