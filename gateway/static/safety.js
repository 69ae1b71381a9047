// safety.js — owns the member's safety tools: whom they blocked (loaded at start from
// /api/blocks), the thread header's Block/Unblock action and its confirmation, the notice that
// takes the composer's place in a blocked conversation or after a send was refused as blocked,
// and the dialog that reports a peer's message to the moderators.

import { api, ApiError } from "./api.js";
import { byId, charLength, clockTime, toast } from "./dom.js";

export const MAX_NOTE_CHARS = 1000;

export class Safety {
  /** onChange() is called whenever who can message whom may have changed. */
  constructor({ onChange }) {
    this.onChange = onChange;
    this.blocked = new Map(); // user_id -> member, whom I blocked
    this.refused = new Set(); // conversation ids where a send was refused as blocked
    this.conversation = null; // the one the thread shows
    this.busy = false;

    this.headButton = byId("thread-block");
    this.composer = byId("composer");
    this.notice = byId("safety-notice");
    this.noticeTitle = byId("safety-notice-title");
    this.noticeText = byId("safety-notice-text");
    this.noticeButton = byId("safety-notice-action");
    this.headButton.addEventListener("click", () => this.toggleBlock());
    this.noticeButton.addEventListener("click", () => {
      if (this.isBlocked(this.conversation?.peer.user_id)) this.unblock();
      else this.checkAgain();
    });
    this.setUpBlockDialog();
    this.setUpReportDialog();
  }

  setBlocks(blocks) {
    this.blocked = new Map(blocks.map((b) => [b.member.user_id, b.member]));
    this.render();
  }

  isBlocked(userId) {
    return this.blocked.has(userId);
  }

  canSend(conversationId) {
    const c = this.conversation?.id === conversationId ? this.conversation : null;
    return !this.refused.has(conversationId) && !(c && this.isBlocked(c.peer.user_id));
  }

  /** The thread opened (or re-rendered) this conversation. */
  show(conversation) {
    this.conversation = conversation;
    this.render();
  }

  /** A send into this conversation was answered 403 blocked. */
  async refusedSend(conversationId) {
    this.refused.add(conversationId);
    this.changed();
    try {
      // Perhaps this member blocked the peer in another tab: then say so instead.
      this.setBlocks(await api.blocks());
      this.onChange();
    } catch {
      // The neutral notice is right either way.
    }
  }

  /** A new message from the peer: nobody blocks anybody in this pair any more. */
  peerSpoke(conversationId) {
    if (this.refused.delete(conversationId)) this.changed();
  }

  changed() {
    this.render();
    this.onChange();
  }

  render() {
    const c = this.conversation;
    if (!c) return;
    const name = c.peer.username;
    const blocked = this.isBlocked(c.peer.user_id);
    this.headButton.textContent = blocked ? "Unblock" : "Block";
    this.headButton.setAttribute("aria-label", `${blocked ? "Unblock" : "Block"} ${name}`);
    this.headButton.disabled = this.busy;
    const refused = !blocked && this.refused.has(c.id);
    this.composer.hidden = blocked || refused;
    this.notice.hidden = !this.composer.hidden;
    this.notice.dataset.kind = blocked ? "blocked" : refused ? "refused" : "";
    if (blocked) {
      this.noticeTitle.textContent = `You blocked ${name}.`;
      this.noticeText.textContent = "Neither of you can send messages while they're blocked. "
        + "Your conversation history stays here.";
      this.noticeButton.textContent = "Unblock";
    } else if (refused) {
      this.noticeTitle.textContent = `You can't send messages to ${name} right now.`;
      this.noticeText.textContent = "Your conversation history stays here.";
      this.noticeButton.textContent = "Check again";
    }
    this.noticeButton.disabled = this.busy;
  }

  // ---- block / unblock ----------------------------------------------------------------

