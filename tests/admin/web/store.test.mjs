// The page's one state (gateway/admin/web/store.js): set() changes it in one step, watch() redraws
// only what changed.

import assert from "node:assert/strict";
import { test } from "node:test";

import { INITIAL, createStore } from "../../../gateway/admin/web/store.js";

test("starts signed out, with nothing loaded", () => {
  assert.deepEqual(createStore().get(), { keys: null, legacy: null, legacyUses: [], status: "", problem: "",
                                          network: null, bans: null });
  assert.ok(Object.isFrozen(INITIAL));
});

test("set merges, and the state it gives is never changed in place", () => {
  const store = createStore();
  const before = store.get();
  store.set({ status: "Updated." });
  assert.equal(store.get().status, "Updated.");
  assert.equal(before.status, "");
  assert.ok(Object.isFrozen(store.get()));
  assert.throws(() => { store.get().status = "x"; }, TypeError);
});

test("a watcher runs at once, then only when one of its names changes", () => {
  const store = createStore();
  const seen = [];
  store.watch(["keys", "legacy"], (state) => seen.push(state.keys));
  assert.deepEqual(seen, [null]);
  store.set({ problem: "Cannot reach the admin API." });
  assert.equal(seen.length, 1); // a problem line does not redraw the cards (nor close an open chart)
  const keys = [{ id: "a" }];
  store.set({ keys, legacy: { enabled: true, configured: [] } });
  assert.deepEqual(seen, [null, keys]); // once for both names
  store.set({ keys });
  assert.equal(seen.length, 2); // the same list: nothing to redraw
});

test("a watcher sees the whole new state; stopping it stops it", () => {
  const store = createStore();
  const seen = [];
  const stop = store.watch(["status"], (state) => seen.push([state.status, state.problem]));
  store.set({ status: "Saved ci_worker.", problem: "" });
  stop();
  store.set({ status: "Deleted ci_worker." });
  assert.deepEqual(seen, [["", ""], ["Saved ci_worker.", ""]]);
});
