// A real Chromium (Debian's, headless) driven by playwright-core, one command per line.
//
//   node browser.mjs <user-data-dir>
//
// Reads JSON commands on stdin ({"op": "click", "selector": "..."}), answers each with one JSON
// line on stdout ({"ok": true, "value": ...} or {"ok": false, "error": "..."}). The page's
// dialogs (alert, confirm), console errors, uncaught errors and every request it makes are
// recorded for the `events` command. tests/test_web_browser.py drives it.

import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const context = await chromium.launchPersistentContext(process.argv[2], {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ARGS,
  viewport: { width: 1280, height: 900 },
  permissions: ["clipboard-read", "clipboard-write"],
});
context.setDefaultTimeout(10_000);
const page = context.pages()[0] ?? (await context.newPage());
const events = { dialogs: [], console: [], errors: [], requests: [] };
page.on("dialog", (dialog) => {
  events.dialogs.push({ type: dialog.type(), message: dialog.message() });
  dialog.dismiss().catch(() => {});
});
page.on("console", (message) => {
  if (["error", "warning"].includes(message.type())) events.console.push(`${message.type()}: ${message.text()}`);
});
page.on("pageerror", (error) => events.errors.push(String(error)));
page.on("request", (request) => events.requests.push(request.url()));

const at = (selector) => page.locator(selector);

const OPS = {
  goto: async ({ url }) => {
    const response = await page.goto(url);
    return { status: response.status(), headers: response.headers() };
  },
  reload: async () => {
    const response = await page.reload();
    return { status: response.status(), headers: response.headers() };
  },
  click: ({ selector }) => at(selector).click(),
  fill: ({ selector, value }) => at(selector).fill(value),
  check: ({ selector }) => at(selector).check(),
  focus: ({ selector }) => at(selector).focus(),
  press: ({ selector, key }) => (selector ? at(selector).press(key) : page.keyboard.press(key)),
  text: ({ selector }) => at(selector).innerText(),
  value: ({ selector }) => at(selector).inputValue(),
  attr: ({ selector, name }) => at(selector).getAttribute(name),
  count: ({ selector }) => at(selector).count(),
  visible: ({ selector }) => at(selector).isVisible(),
  wait: ({ selector, state = "visible" }) => at(selector).first().waitFor({ state }),
  // Until an element matching `selector` holds `text` (the page may redraw meanwhile).
  waitText: ({ selector, text }) => page.locator(selector, { hasText: text }).first().waitFor(),
  eval: ({ expression }) => page.evaluate(expression),
  screenshot: ({ path, full = true }) => page.screenshot({ path, fullPage: full }).then(() => path),
  viewport: ({ width, height }) => page.setViewportSize({ width, height }),
  colorScheme: ({ scheme }) => page.emulateMedia({ colorScheme: scheme }), // "light" or "dark"
  events: () => events,
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  if (command.op === "close") break;
  let answer;
  try {
    const value = await OPS[command.op](command);
    answer = { ok: true, value: value ?? null };
  } catch (error) {
    answer = { ok: false, error: String(error?.message ?? error).slice(0, 4000) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
await context.close();
