// Signing in and out. The admin token lives in this tab's sessionStorage only (never a URL, a
// cookie or localStorage): checked against the admin API before it is kept, forgotten on Sign out,
// when the tab closes, or when the API stops taking it.

import { parts } from "./dom.js";

const TOKEN = "gateway.admin_token";

export const storedToken = () => sessionStorage.getItem(TOKEN);

// `root`: the document; `actions`: {api, load(message), signedOut() (forget what the page holds)}.
// Returns {start(), signOut(message)}.
export function session(root, actions) {
  const p = parts(root, {
    signIn: "#sign-in", form: "#sign-in-form", token: "#token", error: "#sign-in-error", keys: "#keys",
    refresh: "#refresh", signOut: "#sign-out", main: "#main",
  });

  function say(message) {
    p.error.textContent = message;
    p.error.hidden = !message;
  }

  function showSignIn(message = "") {
    p.keys.hidden = p.refresh.hidden = p.signOut.hidden = true;
    p.signIn.hidden = false;
    say(message);
    p.token.value = "";
    p.token.focus();
  }

  async function showKeys() {
    p.signIn.hidden = true;
    p.keys.hidden = p.refresh.hidden = p.signOut.hidden = false;
    await actions.load();
  }

  function signOut(message = "") {
    sessionStorage.removeItem(TOKEN);
    for (const dialog of root.querySelectorAll("dialog[open]")) dialog.close();
    actions.signedOut();
    showSignIn(message);
  }

  p.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = p.token.value.trim();
    if (!token) {
      say("Enter the admin token.");
      return;
    }
    try {
      await actions.api.request("GET", "/legacy", { token });
    } catch (e) {
      say(e.status === 401 ? "Wrong admin token: the admin API refused it." : e.message);
      p.token.select();
      return;
    }
    sessionStorage.setItem(TOKEN, token);
    p.token.value = "";
    await showKeys();
    p.main.focus();
  });
  p.signOut.addEventListener("click", () => signOut("Signed out."));
  p.refresh.addEventListener("click", () => actions.load());

  return {
    start: () => (storedToken() ? showKeys() : showSignIn()),
    signOut,
  };
}
