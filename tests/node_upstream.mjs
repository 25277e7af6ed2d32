// A Node `http` upstream for the wire tests: Node's server differs from Python's on the wire (it
// reads and discards a body its handler left unread, and keeps the connection open), which is
// what a proxy that reuses connections must survive.
//
// Prints its port on stdout. Every request is recorded with the id of its connection; the test
// reads the record at GET /__requests (and clears it with DELETE /__requests), straight from
// this server, never through the gateway.
//   /early        answered at once, the request body left unread
//   anything else the body read whole, then a JSON echo (method, url, connection, body length)
import http from "node:http";

let nextSocket = 0;
let requests = [];
const closed = [];

const server = http.createServer((req, res) => {
  if (req.url === "/__requests") {
    if (req.method === "DELETE") requests = [];
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ requests, closed }));
    return;
  }
  const entry = { method: req.method, url: req.url, socket: req.socket.id, headers: req.headers };
  requests.push(entry);
  const path = req.url.split("?")[0];
  if (path === "/early") {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ early: true, socket: req.socket.id }));
    return;
  }
  let length = 0;
  req.on("data", (chunk) => { length += chunk.length; });
  req.on("end", () => {
    entry.bodyLength = length;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ method: req.method, url: req.url, socket: req.socket.id, bodyLength: length }));
  });
});

server.on("connection", (socket) => {
  socket.id = ++nextSocket;
  socket.on("close", () => closed.push(socket.id));
});
server.keepAliveTimeout = 60_000;

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
