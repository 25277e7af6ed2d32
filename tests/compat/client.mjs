// supabase-js (and the realtime-js inside it) against the gateway, one scenario per run.
//
//   node --experimental-websocket client.mjs '{"scenario": "...", "url": "...", "key": "...", ...}'
//
// Prints one JSON object on stdout: what the library returned (data and error objects as the
// application sees them), for the pytest side to assert on. The library is used exactly as an
// application would use it: createClient(url, key) and its public API, nothing else.

import { createClient } from "@supabase/supabase-js";

const args = JSON.parse(process.argv[2]);

// Heartbeats every 300 ms (25 s by default) so that a scenario sees them answered.
const client = (key = args.key) =>
  createClient(args.url, key, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { heartbeatIntervalMs: 300 },
  });

// A PostgrestError / FunctionsError / AuthError as plain JSON.
function err(e) {
  if (!e) return null;
  const out = { name: e.name, message: e.message };
  for (const k of ["code", "details", "hint", "status"]) if (e[k] !== undefined) out[k] = e[k];
  return out;
}

async function rows(sb) {
  const { data, error, status } = await sb.from("todos").select("id,title,owner,is_public").order("id");
  return { ids: data ? data.map((r) => r.id) : null, rows: data, status, error: err(error) };
}

async function rpc(sb, tag) {
  const { data, error, status } = await sb.rpc("whoami", { tag });
  return { data, status, error: err(error) };
}

async function invoke(sb) {
  const { data, error } = await sb.functions.invoke("whoami", { body: { hello: "deno" } });
  let status = null;
  let message = null;
  if (error?.context instanceof Response) {
    status = error.context.status;
    message = (await error.context.json().catch(() => ({}))).message ?? null;
  }
  return { data, error: err(error), status, message };
}

async function insert(sb, row) {
  const { data, error, status } = await sb.from("todos").insert(row).select();
  return { data, status, error: err(error) };
}

async function signIn(sb, email, password) {
  const { data, error } = await sb.auth.signInWithPassword({ email, password });
  return {
    user_id: data?.user?.id ?? null,
    email: data?.user?.email ?? null,
    token_type: data?.session?.token_type ?? null,
    has_access_token: typeof data?.session?.access_token === "string",
    error: err(error),
  };
}

function subscribed(channel, timeoutMs = 5000) {
  return new Promise((resolve) => {
    channel.subscribe((status, e) => {
      if (status !== "CLOSED") resolve({ status, error: e ? String(e.message ?? e) : null });
    }, timeoutMs);
  });
}

function within(promise, ms, fallback) {
  return Promise.race([promise, new Promise((r) => setTimeout(() => r(fallback), ms))]);
}

// Two clients on one topic: `receiver` listens, `sender` broadcasts; did the message arrive?
// The receiver joins a first channel before: realtime-js has resolved its access token by then,
// so the second join carries it as `access_token` (the very first join may race ahead of it).
async function broadcast(receiverClient, senderClient, topic) {
  const lobby = await subscribed(receiverClient.channel(`${topic}-lobby`));
  const receiver = receiverClient.channel(topic);
  const got = new Promise((r) => receiver.on("broadcast", { event: "ping" }, (m) => r(m)));
  const rs = await subscribed(receiver);
  const sender = senderClient.channel(topic);
  const ss = await subscribed(sender);
  let sent = null;
  let message = null;
  if (rs.status === "SUBSCRIBED" && ss.status === "SUBSCRIBED") {
    sent = await sender.send({ type: "broadcast", event: "ping", payload: { n: 1, from: "supabase-js" } });
    message = await within(got, 5000, null);
  }
  return { lobby, receiver: rs, sender: ss, sent, message };
}

