// The search page. The query lives in the URL (/?q=...&tag=...&offset=...), so a search can be
// bookmarked and shared, and back/forward replay it. An uploaded image cannot live in a URL:
// it is kept in memory for as long as the page is open.
import * as API from './api.js';
import { applyMode, rememberBack } from './common.js';
import { basename, byId, fill, fmtBytes, fmtInt, h, notice, splitList } from './dom.js';
import { renderGrid, renderPager } from './grid.js';

const DEFAULT_K = 24;
const FILTERS = ['tag', 'after', 'before', 'camera', 'format'];
const form = {};
let upload = null; // the File being searched by, if any
let uploadPreview = null; // its blob: URL, for the chip
let inFlight = null; // AbortController of the running search
let facetsLoaded = null;

function readState() {
  const p = new URLSearchParams(window.location.search);
  const get = (key) => p.get(key) || '';
  const k = Math.min(Math.max(parseInt(get('k'), 10) || DEFAULT_K, 1), 200);
  const offset = Math.max(parseInt(get('offset'), 10) || 0, 0);
  return {
    q: get('q'), not: p.getAll('not').filter(Boolean), like: get('like'),
    tag: get('tag'), after: get('after'), before: get('before'), camera: get('camera'), format: get('format'),
    k, offset,
  };
}

function urlFor(state) {
  const { k, offset, ...rest } = state;
  return `/${API.query({ ...rest, k: k === DEFAULT_K ? '' : k, offset: offset || '' })}`;
}

function apiParams(state) {
  const { like, ...rest } = state;
  return upload ? rest : { ...rest, like };
}

function hasQuery(state) {
  return Boolean(state.q || state.like || upload);
}

function writeForm(state) {
  form.q.value = state.q;
  form.not.value = state.not.join(', ');
  for (const key of ['after', 'before']) form[key].value = state[key];
  for (const key of ['camera', 'format']) ensureOption(form[key], state[key]);
  const active = FILTERS.filter((key) => state[key]).length + (state.not.length ? 1 : 0);
  byId('filter-count').textContent = active ? String(active) : '';
  markActiveTag(state.tag);
}

/** Select a value, adding it as an option if the facets did not list it (a shared URL). */
function ensureOption(select, value) {
  if (value && ![...select.options].some((o) => o.value === value)) select.append(h('option', { value }, value));
  select.value = value;
}

function navigate(changes, { push = true } = {}) {
  const state = { ...readState(), ...changes };
  const url = urlFor(state);
  if (push) window.history.pushState({ upload: Boolean(upload) }, '', url);
  else window.history.replaceState({ upload: Boolean(upload) }, '', url);
  writeForm(state);
  return run(state);
}

function renderChips(state) {
  const chips = byId('query-chips');
  const items = [];
  if (upload) {
    if (!uploadPreview) uploadPreview = URL.createObjectURL(upload);
    const thumb = h('img', { src: uploadPreview, alt: '', class: 'chip-thumb' });
    items.push(chip([thumb, h('span', {}, `${upload.name} (${fmtBytes(upload.size)})`)], 'Stop searching by this image', () => {
      setUpload(null);
    }));
  } else if (state.like) {
    const label = h('span', {}, `Similar to image #${state.like}`);
    API.getImage(state.like).then((img) => { label.textContent = `Similar to ${basename(img.path)}`; }).catch(() => {});
    const thumb = h('img', { src: `/api/images/${encodeURIComponent(state.like)}/thumbnail?size=128`, alt: '', class: 'chip-thumb' });
    items.push(chip([thumb, label], 'Stop searching by this image', () => navigate({ like: '', offset: 0 })));
  }
  fill(chips, items);
  chips.hidden = items.length === 0;
}

function chip(content, removeTitle, onRemove) {
  return h('span', { class: 'chip' }, content,
    h('button', { type: 'button', class: 'chip-remove', title: removeTitle, 'aria-label': removeTitle, onclick: onRemove }, '×'));
}

