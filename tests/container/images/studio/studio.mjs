// A stand-in for Supabase Studio behind the gateway's dashboard route, for the container tests.
//
// It answers the stack's health check path (/api/platform/profile) and every other path with what
// reached it, as JSON: the method, the path as sent, and the request's headers, so that the tests
// can check that the dashboard's basic-auth credentials never arrive here (Kong's
// hide_credentials, Envoy's request_headers_to_remove). `/slow?ms=N` answers after N milliseconds.
import http from "node:http";

const port = Number(process.env.PORT || 3000);

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://studio");
  const answer = () => {
    const body = JSON.stringify({
      service: "studio",
      method: req.method,
      path: req.url,
      headers: req.headers,
    });
    res.writeHead(200, { "content-type": "application/json", "x-standin": "studio" });
    res.end(body);
  };
  if (url.pathname === "/api/platform/profile") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ id: 1, primary_email: "admin@example.com", username: "stand-in" }));
  } else if (url.pathname === "/slow") {
    setTimeout(answer, Number(url.searchParams.get("ms") || 1000));
  } else {
    answer();
  }
});

server.listen(port, "::", () => console.log(`studio stand-in listening on ${port}`));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
