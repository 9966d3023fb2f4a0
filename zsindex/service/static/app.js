// Entry point of every page: <body data-page="..."> says which module runs.
import { markNav } from './common.js';

const pages = {
  search: () => import('./search.js'),
  image: () => import('./image.js'),
  labels: () => import('./labels.js'),
  status: () => import('./status.js'),
  login: () => import('./login.js'),
};

async function main() {
  const page = document.body.dataset.page;
  markNav(page === 'image' ? 'search' : page);
  const load = pages[page];
  if (!load) return;
  const module = await load();
  await module.init();
}

main().catch((err) => {
  // Last resort: say something visible rather than leave a blank page.
  console.error(err);
  const box = document.createElement('p');
  box.className = 'notice';
  box.dataset.kind = 'error';
  box.setAttribute('role', 'alert');
  box.textContent = `Something went wrong: ${err && err.message ? err.message : err}`;
  (document.querySelector('main') || document.body).prepend(box);
}).finally(() => {
  // The page's controls are wired and its first view drawn (tests wait for this).
  document.documentElement.dataset.ready = 'true';
});
