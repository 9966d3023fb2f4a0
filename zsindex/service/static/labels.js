// The labels page: label sets, tagging with live progress, counts, images of a label, untag.
// Its state lives in the URL: /labels?set=NAME&label=LABEL&offset=N.
import * as API from './api.js';
import { applyMode, rememberBack, showJob } from './common.js';
import { byId, fill, fmtInt, h, notice, sameName } from './dom.js';
import { renderGrid, renderPager } from './grid.js';
import { formatLabels, labelsFromFile, splitLabels } from './labelfile.js';

const PAGE = 48;
let sets = [];
let current = null; // the label set shown, as GET /api/labels/{name} returned it
let editing = null; // name of the set being edited in the form, or null when creating

function readState() {
  const p = new URLSearchParams(window.location.search);
  return { set: p.get('set') || '', label: p.get('label') || '', offset: Math.max(parseInt(p.get('offset'), 10) || 0, 0) };
}

function urlFor(state) {
  return `/labels${API.query({ set: state.set, label: state.label, offset: state.offset || '' })}`;
}

async function go(state) {
  window.history.pushState(null, '', urlFor(state));
  await render();
  // The images of a label open below the counts, and on a narrow screen the detail sits
  // below the list: bring what was asked for into view.
  if (state.label) byId('label-images').scrollIntoView({ block: 'start' });
  else if (state.set && window.matchMedia('(max-width: 900px)').matches) byId('set-detail').scrollIntoView({ block: 'start' });
}

/** A link that navigates within the page. */
function link(state, attrs, ...children) {
  return h('a', { ...attrs, href: urlFor(state), onclick: (e) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    go(state);
  } }, ...children);
}

function renderSetList(selected) {
  const list = byId('set-list');
  if (!sets.length) return fill(list, h('li', { class: 'muted small' }, 'No label sets yet.'));
  return fill(list, sets.map((s) => h('li', {},
    link({ set: s.name, label: '', offset: 0 }, { class: 'set-item', 'aria-current': s.name === selected ? 'true' : null },
      h('span', { class: 'set-name' }, s.name),
      h('span', { class: 'muted small' }, `${fmtInt(s.labels.length)} labels · ${fmtInt(s.tagged)} tagged`),
      s.auto ? h('span', { class: 'badge' }, 'auto') : null))));
}

async function loadSets() {
  const data = await API.listLabelSets();
  sets = data.label_sets || [];
}

function renderCounts(set) {
  const counts = new Map((set.counts || []).map((c) => [c.label, c.count]));
  const max = Math.max(1, ...counts.values());
  const labels = [...set.labels];
  for (const label of counts.keys()) if (!labels.includes(label)) labels.push(label);
  fill(byId('counts'), labels.map((label) => {
    const n = counts.get(label) || 0;
    return h('tr', { dataset: { label } },
      h('th', { scope: 'row' }, n ? link({ set: set.name, label, offset: 0 }, { class: 'label-link' }, label) : label),
      h('td', { class: 'num count' }, fmtInt(n)),
      h('td', { class: 'bar-col' }, h('meter', { min: 0, max, value: n, 'aria-label': `${label}: ${n} images` })));
  }));
}

function renderDetail(set) {
  byId('set-empty').hidden = true;
  byId('set-detail').hidden = false;
  byId('set-title').textContent = set.name;
  const templates = set.templates && set.templates.length ? `${set.templates.length} templates` : 'default templates';
  byId('set-summary').textContent = `${fmtInt(set.labels.length)} labels · ${fmtInt(set.tagged)} images tagged · ${templates}${set.auto ? ' · tags new images automatically' : ''}`;
  renderCounts(set);
}

async function renderLabelImages(state) {
  const box = byId('label-images');
  if (!state.label) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  byId('label-images-title').textContent = `Images tagged “${state.label}”`;
  const close = byId('label-images-close');
  close.href = urlFor({ set: state.set, label: '', offset: 0 });
  const data = await API.labelImages(state.set, { label: state.label, k: PAGE, offset: state.offset });
  const results = data.results || [];
  rememberBack(`Back to “${state.label}”`);
  renderGrid(byId('label-grid'), results);
  if (!results.length) fill(byId('label-grid'), h('li', { class: 'muted' }, 'No images have this tag.'));
  renderPager(byId('label-pager'), {
    offset: state.offset,
    size: PAGE,
    more: data.more,
    urlFor: (offset) => urlFor({ ...state, offset }),
    go: (offset) => go({ ...readState(), offset }),
  });
}

