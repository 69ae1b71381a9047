// app.js — owns start-up and wiring: who is signed in (or the signed-out / demo screen),
// the first inbox load, the live feed, routing between inbox and thread (#/c/ID), the
// deep link ./?with=USERNAME&origin=TYPE:REF (recording the introduction intent first), the
// connection indicator (which also tells the outbox to resend when the connection returns),
// notifications, and handing the member's blocks to the safety tools. The live feed's
// timings may be shortened for tests with window.WB_LIVE_OPTIONS (a Playwright init script;
// the page itself runs no inline script), read once here at start-up.
//
// The page may be served under any prefix (https://host/messages/), so every URL it makes
// is relative to the page: "./#/c/ID" for history entries, "demo/login?..." for links.

import { api, ApiError, onUnauthenticated } from "./api.js";
import { announce, avatar, byId, el, toast } from "./dom.js";
import { Inbox } from "./inbox.js";
import { LiveFeed } from "./live.js";
import { Notifier } from "./notify.js";
import { clearStoredOutboxes } from "./outbox.js";
import { Picker } from "./picker.js";
import { Safety } from "./safety.js";
import { Thread } from "./thread.js";

const ORIGIN_TYPES = new Set(["request", "profile", "suggestion", "inbox"]);
const STATUS_TEXT = {
  connecting: ["Connecting…", "Connecting to the live feed"],
  live: ["Live", "New messages arrive instantly"],
  reconnecting: ["Reconnecting…", "The live connection dropped; reconnecting"],
  polling: ["Polling", "Live connection unavailable; checking for new messages continuously"],
  offline: ["Offline", "You're offline; messages will be sent when you're back online"],
  idle: ["Offline", "Not connected"],
};

const SIGNED_OUT_BY_STREAM = "Your WhiteBalloon session has ended. Sign in again to read and send messages.";

let me = null;
let inbox = null;
let thread = null;
let live = null;
let notifier = null;
let signedOut = null; // the signed-out screen's one-time set-up, once it has started

function show(id) {
  for (const screen of ["loading", "signed-out", "app"]) byId(screen).hidden = screen !== id;
}

/** The page's own URL with a new hash and no query: keeps whatever prefix it is served under. */
function pageUrl(hash) {
  return `./${hash}`;
}

