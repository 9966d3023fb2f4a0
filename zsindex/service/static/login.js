// The login page works without script; this only explains a refused token.
import { byId } from './dom.js';

export function init() {
  const params = new URLSearchParams(window.location.search);
  if (params.has('error')) byId('login-error').hidden = false;
  // Where to go after logging in: only a path on this server (the server checks it too).
  const next = params.get('next');
  if (next && next.startsWith('/') && !next.startsWith('//')) byId('next').value = next;
  byId('token').focus();
}
