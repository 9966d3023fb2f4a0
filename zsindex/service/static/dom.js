// DOM helpers. Every piece of data reaches the page as a text node or an attribute value
// set through the DOM, never as HTML: file names and labels can hold anything.

/** Create an element: h('a', {href: '/x', class: 'link'}, 'text', child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const byId = (id) => document.getElementById(id);

export function show(el, visible = true) {
  el.hidden = !visible;
  return el;
}

/** A notice box: text, or hidden when text is empty. */
export function notice(el, text, kind = 'error') {
  el.textContent = text || '';
  el.dataset.kind = kind;
  el.hidden = !text;
}

export function basename(path) {
  const parts = String(path).split(/[\\/]/);
  return parts[parts.length - 1] || String(path);
}

const numberFormat = new Intl.NumberFormat();
export const fmtInt = (n) => (n === null || n === undefined ? '–' : numberFormat.format(n));

export function fmtScore(score) {
  return typeof score === 'number' && Number.isFinite(score) ? score.toFixed(3) : '–';
}

export function fmtBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

export function fmtDate(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** Names equal ignoring case, as the server matches set names and labels (Python's casefold). */
export function sameName(a, b) {
  const x = String(a);
  const y = String(b);
  return x.toLowerCase() === y.toLowerCase() || x.toUpperCase() === y.toUpperCase();
}

/** Words typed in the page (search's "Without"; labels use labelfile.js's splitLabels):
 * 'cat, dog\nduck' -> ['cat', 'dog', 'duck'] (commas or new lines, blanks dropped). */
export function splitList(text) {
  return String(text || '')
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean);
}
