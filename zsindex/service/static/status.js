// The status page: what the index holds, the model, sizes, runs and jobs.
import * as API from './api.js';
import { applyMode, showJob } from './common.js';
import { byId, fill, fmtBytes, fmtDate, fmtInt, h, notice } from './dom.js';

function card(title, rows) {
  return h('section', { class: 'card stat-card' }, h('h2', {}, title),
    h('dl', { class: 'meta' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
}

function display(key, value) {
  if (value === null || value === undefined || value === '') return '–';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'number') return /bytes|size/i.test(key) ? fmtBytes(value) : fmtInt(value);
  if (typeof value === 'string' && /(_at|started|finished|time|date)$/i.test(key)) return fmtDate(value);
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** A table over a list of objects, one column per key seen. */
function table(items, empty) {
  if (!items || !items.length) return h('p', { class: 'muted small' }, empty);
  const keys = [...new Set(items.flatMap((it) => Object.keys(it)))];
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data' },
    h('thead', {}, h('tr', {}, keys.map((k) => h('th', { scope: 'col' }, k.replaceAll('_', ' '))))),
    h('tbody', {}, items.map((it) => h('tr', {}, keys.map((k) => h('td', {}, display(k, it[k]))))))));
}

/** 'sha256:0123…' shortened for the eye; the whole value stays in the tooltip. */
function shortHash(value) {
  const text = String(value ?? '–');
  return text.length > 24 ? h('span', { class: 'mono', title: text }, `${text.slice(0, 19)}…`) : text;
}

function sizeRows(sizes) {
  return Object.entries(sizes || {}).map(([k, v]) => [k.replaceAll('_', ' '), typeof v === 'number' ? fmtBytes(v) : display(k, v)]);
}

function renderStatus(status) {
  const images = status.images || {};
  const model = status.model || {};
  const imageRows = Object.entries(images).map(([k, v]) => [k, display(k, v)]);
  const modelRows = status.model
    ? Object.entries(model).map(([k, v]) => [k, k === 'identity' ? shortHash(v) : display(k, v)])
    : [['model', 'none yet: ingest some images']];
  const serviceRows = [
    ['read-only', display('', Boolean(status.read_only))],
    ['watching for changes', display('', Boolean(status.watch))],
  ];
  byId('status-index').textContent = status.index ? `Index: ${status.index}` : '';
  fill(byId('status-cards'),
    card('Images', imageRows.length ? imageRows : [['indexed', '0']]),
    card('Model', modelRows),
    card('Storage', sizeRows(status.sizes || status.bytes).length ? sizeRows(status.sizes || status.bytes) : [['size', '–']]),
    card('Service', serviceRows));
  const runs = status.runs || (status.last_run ? [status.last_run] : []);
  fill(byId('runs'), table(runs, 'No runs yet.'));
  const sets = status.label_sets || [];
  fill(byId('status-sets'), sets.length
    ? h('ul', { class: 'set-links' }, sets.map((s) => {
      const name = typeof s === 'string' ? s : s.name;
      return h('li', {}, h('a', { href: `/labels?set=${encodeURIComponent(name)}` }, name));
    }))
    : h('p', { class: 'muted small' }, 'No label sets yet.'));
}

function jobSubject(job) {
  const params = job.params || {};
  if (params.label_set) return [params.label_set, params.mode].filter(Boolean).join(' · ');
  if (Array.isArray(params.paths)) return params.paths.join(', ');
  return '';
}

function jobRow(job) {
  const p = job.progress || {};
  return {
    id: job.id, kind: job.kind, of: jobSubject(job), state: job.state,
    progress: typeof p.total === 'number' ? `${fmtInt(p.done)} / ${fmtInt(p.total)}` : fmtInt(p.done || 0),
    error: job.error || '',
  };
}

async function refreshJobs() {
  const data = await API.listJobs();
  fill(byId('jobs'), table((data.jobs || []).map(jobRow), 'No jobs since the server started.'));
}

async function refresh() {
  try {
    const status = await API.getStatus();
    renderStatus(status);
    applyMode(status);
    notice(byId('status-error'), '');
  } catch (err) {
    notice(byId('status-error'), err.message);
  }
  try {
    await refreshJobs();
  } catch (err) {
    fill(byId('jobs'), h('p', { class: 'notice', dataset: { kind: 'error' } }, err.message));
  }
}

async function ingest() {
  const button = byId('ingest-button');
  const parts = { box: byId('ingest-job'), state: byId('ingest-job-state'), count: byId('ingest-job-count'), bar: byId('ingest-progress') };
  button.disabled = true;
  try {
    const job = await API.startIngest();
    refreshJobs().catch(() => {});
    const last = await API.followJob(job, (j) => showJob(parts, j));
    if (last.state === 'done' && last.result) {
      const r = last.result;
      const summary = ['added', 'changed', 'moved', 'deleted', 'skipped', 'unchanged']
        .filter((k) => typeof r[k] === 'number').map((k) => `${fmtInt(r[k])} ${k}`).join(', ');
      if (summary) parts.count.textContent = summary;
    }
  } catch (err) {
    showJob(parts, { state: 'failed', error: err.message, progress: {} });
  } finally {
    button.disabled = false;
    await refresh();
  }
}

export async function init() {
  const button = byId('ingest-button');
  button.dataset.writes = '';
  button.addEventListener('click', ingest);
  await refresh();
}
