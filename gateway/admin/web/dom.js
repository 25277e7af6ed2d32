// Small DOM helpers. Every string goes into the page as text (textContent, attribute values),
// never as HTML: nothing here parses markup.

import { ago, when } from "./time.js";

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

// --- looking elements up -------------------------------------------------------------------------

// The elements a component uses, looked up once inside its root: parts(root, {form: "form",
// name: "#key-name"}) -> {form, name}. A selector that finds nothing is a bug of the page: said
// at once, not later as a null.
export function parts(root, selectors) {
  const out = {};
  for (const [name, selector] of Object.entries(selectors)) {
    out[name] = root.querySelector(selector);
    if (!out[name]) throw new Error(`The page has no ${selector} in ${root.id || root.nodeName}`);
  }
  return out;
}

// --- times ---------------------------------------------------------------------------------------

// <time> with the relative text, the exact time on hover; kept fresh by refreshTimes().
export function timeEl(iso, empty = "Never") {
  const { text, title } = when(iso, empty);
  if (!iso) return el("span", { class: "never", text });
  return el("time", { datetime: iso, title, dataset: { relative: "" }, text });
}

export function refreshTimes(root = document) {
  for (const t of root.querySelectorAll("time[data-relative]")) t.textContent = ago(t.dateTime);
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
