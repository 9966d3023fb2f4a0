// The thumbnail grid shared by search results, "more like this" and the images of a label.
import { basename, fill, fmtInt, fmtScore, h } from './dom.js';

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

/** Fill a <nav class="pager">: Previous, the page number, Next. ``count`` hits came back for a page of ``size``
 * from ``offset``; links carry real URLs (``urlFor(offset)``) and a click calls ``go(offset)``. */
export function renderPager(nav, { offset, size, more, urlFor, go }) {
  const hasPrev = offset > 0;
  const hasNext = Boolean(more); // the server fetched one result past the page
  nav.hidden = !hasPrev && !hasNext;
  const link = (rel, text, to, enabled) => h('a', {
    class: enabled ? 'button' : 'button disabled',
    rel,
    href: urlFor(to),
    'aria-disabled': String(!enabled),
    onclick: (e) => {
      e.preventDefault();
      if (enabled) go(to);
    },
  }, text);
  fill(nav, link('prev', '← Previous', Math.max(offset - size, 0), hasPrev),
    h('span', { class: 'pager-info' }, `Page ${fmtInt(Math.floor(offset / size) + 1)}`),
    link('next', 'Next →', offset + size, hasNext));
}
