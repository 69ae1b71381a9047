// api.js — owns every HTTP call to the gateway's JSON API (same-origin fetch, cookie auth)
// and turns error responses ({"error": {"code", "message"}}) into ApiError.
//
// Every path here is RELATIVE (api/me, never a root-absolute one): the browser resolves it against
// the page's URL, so the gateway works under any prefix a proxy serves it at
// (https://host/messages/ -> https://host/messages/api/me). Pages live at `<prefix>/` and
// `<prefix>/moderation`, both directly under the prefix, so one set of paths serves both.

export class ApiError extends Error {
  constructor(status, code, message, retryAfterSeconds = null) {
    super(message || code || `HTTP ${status}`);
    this.status = status; // 0 when the network failed before any response
    this.code = code;
    this.serverMessage = message || null; // the server's own words, when it sent any
    this.retryAfterSeconds = retryAfterSeconds; // a 429's (or 503's) Retry-After, if any
  }
  get retriable() {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

/**
 * Listeners told when any call answers 401, so the app can show the signed-out screen. Each
 * gets the ApiError, whose message is the server's (e.g. that a sign-in isn't finished).
 */
const unauthenticatedListeners = new Set();
export function onUnauthenticated(listener) {
  unauthenticatedListeners.add(listener);
}

/**
 * One call. Resolves to {status, data} (the parsed JSON body), or with `raw: true` to the
 * Response itself once its headers arrived (for downloads: the caller reads the body).
 * Rejects with ApiError for any non-2xx answer or a network failure.
 */
export async function request(method, path, { body, signal, timeoutMs = 20000, raw = false } = {}) {
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
  if (raw && response.ok) return response;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const err = payload?.error || {};
    const error = new ApiError(response.status, err.code || "http_error", err.message,
      retryAfter(response.headers.get("Retry-After")));
    if (response.status === 401) unauthenticatedListeners.forEach((fn) => fn(error));
    throw error;
  }
  return { status: response.status, data: payload };
}

/** Retry-After as seconds from now: either delay-seconds or an HTTP date. */
function retryAfter(header) {
  if (!header) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const when = Date.parse(header);
  return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - Date.now()) / 1000));
}

export const get = async (path, options) => (await request("GET", path, options)).data;
export const post = (path, body, options) => request("POST", path, { ...options, body });

let instancePromise = null;

export const api = {
  /**
   * {demo_mode, sign_in_url}: asked once per page (no auth needed). If the server can't say,
   * the page assumes it is not a demo and sends a signed-out member to WhiteBalloon's root.
   */
  instance: () => {
    instancePromise ??= get("api/instance").catch(() => ({ demo_mode: false, sign_in_url: null }));
    return instancePromise;
  },
  me: () => get("api/me"),
  members: (q = "", options) => get(`api/members?q=${encodeURIComponent(q)}`, options),
  conversations: () => get("api/conversations"),
  conversation: (id) => get(`api/conversations/${id}`),
  startConversation: async (peerId, origin) =>
    (await post("api/conversations", { peer_id: peerId, origin })).data.conversation,
  messages: (id, { before, after, limit = 50 } = {}) => {
    const params = new URLSearchParams({ limit: String(limit) });
    if (before) params.set("before", String(before));
    if (after !== undefined && after !== null) params.set("after", String(after));
    return get(`api/conversations/${id}/messages?${params}`);
  },
  send: async (id, body, clientId) =>
    (await post(`api/conversations/${id}/messages`, { body, client_id: clientId })).data.message,
  markRead: async (id, messageId) =>
    (await post(`api/conversations/${id}/read`, { message_id: messageId })).data.read,
  /** A compose opened from a request, profile or suggestion (the introductions metric). */
  recordIntent: async (peerId, origin) =>
    (await post("api/intents", { peer_id: peerId, origin })).data.intent,
  /** Whom the signed-in member blocked (never who blocked them): [{member, created_at}]. */
  blocks: async () => (await get("api/blocks")).blocks,
  block: async (memberId) => (await post("api/blocks", { member_id: memberId })).data.block,
  unblock: (memberId) => request("DELETE", `api/blocks/${memberId}`),
  /** {report, created}: created is false when the same open report already existed. */
  report: async (conversationId, messageId, category, note) => {
    const { status, data } = await post("api/reports",
      { conversation_id: conversationId, message_id: messageId, category, note });
    return { report: data.report, created: status === 201 };
  },
  /** Long poll; without `after` it only returns the current cursor. */
  events: (after, wait, signal) => {
    const query = after === null || after === undefined ? "" : `?after=${after}&wait=${wait}`;
    return get(`api/events${query}`, { signal, timeoutMs: ((wait || 0) + 10) * 1000 });
  },
  /**
   * Someone the member can see in the directory, whether or not they can message them:
   * {member, can_message, reason, message}. Resolves to null on 404 (nobody by that name the
   * member can see; the server never says more than that).
   */
  lookup: async (username) => {
    try {
      return await get(`api/members/lookup?username=${encodeURIComponent(username)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
  },
  /** The demo's members to sign in as; only asked when api/instance says demo_mode. */
  demoMembers: async () => (await get("demo/members")).members,
};

/** A client_id for optimistic sends; works outside secure contexts too. */
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "c-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
