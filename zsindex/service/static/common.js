// Pieces every page shares: the navigation, the read-only badge, job progress.
import { byId, fmtInt } from './dom.js';

export function markNav(page) {
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === page) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

/** Show "read-only" in the header and disable every control marked data-writes. */
export function applyMode(status) {
  const badge = byId('mode-badge');
  if (!status || !badge) return;
  if (status.read_only) {
    badge.textContent = 'Read-only';
    badge.hidden = false;
    for (const el of document.querySelectorAll('[data-writes]')) {
      el.disabled = true;
      el.title = 'The server runs with --read-only';
    }
  }
}

const STATE_TEXT = { queued: 'Queued…', running: 'Running…', done: 'Done', failed: 'Failed' };

/** Show a job's state in a .job block: {box, state, count, bar} elements. */
export function showJob(parts, job) {
  parts.box.hidden = false;
  parts.box.dataset.state = job.state;
  const progress = job.progress || {};
  const done = Number(progress.done) || 0;
  const total = typeof progress.total === 'number' ? progress.total : null;
  let text = STATE_TEXT[job.state] || job.state;
  if (job.state === 'failed' && job.error) text = `Failed: ${job.error}`;
  else if (job.state === 'running' && progress.stage) text = `Running: ${progress.stage}…`;
  parts.state.textContent = text;
  if (total) {
    parts.bar.max = total;
    parts.bar.value = Math.min(done, total);
    parts.count.textContent = `${fmtInt(done)} / ${fmtInt(total)}`;
  } else if (job.state === 'done') {
    parts.bar.max = 1;
    parts.bar.value = 1;
    parts.count.textContent = done ? fmtInt(done) : '';
  } else {
    parts.bar.removeAttribute('value'); // indeterminate until the total is known
    parts.count.textContent = done ? fmtInt(done) : '';
  }
}

// Where the image page's "Back" link goes: the last search or label listing of this tab.
const BACK_KEY = 'zsindex.back';

export function rememberBack(text) {
  try {
    window.sessionStorage.setItem(BACK_KEY, JSON.stringify({ href: window.location.pathname + window.location.search, text }));
  } catch {
    // Storage may be disabled; the link then points at the search page.
  }
}

export function recallBack() {
  try {
    const value = JSON.parse(window.sessionStorage.getItem(BACK_KEY) || 'null');
    if (value && typeof value.href === 'string' && value.href.startsWith('/') && !value.href.startsWith('//')) return value;
  } catch {
    // Fall through to the default.
  }
  return { href: '/', text: 'Back to search' };
}
