// api.js — owns every HTTP call to the gateway's JSON API (same-origin fetch, cookie auth)
// and turns error responses ({"error": {"code", "message"}}) into ApiError.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status; // 0 when the network failed before any response
    this.code = code;
  }
  get retriable() {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

/** Listeners told when any call answers 401, so the app can show the signed-out screen. */
const unauthenticatedListeners = new Set();
export function onUnauthenticated(listener) {
  unauthenticatedListeners.add(listener);
}

export async function request(method, path, { body, signal, timeoutMs = 20000 } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException("timeout", "TimeoutError")), timeoutMs);
  const abort = () => controller.abort(signal.reason);
  signal?.addEventListener("abort", abort, { once: true });
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      cache: "no-store",
      headers: body === undefined ? { Accept: "application/json" }
        : { Accept: "application/json", "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
    });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiError(0, "network", "Can't reach the server.");
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", abort);
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const err = payload?.error || {};
    if (response.status === 401) unauthenticatedListeners.forEach((fn) => fn());
    throw new ApiError(response.status, err.code || "http_error", err.message);
  }
  return { status: response.status, data: payload };
}

const get = async (path, options) => (await request("GET", path, options)).data;
const post = (path, body, options) => request("POST", path, { ...options, body });

export const api = {
  me: () => get("/api/me"),
  members: (q = "", options) => get(`/api/members?q=${encodeURIComponent(q)}`, options),
  conversations: () => get("/api/conversations"),
  conversation: (id) => get(`/api/conversations/${id}`),
  startConversation: async (peerId, origin) =>
    (await post("/api/conversations", { peer_id: peerId, origin })).data.conversation,
  messages: (id, { before, after, limit = 50 } = {}) => {
    const params = new URLSearchParams({ limit: String(limit) });
    if (before) params.set("before", String(before));
    if (after !== undefined && after !== null) params.set("after", String(after));
    return get(`/api/conversations/${id}/messages?${params}`);
  },
  send: async (id, body, clientId) =>
    (await post(`/api/conversations/${id}/messages`, { body, client_id: clientId })).data.message,
  markRead: async (id, messageId) =>
    (await post(`/api/conversations/${id}/read`, { message_id: messageId })).data.read,
  /** A compose opened from a request, profile or suggestion (the introductions metric). */
  recordIntent: async (peerId, origin) =>
    (await post("/api/intents", { peer_id: peerId, origin })).data.intent,
  /** Whom the signed-in member blocked (never who blocked them): [{member, created_at}]. */
  blocks: async () => (await get("/api/blocks")).blocks,
  block: async (memberId) => (await post("/api/blocks", { member_id: memberId })).data.block,
  unblock: (memberId) => request("DELETE", `/api/blocks/${memberId}`),
  /** {report, created}: created is false when the same open report already existed. */
  report: async (conversationId, messageId, category, note) => {
    const { status, data } = await post("/api/reports",
      { conversation_id: conversationId, message_id: messageId, category, note });
    return { report: data.report, created: status === 201 };
  },
  /** Long poll; without `after` it only returns the current cursor. */
  events: (after, wait, signal) => {
    const query = after === null || after === undefined ? "" : `?after=${after}&wait=${wait}`;
    return get(`/api/events${query}`, { signal, timeoutMs: ((wait || 0) + 10) * 1000 });
  },
  demoMembers: async () => {
    try {
      return (await get("/demo/members")).members;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null; // not demo mode
      throw error;
    }
  },
};

/** A client_id for optimistic sends; works outside secure contexts too. */
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "c-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