async function render() {
  const state = readState();
  renderSetList(state.set);
  notice(byId('set-message'), '');
  if (!state.set) {
    current = null;
    byId('set-detail').hidden = true;
    byId('label-images').hidden = true;
    byId('set-empty').hidden = false;
    document.title = 'Labels · zsindex';
    return;
  }
  try {
    current = await API.getLabelSet(state.set);
  } catch (err) {
    current = null;
    byId('set-detail').hidden = true;
    byId('label-images').hidden = true;
    fill(byId('set-empty'), h('p', { class: 'notice', dataset: { kind: 'error' }, role: 'alert' }, err.message));
    byId('set-empty').hidden = false;
    return;
  }
  document.title = `${current.name} · Labels · zsindex`;
  byId('tag-job').hidden = true;
  renderDetail(current);
  resumeTagging(current.name);
  try {
    await renderLabelImages(state);
  } catch (err) {
    fill(byId('label-grid'), h('li', { class: 'notice', dataset: { kind: 'error' } }, err.message));
  }
}

function resetForm() {
  editing = null;
  byId('create-form').reset();
  byId('set-name').readOnly = false;
  byId('create-title').textContent = 'New label set';
  byId('create-submit').textContent = 'Create';
  byId('create-cancel').hidden = true;
  notice(byId('create-error'), '');
}

function startEdit() {
  if (!current) return;
  editing = current.name;
  byId('set-name').value = current.name;
  byId('set-name').readOnly = true;
  byId('set-labels').value = formatLabels(current.labels); // read back by splitLabels unchanged
  byId('set-auto').checked = Boolean(current.auto);
  byId('create-title').textContent = `Edit “${current.name}”`;
  byId('create-submit').textContent = 'Save';
  byId('create-cancel').hidden = false;
  byId('create-card').scrollIntoView({ behavior: 'smooth', block: 'start' });
  byId('set-labels').focus();
}

// The server's rule for a set's name (it is a part of the set's web address, /api/labels/NAME), said here
// before anything is sent, in words about the name rather than the address.
const MAX_SET_NAME = 200;
function setNameProblem(name) {
  if (name.length > MAX_SET_NAME) return `A set name is at most ${MAX_SET_NAME} characters (this one has ${name.length}).`;
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(name)) return 'A set name cannot hold a control character or a line break.';
  if (name.includes('/')) return 'A set name cannot hold “/”: it is part of the set’s web address. Choose another name.';
  if (name === '.' || name === '..') return `“${name}” cannot name a set: a web address reads it as a folder.`;
  return null;
}

async function submitSet(e) {
  e.preventDefault();
  const name = byId('set-name').value.trim();
  const error = byId('create-error');
  let labels;
  try {
    labels = splitLabels(byId('set-labels').value);
  } catch (err) {
    return notice(error, err.message);
  }
  if (!name) return notice(error, 'Give the set a name.');
  const problem = setNameProblem(name);
  if (problem) return notice(error, problem);
  if (!labels.length) return notice(error, 'List at least one label.');
  // Names and labels match in any case, as on the server: "COLOURS" would replace "colours".
  if (labels.some((a, i) => labels.findIndex((b) => sameName(a, b)) !== i)) {
    return notice(error, 'A label appears twice (ignoring case); each must be unique.');
  }
  const existing = editing ? null : sets.find((s) => sameName(s.name, name));
  if (existing) return notice(error, `A set named “${existing.name}” exists: open it and choose Edit.`);
  const templates = editing && current && current.name === editing && current.templates.length ? current.templates : null;
  const button = byId('create-submit');
  button.disabled = true;
  try {
    await API.putLabelSet(name, { labels, templates, auto: byId('set-auto').checked });
    resetForm();
    await loadSets();
    await go({ set: name, label: '', offset: 0 });
  } catch (err) {
    notice(error, err.message);
  } finally {
    button.disabled = false;
  }
  return undefined;
}

