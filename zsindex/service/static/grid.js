// The thumbnail grid shared by search results, "more like this" and the images of a label.
import { basename, fill, fmtScore, h } from './dom.js';

function tile(hit, { showScore }) {
  const name = basename(hit.path);
  const src = hit.thumbnail || `/api/images/${encodeURIComponent(hit.id)}/thumbnail?size=256`;
  // Sharp on high-density screens: the 512 px thumbnail where a CSS pixel is two device pixels.
  const sharp = src.includes('size=256') ? `${src.replace('size=256', 'size=512')} 2x` : null;
  const img = h('img', {
    src,
    srcset: sharp ? `${src} 1x, ${sharp}` : null,
    alt: name,
    loading: 'lazy',
    decoding: 'async',
    width: 256,
    height: 256,
  });
  img.addEventListener('error', () => img.classList.add('broken'), { once: true });
  return h(
    'li',
    { class: 'tile', dataset: { id: String(hit.id), path: String(hit.path) } },
    h(
      'a',
      { class: 'tile-link', href: `/image/${encodeURIComponent(hit.id)}`, title: hit.path },
      h('span', { class: 'tile-thumb' }, img),
      h(
        'span',
        { class: 'tile-caption' },
        h('span', { class: 'tile-name' }, name),
        showScore && typeof hit.score === 'number' ? h('span', { class: 'tile-score' }, fmtScore(hit.score)) : null,
      ),
    ),
    h('a', { class: 'tile-similar', href: `/?like=${encodeURIComponent(hit.id)}`, title: 'Find similar images' }, 'Similar'),
  );
}

/** Render hits into a <ul class="grid">. */
export function renderGrid(list, hits, { showScore = true } = {}) {
  fill(list, hits.map((hit) => tile(hit, { showScore })));
}
