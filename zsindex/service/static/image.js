// The image page: the large image, its metadata and tags, and "more like this".
import * as API from './api.js';
import { recallBack } from './common.js';
import { basename, byId, fill, fmtBytes, fmtDate, fmtInt, fmtScore, h, notice } from './dom.js';
import { renderGrid } from './grid.js';

const MORE = 12;

function imageId() {
  const match = window.location.pathname.match(/^\/image\/(\d+)\/?$/);
  return match ? match[1] : null;
}

function metaRows(img) {
  const rows = [
    ['Dimensions', img.width && img.height ? `${fmtInt(img.width)} × ${fmtInt(img.height)} px` : '–'],
    ['Taken', fmtDate(img.taken)],
    ['Format', img.format ? String(img.format).toUpperCase() : '–'],
    ['Camera', img.camera || '–'],
    ['File size', fmtBytes(img.size)],
    ['Image id', String(img.id)],
  ];
  return rows.map(([key, value]) => [h('dt', {}, key), h('dd', {}, value)]);
}

function tagItems(tags) {
  if (!tags || !tags.length) {
    return [h('li', { class: 'muted small' }, 'No tags. Run tagging from the ', h('a', { href: '/labels' }, 'Labels'), ' page.')];
  }
  return [...tags].sort((a, b) => b.score - a.score).map((t) => {
    const meter = h('meter', { min: 0, max: 1, value: Math.max(0, Math.min(1, t.score)), title: fmtScore(t.score) });
    const href = `/labels?set=${encodeURIComponent(t.set)}&label=${encodeURIComponent(t.label)}`;
    return h('li', { class: 'tag-score' },
      h('a', { href, class: 'tag-name', title: `Images tagged ${t.label}` }, t.label),
      h('span', { class: 'tag-set muted small' }, t.set),
      meter,
      h('span', { class: 'tag-value' }, fmtScore(t.score)));
  });
}

function showImage(img) {
  const name = basename(img.path);
  document.title = `${name} · zsindex`;
  byId('image-title').textContent = name;
  byId('image-path').textContent = img.path;
  byId('image-path').hidden = img.path === name;
  const large = byId('image-large');
  large.alt = name;
  large.src = `/api/images/${encodeURIComponent(img.id)}/thumbnail?size=1024`;
  if (img.width && img.height) {
    large.width = img.width;
    large.height = img.height;
  }
  const file = img.file || `/api/images/${encodeURIComponent(img.id)}/file`;
  byId('image-link').href = file;
  byId('original-link').href = file;
  byId('similar-link').href = `/?like=${encodeURIComponent(img.id)}`;
  byId('more-all').href = `/?like=${encodeURIComponent(img.id)}`;
  fill(byId('image-meta'), metaRows(img));
  fill(byId('image-tags'), tagItems(img.tags));
  byId('image-view').hidden = false;
}

async function showMore(id) {
  const section = byId('more-section');
  const list = byId('more-results');
  try {
    const data = await API.search({ like: id, k: MORE + 1 });
    const hits = (data.results || []).filter((hit) => String(hit.id) !== String(id)).slice(0, MORE);
    renderGrid(list, hits);
    if (!hits.length) fill(list, h('li', { class: 'muted' }, 'No other images yet.'));
  } catch (err) {
    fill(list, h('li', { class: 'notice', dataset: { kind: 'error' } }, err.message));
  }
  section.hidden = false;
}

export async function init() {
  const back = byId('back-link');
  const target = recallBack(); // the very search or label listing that led here
  back.href = target.href;
  back.textContent = `← ${target.text}`;
  const id = imageId();
  if (!id) {
    notice(byId('image-error'), 'This address names no image.');
    return;
  }
  try {
    showImage(await API.getImage(id));
  } catch (err) {
    notice(byId('image-error'), err.status === 404 ? `There is no image #${id} in the index.` : err.message);
    return;
  }
  await showMore(id);
}