const scenarios = {
  // A key and no session: rows, rpc, insert, the Edge Function.
  async key() {
    const sb = client();
    return {
      select: await rows(sb),
      rpc: await rpc(sb, "js"),
      insert: await insert(sb, { title: "from a key", is_public: true }),
      invoke: await invoke(sb),
    };
  },

  // Sign in through the gateway, then act as that user.
  async user() {
    const sb = client();
    const signin = await signIn(sb, args.email, args.password);
    const user = await sb.auth.getUser();
    return {
      signin,
      get_user: { id: user.data?.user?.id ?? null, error: err(user.error) },
      before: await rows(sb),
      insert_own: await insert(sb, { title: "written by the user" }),
      insert_other: await insert(sb, { title: "forged", owner: args.other_owner }),
      after: await rows(sb),
      rpc: await rpc(sb, "user"),
      invoke: await invoke(sb),
      wrong_password: (await signIn(client(), args.email, "not-the-password")).error,
    };
  },

  // Realtime: a broadcast between two clients of this key; optionally the receiver signs in
  // first (join with the user's JWT) or after joining (access_token update), then signs out.
  async realtime() {
    const a = client();
    const b = client();
    const heartbeats = [];
    a.realtime.onHeartbeat((status) => heartbeats.push(status));
    if (args.email && !args.sign_in_after_join) await signIn(a, args.email, args.password);
    const result = await broadcast(a, b, args.topic);
    for (let i = 0; i < 20 && !heartbeats.includes("ok"); i++) await new Promise((r) => setTimeout(r, 100));
    result.heartbeats = [...new Set(heartbeats)].sort();
    if (args.sign_in_after_join) {
      result.signin = await signIn(a, args.email, args.password);
      await new Promise((r) => setTimeout(r, 300));
      await a.auth.signOut({ scope: "local" });
      await new Promise((r) => setTimeout(r, 300));
    }
    await a.removeAllChannels();
    await b.removeAllChannels();
    return result;
  },

  // The same as an application that sets Origin through global.headers (a server rendering for
  // a web app): rows, and the error the library surfaces when the key may not be used from there.
  async origin() {
    const sb = createClient(args.url, args.key, {
      auth: { persistSession: false, autoRefreshToken: false },
      global: { headers: { Origin: args.origin } },
    });
    return { select: await rows(sb) };
  },

  // A channel joined and held for wait_ms: how the socket ended (when, in epoch ms), as
  // realtime-js's logger saw it.
  async held() {
    const closes = [];
    const sb = createClient(args.url, args.key, {
      auth: { persistSession: false, autoRefreshToken: false },
      realtime: {
        heartbeatIntervalMs: 300,
        logger: (kind, msg, data) => {
          if (kind === "transport" && msg === "close")
            closes.push({ code: data?.code ?? null, reason: data?.reason ?? null, at: Date.now() });
        },
      },
    });
    if (args.email) await signIn(sb, args.email, args.password);
    const joined = await subscribed(sb.channel(args.topic));
    await new Promise((r) => setTimeout(r, args.wait_ms));
    const result = { joined, closes: [...closes], connected_at_end: sb.realtime.isConnected() };
    await sb.removeAllChannels(); // closes the socket too: not part of what was seen
    return result;
  },

  // A read-only key (args.key) and a full one (args.other_key) on one topic: reads, a refused
  // write, each listening, and a broadcast with ack from each (the read-only key's refused).
  async readonly() {
    const reader = client();
    const writer = client(args.other_key);
    const select = await rows(reader);
    const write = await insert(reader, { title: "from a read-only key", is_public: true });
    const heard = { reader: [], writer: [] };
    const channels = {};
    for (const [name, sb] of [["reader", reader], ["writer", writer]]) {
      channels[name] = sb.channel(args.topic, { config: { broadcast: { ack: true } } });
      channels[name].on("broadcast", { event: "ping" }, (m) => heard[name].push(m.payload));
    }
    const joined = { reader: await subscribed(channels.reader), writer: await subscribed(channels.writer) };
    const refused = await channels.reader.send({ type: "broadcast", event: "ping", payload: { from: "reader" } });
    const sent = await channels.writer.send({ type: "broadcast", event: "ping", payload: { from: "writer" } });
    await new Promise((r) => setTimeout(r, 1000));
    await reader.removeAllChannels();
    await writer.removeAllChannels();
    return { select, write, joined, refused, sent, heard };
  },

  // Can this key still do anything? (refused keys: the error each library surfaces)
  async refused() {
    const sb = client();
    const channel = sb.channel(args.topic);
    const rt = await subscribed(channel, 3000);
    await sb.removeAllChannels();
    return { select: await rows(sb), rpc: await rpc(sb, "refused"), invoke: await invoke(sb), realtime: rt };
  },
};

const fn = scenarios[args.scenario];
if (!fn) {
  console.error(`unknown scenario ${args.scenario}`);
  process.exit(2);
}
const out = await fn();
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
