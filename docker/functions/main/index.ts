// Edge runtime entry point: hands each request to the function named by the first path segment.
// JWT verification happens in the functions themselves (the gateway forwards a verifiable JWT).
Deno.serve(async (req: Request) => {
  const name = new URL(req.url).pathname.split("/")[1];
  if (!name) return new Response(JSON.stringify({ msg: "missing function name" }), { status: 400 });
  const worker = await EdgeRuntime.userWorkers.create({
    servicePath: `/home/deno/functions/${name}`,
    memoryLimitMb: 150,
    workerTimeoutMs: 60_000,
    noModuleCache: false,
    envVars: Object.entries(Deno.env.toObject()),
  });
  return await worker.fetch(req);
});
