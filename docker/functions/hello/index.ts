// A sample function: echoes the role of the JWT the gateway forwarded.
Deno.serve((req: Request) => {
  const token = (req.headers.get("authorization") ?? "").replace(/^Bearer /, "");
  const claims = token.split(".").length === 3 ? JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))) : {};
  return Response.json({ hello: "world", role: claims.role ?? null });
});
