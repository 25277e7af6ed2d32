// The Network section: who the public listener answers. The allow list of client networks (set,
// cleared back to everyone, an API error beside its input) and the clients blocked after too many
// refused requests (address, when and why the block started, when it ends, Lift). networkview.js
// decides what it says and sends; the store holds `network` and `bans`.

import { el, parts, timeEl } from "./dom.js";
import { fact } from "./cards.js";
import { EVERYONE, allowBody, allowSummary, allowedCidrs, blockRows, blocksSummary } from "./networkview.js";
import { clearErrors, showError } from "./modal.js";

// `section`: the #network <section>; `actions`: {api (the project's: paths below v1/projects/{ref}),
// problem(message), status(message)}. Returns {load()}: reads both answers into the store.
export function networkSection(section, store, actions) {
  const p = parts(section, { allowState: "#network-allow-state", form: "#network-form", cidrs: "#network-cidrs",
                             everyone: "#network-everyone", blocksState: "#blocks-state", list: "#blocks-list" });

  async function load() {
    try {
      const [network, bans] = await Promise.all([actions.api.call("GET", "/network-restrictions"),
                                                 actions.api.call("POST", "/network-bans/retrieve")]);
      store.set({ network, bans });
    } catch (e) {
      if (e.status !== 401) actions.problem(e.message);
    }
  }

  store.watch(["network"], ({ network }) => {
    p.allowState.textContent = allowSummary(network);
    if (document.activeElement !== p.cidrs) p.cidrs.value = allowedCidrs(network).join("\n");
  });

  store.watch(["bans"], ({ bans }) => {
    p.blocksState.textContent = blocksSummary(bans);
    p.list.replaceChildren(...blockRows(bans).map((row) => blockItem(row)));
  });

  function blockItem(row) {
    const lift = el("button", { type: "button", class: "small", text: "Lift block",
                                onclick: () => liftBlock(row.address, lift) });
    return el("li", { class: "key block", dataset: { address: row.address } },
      el("div", { class: "key-head" }, el("h3", { class: "key-name" }, el("code", { text: row.address })),
        el("span", { class: "badge danger", text: "Blocked" }), el("span", { class: "muted", text: row.family })),
      el("p", { class: "description", text: row.reason }),
      el("dl", { class: "facts" }, fact("Started", timeEl(row.startedAt)), fact("Ends", timeEl(row.endsAt))),
      el("div", { class: "actions" }, lift));
  }

  async function liftBlock(address, button) {
    button.disabled = true;
    try {
      await actions.api.call("DELETE", "/network-bans", { body: { ipv4_addresses: [address] } });
    } catch (e) {
      button.disabled = false;
      if (e.status !== 401) actions.problem(e.message);
      return;
    }
    await load();
    actions.status(`Lifted the block on ${address}.`);
    p.blocksState.focus();
  }

  async function apply(body) {
    clearErrors(p.form);
    try {
      await actions.api.call("POST", "/network-restrictions/apply", { body });
    } catch (e) {
      if (e.status !== 401) showError(p.form, e);
      return;
    }
    p.cidrs.blur();
    await load();
    actions.status("Allow list saved: every instance applies it within a second.");
  }

  p.form.addEventListener("submit", (event) => {
    event.preventDefault();
    let body;
    try {
      body = allowBody(p.cidrs.value);
    } catch (e) {
      clearErrors(p.form);
      showError(p.form, e);
      return;
    }
    apply(body);
  });
  p.everyone.addEventListener("click", () => apply({ dbAllowedCidrs: [EVERYONE[0]], dbAllowedCidrsV6: [EVERYONE[1]] }));

  return { load };
}