async function run(state) {
  renderChips(state);
  if (inFlight) inFlight.abort();
  const list = byId('results');
  const empty = byId('empty-state');
  if (!hasQuery(state)) {
    fill(list);
    fill(byId('results-head'));
    byId('pager').hidden = true;
    document.title = 'Search · zsindex';
    return renderIntro(empty);
  }
  inFlight = new AbortController();
  const started = performance.now();
  document.body.classList.add('busy');
  let data;
  try {
    const params = apiParams(state);
    data = upload ? await API.searchByFile(upload, params, inFlight.signal) : await API.search(params, inFlight.signal);
  } catch (err) {
    if (err.name === 'AbortError') return undefined;
    fill(list);
    byId('pager').hidden = true;
    fill(byId('results-head'));
    fill(empty, h('p', { class: 'notice', dataset: { kind: 'error' }, role: 'alert' }, err.message));
    empty.hidden = false;
    return undefined;
  } finally {
    document.body.classList.remove('busy');
  }
  const seconds = (performance.now() - started) / 1000;
  rememberBack('Back to search');
  const results = data.results || [];
  renderGrid(list, results);
  renderHead(state, results, seconds);
  renderPager(byId('pager'), {
    offset: state.offset,
    size: state.k,
    more: data.more,
    urlFor: (offset) => urlFor({ ...state, offset }),
    go: (offset) => {
      navigate({ offset });
      window.scrollTo({ top: 0 });
    },
  });
  empty.hidden = results.length > 0;
  if (!results.length) fill(empty, h('p', { class: 'empty-title' }, 'No images match.'),
    h('p', { class: 'muted' }, 'Try other words, or clear some filters.'));
  document.title = `${state.q || (upload ? upload.name : 'Similar images')} · zsindex`;
  return data;
}

function renderHead(state, results, seconds) {
  const head = byId('results-head');
  if (!results.length) return fill(head);
  const first = state.offset + 1;
  const what = state.q ? ['for ', h('q', {}, state.q)] : [];
  return fill(head, h('span', {}, `Results ${fmtInt(first)}–${fmtInt(state.offset + results.length)} `, what),
    h('span', { class: 'muted small' }, `${seconds.toFixed(2)} s`));
}

async function renderIntro(empty) {
  empty.hidden = false;
  fill(empty, h('p', { class: 'empty-title' }, 'Search your images by describing them.'),
    h('p', { class: 'muted' }, 'Type a few words, or drop an image anywhere on this page to find similar ones.'));
  const state = readState();
  if (FILTERS.some((key) => state[key]) || state.not.length) {
    empty.append(h('p', { class: 'notice', dataset: { kind: 'info' } },
      'The filters are set and apply to the next search: type what you are looking for.'));
  }
  try {
    const [status, facets] = await Promise.all([API.getStatus(), facetsLoaded]);
    applyMode(status);
    const indexed = Number((status.images || {}).indexed) || 0; // statuses with no image are left out
    if (indexed === 0) {
      empty.append(h('p', { class: 'notice', dataset: { kind: 'info' } }, 'The index is empty: run ',
        h('code', {}, 'zsindex ingest PATH'), ', or start a scan from the ', h('a', { href: '/status' }, 'Status'), ' page.'));
    } else {
      const model = status.model && status.model.name ? ` with the ${status.model.name} model` : '';
      empty.append(h('p', { class: 'muted small' }, `${fmtInt(indexed)} images indexed${model}.`));
    }
    const labels = facets ? [...facets.tags].sort((a, b) => b.count - a.count).slice(0, 8) : [];
    if (labels.length) {
      empty.append(h('p', { class: 'suggestions' }, h('span', { class: 'muted small' }, 'Try: '),
        labels.map((t) => h('a', { class: 'suggestion', href: urlFor({ ...readState(), q: t.label, offset: 0 }) }, t.label))));
    }
  } catch {
    // The intro is a courtesy; the search box works without it.
  }
}

function facetLabel(value, count) {
  return `${value} (${fmtInt(count)})`;
}

async function loadFacets() {
  const facets = await API.getFacets();
  const state = readState();
  for (const key of ['camera', 'format']) {
    const select = form[key];
    const items = key === 'camera' ? facets.cameras : facets.formats;
    fill(select, select.options[0], (items || []).map((it) => h('option', { value: it.value }, facetLabel(it.value, it.count))));
    ensureOption(select, state[key]);
  }
  renderTagFacets(facets.tags || []);
  markActiveTag(state.tag);
  return facets;
}

