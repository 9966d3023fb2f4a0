// The JSON API, as the service contract describes it. Same-origin fetches carry the
// login cookie; a 401 sends the browser to the login page.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, { method = 'GET', json, form, signal } = {}) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin', signal };
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'The server cannot be reached. Is `zsindex serve` still running?');
  }
  if (response.status === 401) {
    const here = window.location.pathname + window.location.search;
    window.location.assign(`/login?next=${encodeURIComponent(here)}`);
    throw new ApiError(401, 'Please log in.');
  }
  if (response.status === 204) return null;
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error && body.error.message ? body.error.message : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return body;
}

/** Query string from an object; arrays become repeated keys, empty values are left out. */
export function query(params) {
  const qs = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== null && v !== undefined && v !== '') qs.append(key, String(v));
    }
  }
  const s = qs.toString();
  return s ? `?${s}` : '';
}

const enc = encodeURIComponent;

export const getStatus = () => api('/api/status');
export const getFacets = () => api('/api/facets');
export const getImage = (id) => api(`/api/images/${enc(id)}`);
export const search = (params, signal) => api(`/api/search${query(params)}`, { signal });
export function searchByFile(file, params, signal) {
  const form = new FormData();
  form.append('file', file, file.name);
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== null && v !== undefined && v !== '') form.append(key, String(v));
    }
  }
  return api('/api/search', { method: 'POST', form, signal });
}
export const listLabelSets = () => api('/api/labels');
export const getLabelSet = (name) => api(`/api/labels/${enc(name)}`);
export const putLabelSet = (name, body) => api(`/api/labels/${enc(name)}`, { method: 'PUT', json: body });
export const deleteLabelSet = (name) => api(`/api/labels/${enc(name)}`, { method: 'DELETE' });
export const startTagging = (name, body) => api(`/api/labels/${enc(name)}/tag`, { method: 'POST', json: body });
export const untag = (name) => api(`/api/labels/${enc(name)}/tags`, { method: 'DELETE' });
export const labelImages = (name, params) => api(`/api/labels/${enc(name)}/images${query(params)}`);
export const startIngest = () => api('/api/ingest', { method: 'POST', json: { paths: null } });
export const listJobs = () => api('/api/jobs');
export const getJob = (id) => api(`/api/jobs/${enc(id)}`);

const FINISHED = new Set(['done', 'failed']);

/**
 * Follow a job until it is done or failed, calling onUpdate with each job snapshot.
 * Server-sent events first; if the stream breaks, poll GET /api/jobs/{id}.
 */
export function followJob(job, onUpdate) {
  return new Promise((resolve, reject) => {
    onUpdate(job);
    if (FINISHED.has(job.state)) {
      resolve(job);
      return;
    }
    let finished = false;
    const finish = (last) => {
      finished = true;
      onUpdate(last);
      resolve(last);
    };
    const poll = async () => {
      try {
        while (!finished) {
          const current = await getJob(job.id);
          if (FINISHED.has(current.state)) finish(current);
          else {
            onUpdate(current);
            await new Promise((r) => setTimeout(r, 500));
          }
        }
      } catch (err) {
        reject(err);
      }
    };
    if (!('EventSource' in window)) {
      poll();
      return;
    }
    const source = new EventSource(`/api/jobs/${enc(job.id)}/events`);
    source.onmessage = (event) => {
      let current;
      try {
        current = JSON.parse(event.data);
      } catch {
        return;
      }
      if (FINISHED.has(current.state)) {
        source.close();
        finish(current);
      } else {
        onUpdate(current);
      }
    };
    source.onerror = () => {
      // The stream ended or broke before a final event: ask directly from now on.
      source.close();
      if (!finished) poll();
    };
  });
}