async function pickFile() {
  const input = byId('set-file');
  const file = input.files[0];
  if (!file) return;
  try {
    const names = await labelsFromFile(file);
    if (!names.length) throw new Error('no labels found in it');
    byId('set-labels').value = formatLabels(names);
    if (!byId('set-name').value) byId('set-name').value = file.name.replace(/\.[^.]+$/, '');
    notice(byId('create-error'), '');
  } catch (err) {
    notice(byId('create-error'), `Cannot read ${file.name}: ${err.message}`);
  }
}

function tagSummary(result) {
  if (!result || typeof result !== 'object') return 'Tagging finished.';
  const counts = result.counts && typeof result.counts === 'object' ? Object.values(result.counts) : null;
  if (counts) return `Tagging finished: ${fmtInt(counts.reduce((a, b) => a + b, 0))} tags.`;
  return 'Tagging finished.';
}

const jobParts = () => ({ box: byId('tag-job'), state: byId('tag-job-state'), count: byId('tag-job-count'), bar: byId('tag-progress') });

async function runTagging(e) {
  e.preventDefault();
  if (!current) return;
  const raw = byId('tag-threshold').value.trim();
  const body = { mode: byId('tag-mode').value, threshold: raw === '' ? null : Number(raw) };
  notice(byId('set-message'), '');
  await followTagging(current.name, () => API.startTagging(current.name, body));
}

/** Show a tag job of set `name` until it ends, then the new counts. */
async function followTagging(name, start) {
  const parts = jobParts();
  const button = byId('tag-run');
  button.disabled = true;
  try {
    const job = await start();
    const last = await API.followJob(job, (j) => {
      if (readState().set === name) showJob(parts, j); // the box belongs to the set on show
    });
    await loadSets();
    if (readState().set === name) {
      current = await API.getLabelSet(name);
      renderSetList(name);
      renderDetail(current);
      if (last.state === 'done') notice(byId('set-message'), tagSummary(last.result), 'ok');
    }
  } catch (err) {
    showJob(parts, { state: 'failed', error: err.message, progress: {} });
  } finally {
    button.disabled = false;
  }
}

/** A tag run of this set that is still going (the page was reloaded): follow it again. */
async function resumeTagging(name) {
  let jobs;
  try {
    jobs = (await API.listJobs()).jobs || [];
  } catch {
    return;
  }
  const running = jobs.find((j) => j.kind === 'tag' && j.params && j.params.label_set === name
    && (j.state === 'queued' || j.state === 'running'));
  if (running && readState().set === name && !byId('tag-run').disabled) await followTagging(name, async () => running);
}

async function removeTags() {
  if (!current) return;
  if (!window.confirm(`Remove every tag of “${current.name}”? The label set stays.`)) return;
  try {
    const data = await API.untag(current.name);
    await loadSets();
    await render();
    notice(byId('set-message'), `Removed ${fmtInt(data && data.removed)} tags.`, 'ok');
  } catch (err) {
    notice(byId('set-message'), err.message);
  }
}

async function deleteSet() {
  if (!current) return;
  if (!window.confirm(`Delete the label set “${current.name}” and its tags?`)) return;
  try {
    await API.deleteLabelSet(current.name);
    await loadSets();
    await go({ set: '', label: '', offset: 0 });
  } catch (err) {
    notice(byId('set-message'), err.message);
  }
}

function wireClose() {
  byId('label-images-close').addEventListener('click', (e) => {
    e.preventDefault();
    go({ ...readState(), label: '', offset: 0 });
  });
}

export async function init() {
  for (const id of ['create-submit', 'set-edit', 'set-delete', 'tag-run', 'untag']) byId(id).dataset.writes = '';
  byId('create-form').addEventListener('submit', submitSet);
  byId('create-cancel').addEventListener('click', resetForm);
  byId('set-file').addEventListener('change', pickFile);
  byId('set-edit').addEventListener('click', startEdit);
  byId('set-delete').addEventListener('click', deleteSet);
  byId('tag-form').addEventListener('submit', runTagging);
  byId('untag').addEventListener('click', removeTags);
  wireClose();
  window.addEventListener('popstate', () => render());
  API.getStatus().then(applyMode).catch(() => {});
  await loadSets();
  await render();
}
