// The admin API of this listener, as the page calls it: JSON over fetch with the admin token as
// `Authorization: Bearer`, same origin, never cached, never redirected; a refusal becomes an
// ApiError carrying the status and the field the API named.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `The admin API answered ${status}`);
    this.status = status;
    this.field = typeof body?.field === "string" ? body.field : "";
  }
}

// `base`: the api-keys path of the project, relative to the page; `token()`: the session's token;
// `refused()`: called when a signed-in call gets 401 (the token stopped working).
export function createApi({ base, token, refused }) {
  async function request(method, path = "", { body, query, token: given = token() } = {}) {
    const url = new URL(base + path, document.baseURI);
    for (const [name, value] of Object.entries(query || {})) url.searchParams.set(name, value);
    const headers = { Authorization: `Bearer ${given}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                    cache: "no-store", credentials: "omit", redirect: "error" });
    } catch {
      throw new ApiError(0, { message: "Cannot reach the admin API." });
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // A call made while signed in: a refused token signs out (and the error still reaches the caller).
  async function call(method, path, options) {
    try {
      return await request(method, path, options);
    } catch (e) {
      if (e.status === 401) refused();
      throw e;
    }
  }

  const id = (keyId) => `/${encodeURIComponent(keyId)}`;
  return {
    request,
    call,
    keys: () => call("GET"),
    legacy: () => call("GET", "/legacy"),
    setLegacy: (enabled) => call("PUT", "/legacy", { query: { enabled: String(enabled) } }),
    usage: (keyId) => call("GET", `${id(keyId)}/usage`),
    revealed: (keyId) => call("GET", id(keyId), { query: { reveal: "true" } }),
    create: (body) => call("POST", "", { body }),
    update: (keyId, body) => call("PATCH", id(keyId), { body }),
    remove: (keyId, query) => call("DELETE", id(keyId), { query }),
  };
}
