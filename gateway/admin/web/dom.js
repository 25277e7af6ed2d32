// Small DOM helpers. Every string goes into the page as text (textContent, attribute values),
// never as HTML: nothing here parses markup.

const SVG = "http://www.w3.org/2000/svg";

// el("p", {class: "muted", text: "..."}, child, "text", ...): an element with properties,
// attributes (set with setAttribute, never innerHTML), listeners ("onclick") and children.
export function el(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

export function svg(tag, props = {}, ...children) {
  return build(document.createElementNS(SVG, tag), props, children);
}

function build(node, props, children) {
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "class") node.setAttribute("class", value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child); // strings become text nodes
  }
  return node;
}

// --- times ---------------------------------------------------------------------------------------

const relative = new Intl.RelativeTimeFormat("en", { numeric: "always" });
const exact = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
const UNITS = [["year", 365 * 86400], ["month", 30 * 86400], ["day", 86400], ["hour", 3600], ["minute", 60]];

// "3 minutes ago", "in 2 hours", "just now".
export function ago(iso, now = Date.now()) {
  const seconds = (Date.parse(iso) - now) / 1000;
  const size = Math.abs(seconds);
  if (size < 60) return seconds <= 0 ? "just now" : "in less than a minute";
  for (const [unit, length] of UNITS) {
    if (size >= length) return relative.format(Math.round(seconds / length), unit);
  }
  return "just now";
}

export function exactTime(iso) {
  return `${exact.format(new Date(iso))} (${iso})`;
}

// <time> with the relative text, the exact time on hover; kept fresh by refreshTimes().
export function timeEl(iso, empty = "Never") {
  if (!iso) return el("span", { class: "never", text: empty });
  return el("time", { datetime: iso, title: exactTime(iso), dataset: { relative: "" }, text: ago(iso) });
}

export function refreshTimes(root = document) {
  for (const t of root.querySelectorAll("time[data-relative]")) t.textContent = ago(t.dateTime);
}

export function usedWithinADay(iso, now = Date.now()) {
  return Boolean(iso) && now - Date.parse(iso) < 86400 * 1000;
}

// --- copying -------------------------------------------------------------------------------------

// A Copy button for an input: the Clipboard API where the page may use it, else the old
// selection copy; the button says what happened.
export function copyButton(input, label = "Copy") {
  const button = el("button", { type: "button", class: "copy", text: label });
  button.addEventListener("click", () => copyFrom(input, button, label));
  return button;
}

export async function copyFrom(input, button, label = "Copy") {
  let done = false;
  try {
    await navigator.clipboard.writeText(input.value);
    done = true;
  } catch {
    input.focus();
    input.select();
    try {
      done = document.execCommand("copy");
    } catch {
      done = false;
    }
  }
  button.textContent = done ? "Copied" : "Press Ctrl+C";
  setTimeout(() => { button.textContent = label; }, 2000);
}