/** Only a web address may become the sign-in link (never javascript: and the like). */
function signInHref(raw) {
  if (!raw) return null;
  try {
    const url = new URL(raw, location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * The signed-out screen. `message` is the server's reason when it gave one (a sign-in that
 * isn't finished, a session that ended); demo mode offers its members, anything else a link
 * to WhiteBalloon's sign-in.
 */
function showSignedOut(message) {
  live?.stop();
  // Unsent messages stay on this device only while their author is signed in.
  thread?.outbox.clear();
  clearStoredOutboxes();
  show("signed-out");
  if (message) byId("signed-out-message").textContent = message;
  signedOut ??= setUpSignedOut();
  return signedOut;
}

async function setUpSignedOut() {
  const instance = await api.instance();
  if (!instance.demo_mode) {
    const href = signInHref(instance.sign_in_url);
    if (href) {
      byId("sign-in").href = href;
      byId("sign-in").hidden = false;
    }
    return;
  }
  let members;
  try {
    members = await api.demoMembers();
  } catch {
    return;
  }
  byId("demo-members").replaceChildren(...members.map((member) =>
    el("li", {},
      el("a", { class: "demo-member", href: `demo/login?user=${encodeURIComponent(member.username)}` },
        avatar(member), el("span", { text: member.username })))));
  byId("demo-picker").hidden = false;
}

/** A 401's own words, if the server gave any ("sign-in isn't finished"). */
function reasonOf(error) {
  return error instanceof ApiError ? error.serverMessage : null;
}

function showFatal() {
  const box = byId("loading");
  box.replaceChildren(
    el("p", { text: "Messages can't be reached right now." }),
    el("button", { type: "button", class: "button", id: "reload", text: "Try again" }),
  );
  byId("reload").addEventListener("click", () => location.reload());
  show("loading");
}

// ---- connection indicator ---------------------------------------------------------------

// Said as it is: "Live" only while a stream is open, "Reconnecting…" the moment it isn't.
function onStatus(state) {
  const box = byId("connection");
  const [label, title] = STATUS_TEXT[state] || STATUS_TEXT.idle;
  box.dataset.state = state;
  box.title = title;
  byId("connection-label").textContent = label;
  // The connection is back: whatever waits in the outbox goes now, in order.
  if (state === "live" || state === "polling") thread?.outbox.flush();
}

// ---- routing -----------------------------------------------------------------------------

function isVisible() {
  return document.visibilityState === "visible" && thread?.id !== null;
}

async function route() {
  const match = /^#\/c\/(\d+)$/.exec(location.hash);
  if (!match) {
    thread.close();
    inbox.setActive(null);
    document.body.classList.remove("thread-open");
    return;
  }
  const id = Number(match[1]);
  let conversation = inbox.get(id);
  if (!conversation) {
    try {
      conversation = inbox.upsert((await api.conversation(id)).conversation);
    } catch (error) {
      toast(error instanceof ApiError && error.status === 404
        ? "That conversation doesn't exist." : "Couldn't open that conversation.");
      history.replaceState(null, "", pageUrl("#/"));
      return route();
    }
  }
  inbox.setActive(id);
  document.body.classList.add("thread-open");
  if (thread.id !== id) await thread.open(conversation);
}

function goTo(conversationId) {
  const hash = `#/c/${conversationId}`;
  if (location.hash === hash) route();
  else location.hash = hash;
}

function parseOrigin(raw) {
  const [type, ...rest] = String(raw || "").split(":");
  if (!ORIGIN_TYPES.has(type)) return { type: "inbox", ref: null };
  const ref = rest.join(":");
  return { type, ref: ref ? ref.slice(0, 200) : null };
}

/**
 * Why `username` can't be messaged, in the server's words when it may say: a member the
 * signed-in member can see but who can't see them back (their own profile is private) gets
 * the lookup's message; anyone else (404) the same plain sentence, revealing nothing.
 */
async function cannotMessage(username) {
  try {
    const found = await api.lookup(username);
    if (found && !found.can_message && found.message) return found.message;
  } catch {
    // Fall through to the plain sentence.
  }
  return `You can't message ${username}.`;
}

/** ./?with=USERNAME&origin=request:123 opens (or starts) that conversation. */
async function deepLink() {
  const params = new URLSearchParams(location.search);
  const username = params.get("with");
  if (!username) return false;
  const origin = parseOrigin(params.get("origin"));
  history.replaceState(null, "", pageUrl(location.hash)); // a reload must not redo it
  if (username.toLowerCase() === me.username.toLowerCase()) {
    toast("That's you — pick someone else to message.");
    return false;
  }
  try {
    const { members } = await api.members(username);
    const peer = members.find((m) => m.username.toLowerCase() === username.toLowerCase());
    if (!peer) {
      toast(await cannotMessage(username));
      return false;
    }
    if (origin.type !== "inbox") {
      // Counted for the introductions metric before anything else happens; never in the way.
      try {
        await api.recordIntent(peer.user_id, origin);
      } catch {
        // A lost intent only makes the metric a little low.
      }
    }
    // An existing conversation opens as it is (even a blocked one, to read its history).
    const conversation = inbox.findByPeer(peer.user_id)
      || inbox.upsert(await api.startConversation(peer.user_id, origin));
    history.replaceState(null, "", pageUrl(`#/c/${conversation.id}`));
    await route();
    return true;
  } catch (error) {
    toast(error instanceof ApiError && error.message ? error.message : `Couldn't message ${username}.`);
    return false;
  }
}

async function startWith(member) {
  const existing = inbox.findByPeer(member.user_id);
  if (existing) return goTo(existing.id);
  try {
    goTo(inbox.upsert(await api.startConversation(member.user_id, { type: "inbox", ref: null })).id);
  } catch (error) {
    toast(error instanceof ApiError && error.message ? error.message : "Couldn't start that conversation.");
  }
}

// ---- live events -------------------------------------------------------------------------

async function onMessage(message) {
  // Our own message, stored (perhaps from a send whose answer was lost): not unsent any more.
  if (message.sender_id === me.user_id && message.client_id) thread.outbox.remove(message.client_id);
  const viewing = thread.id === message.conversation_id && isVisible();
  if (!inbox.applyMessage(message, viewing)) {
    try {
      inbox.upsert((await api.conversation(message.conversation_id)).conversation);
    } catch {
      return;
    }
  }
  thread.receive(message);
  if (message.sender_id !== me.user_id) {
    const from = inbox.get(message.conversation_id)?.peer.username || "someone";
    if (thread.id !== message.conversation_id) announce(`New message from ${from}`);
    notifier.message(message, from, thread.id);
  }
}

function onEvent(type, data) {
  if (type === "message") onMessage(data);
  else if (type === "conversation") inbox.upsert(data);
  else if (type === "read") inbox.applyRead(data);
}

async function refetchAll() {
  try {
    inbox.setAll((await api.conversations()).conversations);
    await thread.reload();
  } catch {
    toast("Couldn't refresh your conversations.");
  }
}

// ---- start -------------------------------------------------------------------------------

async function main() {
  onUnauthenticated((error) => {
    if (me) showSignedOut(reasonOf(error));
  });
  const instance = api.instance(); // asked at once, beside api/me; never fails
  try {
    me = await api.me();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return showSignedOut(reasonOf(error));
    return showFatal();
  }
  document.body.dataset.userId = String(me.user_id);
  byId("me-name").textContent = me.username;

  const safety = new Safety({
    onChange: () => {
      inbox.render();
      thread.refreshFailed();
    },
  });
  inbox = new Inbox(me.user_id, { isBlocked: (userId) => safety.isBlocked(userId) });
  thread = new Thread(me, { inbox, safety, isVisible, onSent: (message) => inbox.applyMessage(message, true) });
  notifier = new Notifier(me.user_id, { onOpen: goTo });
  const picker = new Picker(startWith);
  byId("new-conversation").addEventListener("click", (event) => picker.open(event.currentTarget));
  byId("thread-back").addEventListener("click", () => {
    location.hash = "#/";
    byId("new-conversation").focus();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") thread.markRead();
  });
  window.addEventListener("hashchange", route);

  let cursor;
  let conversations;
  let demoMode;
  let blocks;
  try {
    // The cursor first: whatever happens after it is replayed by the feed and deduplicated.
    cursor = (await api.events()).cursor;
    [{ conversations }, { demo_mode: demoMode }, blocks] = await Promise.all([
      api.conversations(),
      instance,
      // Without the list a blocked conversation still refuses sends, and says so then.
      api.blocks().catch((error) => {
        if (error instanceof ApiError && error.status === 401) throw error;
        return [];
      }),
    ]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return showSignedOut(reasonOf(error));
    return showFatal();
  }
  byId("sign-out").hidden = !demoMode;
  byId("sign-out").addEventListener("click", () => clearStoredOutboxes());
  window.addEventListener("online", () => thread.outbox.flush());
  safety.setBlocks(blocks);
  inbox.setAll(conversations);
  show("app");

  live = new LiveFeed(
    {
      onEvent,
      onReset: refetchAll,
      onStatus,
      onUnauthenticated: (error) => showSignedOut(reasonOf(error)),
      onSignedOut: () => showSignedOut(SIGNED_OUT_BY_STREAM),
    },
    window.WB_LIVE_OPTIONS || {},
  );
  live.start(cursor);
  window.wbLive = live; // for debugging from the console (and the browser tests)

  if (!(await deepLink())) await route();
}

main();