  setUpBlockDialog() {
    this.blockDialog = byId("block-dialog");
    this.blockError = byId("block-error");
    byId("block-cancel").addEventListener("click", () => this.blockDialog.close());
    byId("block-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.block();
    });
    this.blockDialog.addEventListener("close", () => this.headButton.focus());
    closeOnBackdrop(this.blockDialog);
  }

  toggleBlock() {
    const c = this.conversation;
    if (!c || this.busy) return;
    if (this.isBlocked(c.peer.user_id)) {
      this.unblock();
      return;
    }
    const name = c.peer.username;
    byId("block-title").textContent = `Block ${name}?`;
    byId("block-text").textContent = `You won't be able to message each other while ${name} is `
      + `blocked. ${name} isn't told, and your conversation history stays. You can unblock `
      + "them at any time.";
    byId("block-confirm").textContent = `Block ${name}`;
    this.blockError.hidden = true;
    this.blockDialog.showModal();
    byId("block-cancel").focus();
  }

  async block() {
    const c = this.conversation;
    if (!c || this.busy) return;
    const peer = c.peer;
    this.setBusy(true);
    byId("block-confirm").disabled = true;
    try {
      await api.block(peer.user_id);
      this.blocked.set(peer.user_id, peer);
      this.blockDialog.close(); // the notice in the composer's place says what happened
    } catch (error) {
      this.blockError.textContent = errorText(error, `Couldn't block ${peer.username}.`);
      this.blockError.hidden = false;
    } finally {
      byId("block-confirm").disabled = false;
      this.setBusy(false);
    }
    this.changed();
    // The dialog could not give the focus back to a button that was disabled while busy.
    if (!this.blockDialog.open) this.headButton.focus({ preventScroll: true });
  }

  async unblock() {
    const c = this.conversation;
    if (!c || this.busy) return;
    const peer = c.peer;
    // Asked before the buttons are disabled, which takes the focus away from them.
    const fromNotice = this.notice.contains(document.activeElement);
    this.setBusy(true);
    try {
      await api.unblock(peer.user_id);
      this.blocked.delete(peer.user_id);
      this.refused.delete(c.id); // let the next send find out whether they blocked us
      toast(`${peer.username} is unblocked.`);
    } catch (error) {
      toast(errorText(error, `Couldn't unblock ${peer.username}.`));
    } finally {
      this.setBusy(false);
    }
    this.changed();
    if (!this.composer.hidden) {
      (fromNotice ? byId("composer-input") : this.headButton).focus({ preventScroll: true });
    }
  }

  /** After a refused send: ask again (opening the pair's conversation is refused while blocked). */
  async checkAgain() {
    const c = this.conversation;
    if (!c || this.busy) return;
    this.setBusy(true);
    try {
      await api.startConversation(c.peer.user_id, { type: "inbox", ref: null });
      this.refused.delete(c.id);
    } catch (error) {
      toast(error instanceof ApiError && error.code === "blocked"
        ? `You still can't send messages to ${c.peer.username}.`
        : "Couldn't check right now. Try again in a moment.");
    } finally {
      this.setBusy(false);
    }
    this.changed();
    (this.composer.hidden ? this.noticeButton : byId("composer-input")).focus({ preventScroll: true });
  }

  setBusy(busy) {
    this.busy = busy;
    this.render();
  }

  // ---- reports ------------------------------------------------------------------------

  setUpReportDialog() {
    this.reportDialog = byId("report-dialog");
    this.category = byId("report-category");
    this.note = byId("report-note");
    this.noteCount = byId("report-note-count");
    this.reportError = byId("report-error");
    this.reportSubmit = byId("report-submit");
    this.reporting = null; // {conversation, message, opener}
    this.note.maxLength = MAX_NOTE_CHARS;
    this.note.addEventListener("input", () => this.updateNoteCount());
    this.category.addEventListener("change", () => {
      byId("report-danger").hidden = this.category.value !== "safety";
      this.reportError.hidden = true;
    });
    for (const id of ["report-cancel", "report-close"]) {
      byId(id).addEventListener("click", () => this.reportDialog.close());
    }
    byId("report-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.sendReport();
    });
    this.reportDialog.addEventListener("close", () => {
      this.reporting?.opener?.focus();
      this.reporting = null;
    });
    closeOnBackdrop(this.reportDialog);
  }

  openReport(conversation, message, opener) {
    const name = conversation.peer.username;
    this.reporting = { conversation, message, opener };
    byId("report-from").textContent = `${name} · ${clockTime(message.created_at)}`;
    byId("report-quote-text").textContent = message.body;
    byId("report-privacy").textContent = "Moderators will see this message and the messages "
      + `around it. ${name} won't be told who reported it.`;
    this.category.value = "";
    this.note.value = "";
    this.updateNoteCount();
    byId("report-danger").hidden = true;
    this.reportError.hidden = true;
    this.reportSubmit.disabled = false;
    this.reportSubmit.textContent = "Send report";
    this.reportDialog.showModal();
    this.category.focus();
  }

  updateNoteCount() {
    const length = charLength(this.note.value.trim());
    this.noteCount.textContent = `${length.toLocaleString()} / ${MAX_NOTE_CHARS.toLocaleString()}`;
    this.noteCount.classList.toggle("near", length > MAX_NOTE_CHARS - 100);
  }

  showReportError(text) {
    this.reportError.textContent = text;
    this.reportError.hidden = false;
  }

  async sendReport() {
    const reporting = this.reporting;
    if (!reporting || this.reportSubmit.disabled) return;
    const category = this.category.value;
    if (!category) {
      this.showReportError("Choose what's wrong with this message.");
      this.category.focus();
      return;
    }
    const note = this.note.value.trim();
    if (charLength(note) > MAX_NOTE_CHARS) {
      this.showReportError(`The note can be at most ${MAX_NOTE_CHARS.toLocaleString()} characters.`);
      return;
    }
    this.reportError.hidden = true;
    this.reportSubmit.disabled = true;
    this.reportSubmit.textContent = "Sending…";
    try {
      const { created } = await api.report(reporting.conversation.id, reporting.message.id, category, note);
      if (this.reporting !== reporting) return;
      this.reportDialog.close();
      toast(created
        ? "Thanks. Your report was sent to the moderators."
        : "You've already reported this message. The moderators have it.");
    } catch (error) {
      if (this.reporting !== reporting) return;
      this.showReportError(errorText(error, "Couldn't send your report."));
    } finally {
      this.reportSubmit.disabled = false;
      this.reportSubmit.textContent = "Send report";
    }
  }
}

function errorText(error, fallback) {
  if (error instanceof ApiError && error.status === 0) return `${fallback} Check your connection and try again.`;
  if (error instanceof ApiError && error.status === 429) {
    // Rate limited: the server says when this member can report or block again (perhaps in
    // hours); "in a moment" would send them back to be refused again.
    if (error.serverMessage) return `${fallback} ${error.serverMessage}`;
    if (error.retryAfterSeconds !== null) {
      return `${fallback} Try again in ${Math.max(1, Math.ceil(error.retryAfterSeconds))} s.`;
    }
  }
  if (error instanceof ApiError && !error.retriable && error.message) return error.message;
  return `${fallback} Try again in a moment.`;
}

function closeOnBackdrop(dialog) {
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
}
