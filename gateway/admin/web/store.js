// The page's state, in one place: what the admin API last answered and the two lines above the
// keys. Components read it with get() and redraw from watch(); only set() changes it, in one
// step, so a redraw never sees half an answer. Pure: no DOM (tests/admin/web/store.test.mjs).
//
//   keys        the key list (GET .../api-keys), null while signed out
//   legacy      the legacy answer {enabled, configured}, null while signed out
//   legacyUses  [{name, last_used_at}] of the configured legacy keys while they are disabled
//   status      the polite line ("Updated 10:04:31.", "Created ci_worker.")
//   problem     the last error not shown next to a field ("" when none)
//   network     the allow list (GET .../network-restrictions), null while signed out
//   bans        the running blocks (POST .../network-bans/retrieve), null while signed out

export const INITIAL = Object.freeze({ keys: null, legacy: null, legacyUses: [], status: "", problem: "", network: null,
                                       bans: null });

export function createStore(initial = INITIAL) {
  let state = Object.freeze({ ...initial });
  const watchers = new Set();
  return {
    get: () => state,
    // Merges `patch`; then every watcher one of whose names changed (by identity) is called once.
    set(patch) {
      const before = state;
      state = Object.freeze({ ...state, ...patch });
      for (const watcher of [...watchers]) watcher(before);
    },
    // fn(state) now and whenever one of `names` changes; returns a function that stops it.
    watch(names, fn) {
      const watcher = (before) => {
        if (names.some((name) => state[name] !== before[name])) fn(state);
      };
      watchers.add(watcher);
      fn(state);
      return () => watchers.delete(watcher);
    },
  };
}
