// picker.js — owns the "New message" dialog: searching the members the signed-in member may
// message (api/members?q=) and handing the chosen one back. Keyboard: type to search,
// ArrowDown/ArrowUp move through results, Enter picks, Escape closes (native <dialog>).

import { api } from "./api.js";
import { avatar, byId, el } from "./dom.js";

export class Picker {
  /** onPick(member) is called with {user_id, username}. */
  constructor(onPick) {
    this.onPick = onPick;
    this.dialog = byId("picker");
    this.search = byId("picker-search");
    this.results = byId("picker-results");
    this.empty = byId("picker-empty");
    this.opener = null;
    this.timer = 0;
    this.abort = null;

    this.search.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.load(), 150);
    });
    this.search.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown") {
        event.preventDefault();
        this.results.querySelector("button")?.focus();
      } else if (event.key === "Enter") {
        event.preventDefault();
        this.pickFirst();
      }
    });
    this.results.addEventListener("keydown", (event) => {
      const buttons = [...this.results.querySelectorAll("button")];
      const index = buttons.indexOf(document.activeElement);
      if (event.key === "ArrowDown" && index < buttons.length - 1) {
        event.preventDefault();
        buttons[index + 1].focus();
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        (index > 0 ? buttons[index - 1] : this.search).focus();
      }
    });
    this.dialog.addEventListener("close", () => {
      this.abort?.abort();
      this.opener?.focus();
    });
    // A click on the backdrop (outside the form) closes the dialog.
    this.dialog.addEventListener("click", (event) => {
      if (event.target === this.dialog) this.dialog.close();
    });
  }

  open(opener) {
    this.opener = opener || document.activeElement;
    this.search.value = "";
    this.loadedQuery = null;
    this.results.replaceChildren();
    this.empty.hidden = true;
    this.dialog.showModal();
    this.search.focus();
    this.load();
  }

  /** Enter in the search box: the first result for what is typed now, not a stale list. */
  async pickFirst() {
    const query = this.search.value.trim();
    if (query !== this.loadedQuery) {
      clearTimeout(this.timer);
      await this.load();
      if (query !== this.loadedQuery) return;
    }
    this.results.querySelector("button")?.click();
  }

  async load() {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    let members;
    const query = this.search.value.trim();
    try {
      members = (await api.members(query, { signal: abort.signal })).members;
    } catch {
      if (!abort.signal.aborted) this.empty.hidden = false;
      return;
    }
    if (abort.signal.aborted) return;
    this.results.replaceChildren(...members.map((member) =>
      el("li", {},
        el("button", { type: "button", class: "member", "data-user-id": member.user_id },
          avatar(member), el("span", { class: "member-name", text: member.username })))));
    this.results.querySelectorAll("button").forEach((button, i) =>
      button.addEventListener("click", () => {
        this.opener = null; // focus goes to the conversation instead
        this.dialog.close();
        this.onPick(members[i]);
      }));
    this.empty.hidden = members.length > 0;
    this.loadedQuery = query;
  }
}
