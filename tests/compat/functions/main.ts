// An Edge Function, served by the real Deno runtime, that does what `verify_jwt` does in
// Supabase's edge runtime: it refuses a request whose `Authorization: Bearer <JWT>` does not
// verify, with WebCrypto only — HS256 with the project's JWT secret, or ES256 with the key the
// auth service publishes in its JWKS — and returns the verified claims. It also reports the
// claims of the `sb-api-key` header the gateway adds (the minted JWT of the request's key).
//
// Env: PORT, JWT_SECRET, JWKS_URL. Paths: /<function-name>[/...]; `whoami`, and `webhook`, a
// function deployed with verify_jwt = false (it answers without looking at Authorization).

const encoder = new TextEncoder();
const secret = Deno.env.get("JWT_SECRET") ?? "";
const jwksUrl = Deno.env.get("JWKS_URL") ?? "";
const port = Number(Deno.env.get("PORT") ?? "0");

function b64urlDecode(part: string): Uint8Array<ArrayBuffer> {
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (part.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

const hmacKey = crypto.subtle.importKey(
  "raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"],
);

const ecKeys = new Map<string, CryptoKey>();

async function ecKey(kid: string): Promise<CryptoKey | undefined> {
  if (!ecKeys.has(kid) && jwksUrl) {
    const { keys } = await (await fetch(jwksUrl)).json();
    for (const jwk of keys ?? []) {
      if (jwk.kty === "EC" && jwk.crv === "P-256" && jwk.kid) {
        const key = await crypto.subtle.importKey(
          "jwk", { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, { name: "ECDSA", namedCurve: "P-256" },
          false, ["verify"],
        );
        ecKeys.set(jwk.kid, key);
      }
    }
  }
  return ecKeys.get(kid);
}

class Unauthorized extends Error {}

async function verify(token: string): Promise<Record<string, unknown>> {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Unauthorized("Invalid JWT");
  let header: { alg?: string; kid?: string };
  let claims: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(b64urlDecode(parts[0])));
    claims = JSON.parse(new TextDecoder().decode(b64urlDecode(parts[1])));
  } catch {
    throw new Unauthorized("Invalid JWT");
  }
  const signed = encoder.encode(`${parts[0]}.${parts[1]}`);
  const signature = b64urlDecode(parts[2]);
  let ok = false;
  if (header.alg === "HS256") {
    ok = await crypto.subtle.verify("HMAC", await hmacKey, signature, signed);
  } else if (header.alg === "ES256" && header.kid) {
    const key = await ecKey(header.kid);
    ok = key !== undefined &&
      await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, signature, signed);
  }
  if (!ok) throw new Unauthorized("Invalid JWT");
  if (typeof claims.exp !== "number" || claims.exp * 1000 <= Date.now()) throw new Unauthorized("JWT expired");
  return claims;
}

// What an `apikey` header holds, without echoing it: the gateway must never forward a plaintext key.
function kind(value: string | null): string {
  if (value === null) return "none";
  if (value.startsWith("sb_")) return "plaintext key";
  return value.split(".").length === 3 ? "jwt" : "other";
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: ({ port }) => console.log(`listening ${port}`) },
  async (req) => {
    const url = new URL(req.url);
    const name = url.pathname.split("/")[1];
    if (name === "webhook") {
      return json(200, { runtime: `deno ${Deno.version.deno}`, webhook: true, path: url.pathname,
                         authorization: req.headers.has("authorization") });
    }
    if (name !== "whoami") return json(404, { code: "NOT_FOUND", message: "Requested function was not found" });
    const auth = req.headers.get("authorization") ?? "";
    const match = /^Bearer (.+)$/i.exec(auth);
    if (!match) return json(401, { code: "UNAUTHORIZED_NO_AUTH_HEADER", message: "Missing authorization header" });
    let claims: Record<string, unknown>;
    let sbApiKey: Record<string, unknown> | null = null;
    try {
      claims = await verify(match[1]);
      const minted = req.headers.get("sb-api-key");
      if (minted) sbApiKey = await verify(minted);
    } catch (e) {
      if (e instanceof Unauthorized) return json(401, { code: "UNAUTHORIZED_INVALID_JWT_FORMAT", message: e.message });
      throw e;
    }
    let body: unknown = null;
    if (req.method !== "GET" && req.method !== "HEAD") {
      const text = await req.text();
      body = text ? JSON.parse(text) : null;
    }
    return json(200, {
      runtime: `deno ${Deno.version.deno}`,
      method: req.method,
      path: url.pathname,
      claims,
      sb_api_key: sbApiKey,
      apikey: kind(req.headers.get("apikey")),
      body,
    });
  });

Deno.addSignalListener("SIGTERM", () => server.shutdown());