function renderTagFacets(tags) {
  const box = byId('tag-facets');
  if (!tags.length) return;
  const bySet = new Map();
  for (const t of tags) {
    if (!bySet.has(t.set)) bySet.set(t.set, []);
    bySet.get(t.set).push(t);
  }
  fill(box, [...bySet].map(([set, items]) => h('div', { class: 'facet-group' },
    h('span', { class: 'facet-set' }, set),
    h('div', { class: 'facet-tags' }, items.map((t) => h('button', {
      type: 'button', class: 'facet-tag', dataset: { tag: t.label }, 'aria-pressed': 'false',
      onclick: () => navigate({ tag: readState().tag === t.label ? '' : t.label, offset: 0 }),
    }, h('span', {}, t.label), h('span', { class: 'count' }, fmtInt(t.count))))))));
}

function markActiveTag(tag) {
  for (const btn of document.querySelectorAll('.facet-tag')) btn.setAttribute('aria-pressed', String(btn.dataset.tag === tag));
}

function setUpload(file) {
  if (file && file.type && !file.type.startsWith('image/')) {
    fill(byId('empty-state'), h('p', { class: 'notice', dataset: { kind: 'error' } }, `${file.name} is not an image.`));
    byId('empty-state').hidden = false;
    return;
  }
  if (uploadPreview) URL.revokeObjectURL(uploadPreview);
  uploadPreview = null;
  upload = file || null;
  navigate(file ? { like: '', offset: 0 } : { offset: 0 });
}

function wireDrop() {
  const overlay = byId('drop-overlay');
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  document.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    depth += 1;
    overlay.hidden = false;
  });
  document.addEventListener('dragleave', () => {
    depth = Math.max(depth - 1, 0);
    if (!depth) overlay.hidden = true;
  });
  document.addEventListener('dragover', (e) => {
    if (hasFiles(e)) e.preventDefault();
  });
  document.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    if (e.dataTransfer.files[0]) setUpload(e.dataTransfer.files[0]);
  });
}

function wire() {
  for (const key of ['q', 'not', 'after', 'before', 'camera', 'format']) form[key] = byId(key);
  byId('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    navigate({ q: form.q.value.trim(), not: splitList(form.not.value), offset: 0 });
  });
  form.not.addEventListener('change', () => navigate({ not: splitList(form.not.value), offset: 0 }));
  for (const key of ['after', 'before', 'camera', 'format']) {
    form[key].addEventListener('change', () => navigate({ [key]: form[key].value, offset: 0 }));
  }
  byId('clear-filters').addEventListener('click', () => navigate({ not: [], tag: '', after: '', before: '', camera: '', format: '', offset: 0 }));
  const picker = byId('image-file');
  byId('pick-image').addEventListener('click', () => picker.click());
  picker.addEventListener('change', () => {
    if (picker.files[0]) setUpload(picker.files[0]);
    picker.value = '';
  });
  window.addEventListener('popstate', (e) => {
    if (!(e.state && e.state.upload)) {
      upload = null;
      if (uploadPreview) URL.revokeObjectURL(uploadPreview);
      uploadPreview = null;
    }
    const state = readState();
    writeForm(state);
    run(state);
  });
  wireDrop();
  // "/" jumps to the search box, as on many search pages.
  document.addEventListener('keydown', (e) => {
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement
      || e.target instanceof HTMLSelectElement;
    if (e.key === '/' && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      form.q.focus();
      form.q.select();
    }
  });
}

export async function init() {
  wire();
  const state = readState();
  const narrow = window.matchMedia('(max-width: 760px)').matches;
  if (narrow && !FILTERS.some((key) => state[key]) && !state.not.length) byId('filters').open = false;
  writeForm(state);
  facetsLoaded = loadFacets().catch((err) => {
    notice(byId('tag-facets'), `Filters unavailable: ${err.message}`);
    return null;
  });
  window.history.replaceState({ upload: false }, '', window.location.href);
  await run(state);
  if (!state.q && !state.like) form.q.focus();
}
