// Gabe's web page: probe a URL, start downloads, follow them live. Plain ES module, no framework and
// no build step, so the service serves this file as it is and the page works offline.
//
// Data flow: GET /jobs fills the list (and tells us whether an API key is needed), GET /events (SSE)
// keeps it live; POST /probe and POST /download/(mp4) act on the form. Every string from the server is
// put in the page with textContent, never innerHTML: URLs and names are untrusted.

const KEY_STORAGE = 'gabe.apiKey';
const STATUS_RANK = { PENDING: 0, PROCESSING: 1, COMPLETED: 2, FAILED: 2, CANCELLED: 2 };
const STATUS_WORDS = {
  PENDING: 'Queued',
  PROCESSING: 'Downloading',
  COMPLETED: 'Completed',
  FAILED: 'Failed',
  CANCELLED: 'Cancelled',
};

// Plain-words versions of the service's stable error codes. Anything not here falls back to the
// server's own `detail`, which is already written for people.
const LIVE_NOTE =
  'This is a live stream: it is recorded until it ends. Cancel stops the recording and keeps what was recorded.';

const FRIENDLY_ERRORS = {
  GABE_ERR_NOT_A_PLAYLIST: 'That URL did not return an HLS playlist.',
  GABE_ERR_NOT_A_VIDEO: 'That URL did not return a video file.',
  GABE_ERR_INVALID_URL: 'That is not a valid web address: it must start with http:// or https://.',
  GABE_ERR_FORBIDDEN_DESTINATION:
    'The server is not allowed to download from that address (local and private networks are blocked).',
  GABE_ERR_NETWORK: 'The video’s server could not be reached.',
  GABE_ERR_TIMEOUT: 'The video’s server took too long to answer.',
  GABE_ERR_HTTP_STATUS: 'The video’s server refused the request.',
  GABE_ERR_TRUNCATED: 'The connection was cut before the whole video arrived.',
  GABE_ERR_TOO_MANY_REDIRECTS: 'That URL redirects too many times.',
  GABE_ERR_PROXY: 'The proxy refused or failed the connection.',
  GABE_ERR_PLAYLIST_TOO_LARGE: 'That playlist is too large to handle.',
  GABE_ERR_DRM: 'This stream is protected by DRM, so it cannot be downloaded.',
  GABE_ERR_LIVE_UNSUPPORTED: 'This is a live stream, which cannot be downloaded.',
  GABE_ERR_NO_VARIANT: 'The playlist has no quality that matches your choice.',
  GABE_ERR_KEY: 'The decryption key of this stream could not be fetched.',
  GABE_ERR_SEGMENT: 'A part of the video could not be downloaded.',
  GABE_ERR_INTEGRITY: 'The downloaded video is damaged or incomplete.',
  GABE_ERR_DISK_FULL: 'The server has run out of disk space.',
  GABE_ERR_STORAGE: 'The server could not save the file.',
  GABE_ERR_FFMPEG: 'The server could not put the video together (ffmpeg failed).',
  GABE_ERR_FFMPEG_MISSING: 'ffmpeg is not installed on the server.',
  GABE_ERR_CANCELLED: 'The download was cancelled.',
  GABE_ERR_IP_LIMIT: 'You already have as many downloads running as allowed; wait for one to finish.',
  GABE_ERR_KEY_LIMIT:
    'This API key already has as many downloads running as allowed; wait for one to finish.',
  GABE_ERR_RATE_LIMITED: 'Too many requests in a short time; wait a moment and try again.',
  GABE_ERR_QUEUE_FULL: 'The server’s queue is full; try again in a minute.',
  GABE_ERR_SHUTTING_DOWN: 'The server is restarting; try again shortly.',
  GABE_ERR_JOB_NOT_FOUND: 'That download no longer exists.',
  GABE_ERR_BODY_TOO_LARGE: 'The request is too large.',
  GABE_ERR_NOT_IMPLEMENTED: 'The server does not support this yet.',
  GABE_ERR_INTERNAL: 'Something went wrong on the server.',
};

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const els = {
  form: /** @type {HTMLFormElement} */ ($('download-form')),
  url: /** @type {HTMLInputElement} */ ($('url')),
  name: /** @type {HTMLInputElement} */ ($('video-name')),
  probeBtn: $('probe-btn'),
  downloadBtn: $('download-btn'),
  probeResult: $('probe-result'),
  formMsg: $('form-msg'),
  jobs: $('jobs'),
  jobsEmpty: $('jobs-empty'),
  jobsHeading: $('jobs-h'),
  refreshBtn: $('refresh-btn'),
  live: $('live-status'),
  settings: /** @type {HTMLDetailsElement} */ ($('settings')),
  settingsForm: /** @type {HTMLFormElement} */ ($('settings-form')),
  key: /** @type {HTMLInputElement} */ ($('api-key')),
  settingsMsg: $('settings-msg'),
  announcer: $('announcer'),
};

const state = {
  key: readStoredKey(),
  /** The last successful probe: { url, result }. Only used while the URL field still holds `url`. */
  probe: null,
  busy: false,
  /** job_id -> { job, card } */
  jobs: new Map(),
  /** @type {EventSource | null} */
  events: null,
  retryTimer: 0,
};

// ---------------------------------------------------------------------------------------------
// API access

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function readStoredKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) ?? '';
  } catch {
    return ''; // storage disabled (private mode, file policy): the key lives for this page only
  }
}

/** URLs the browser fetches on its own (EventSource, links) cannot send headers: the key goes in the query. */
function withKey(path) {
  if (!state.key) return path;
  return `${path}${path.includes('?') ? '&' : '?'}api_key=${encodeURIComponent(state.key)}`;
}

/** `detail` is a sentence, or FastAPI-style field errors for a 422. */
function detailText(detail) {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => {
        const field = Array.isArray(d?.loc) ? d.loc.filter((p) => p !== 'body').join('.') : '';
        return field ? `${field}: ${d?.msg ?? 'invalid'}` : (d?.msg ?? 'invalid');
      })
      .join('; ');
  }
  return '';
}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (state.key) headers['x-api-key'] = state.key;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, null, 'The Gabe server could not be reached. Is it running?');
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // A proxy's HTML error page, say: fall back to the status line below.
  }
  if (!res.ok) {
    const detail = detailText(data?.detail) || `${res.status} ${res.statusText}`.trim();
    throw new ApiError(res.status, typeof data?.code === 'string' ? data.code : null, detail);
  }
  return data;
}

/** One sentence for people, plus the server's own words when they add something. */
function explain(code, detail) {
  const friendly = code ? FRIENDLY_ERRORS[code] : undefined;
  if (!friendly) return { text: detail || 'Something went wrong.', more: '' };
  return { text: friendly, more: detail && detail !== friendly ? detail : '' };
}

// ---------------------------------------------------------------------------------------------
// Formatting

function formatBytes(n) {
  if (n == null || !Number.isFinite(n)) return '';
  // Binary units, like the API's file_size_mb, so the page and the API agree on "MB".
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function formatDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const formatBitrate = (bps) => (bps ? `${(bps / 1e6).toFixed(bps < 1e6 ? 2 : 1)} Mbit/s` : '');

function jobName(job) {
  if (job.video_name) return job.video_name;
  try {
    return decodeURIComponent(new URL(job.original_url).pathname.split('/').pop() || '') || job.original_url;
  } catch {
    return job.original_url || job.job_id;
  }
}

// ---------------------------------------------------------------------------------------------
// Messages and the API key prompt

/** A message, and optionally the server's own words below it in smaller print. */
function say(el, text, kind = 'info', more = '') {
  el.replaceChildren(text, more ? elt('small', { text: more }) : '');
  el.dataset.kind = kind;
}

function announce(text) {
  // Clearing first makes screen readers repeat an identical message.
  els.announcer.textContent = '';
  setTimeout(() => {
    els.announcer.textContent = text;
  }, 50);
}

/** A 401: open the settings with a clear request for a key. `focus` only after a user action. */
function askForKey(focus) {
  const text = state.key
    ? 'The saved API key was refused. Check it, then press Save.'
    : 'This server needs an API key. Enter it under Settings and press Save.';
  els.settings.open = true;
  say(els.settingsMsg, text, 'error');
  if (focus) {
    // After a click on Probe or Download the eyes are on the form: say it there too.
    say(els.formMsg, text, 'error');
    els.key.focus();
    els.key.scrollIntoView({ block: 'center' });
  }
}

function handleError(err, where, focusKey = true) {
  if (err instanceof ApiError && err.status === 401) {
    askForKey(focusKey);
    return;
  }
  const { text, more } =
    err instanceof ApiError ? explain(err.code, err.message) : explain(null, String(err));
  say(where, text, 'error', more);
}

// ---------------------------------------------------------------------------------------------
// Probe

function currentUrl() {
  return els.url.value.trim();
}

function checkUrlField() {
  const url = currentUrl();
  if (!url) {
    say(els.formMsg, 'Paste the URL of a video or an HLS playlist first.', 'error');
    els.url.setAttribute('aria-invalid', 'true');
    els.url.focus();
    return null;
  }
  if (!/^https?:\/\//i.test(url)) {
    say(els.formMsg, FRIENDLY_ERRORS.GABE_ERR_INVALID_URL, 'error');
    els.url.setAttribute('aria-invalid', 'true');
    els.url.focus();
    return null;
  }
  els.url.removeAttribute('aria-invalid');
  return url;
}

/** Runs `fn` with the form marked busy; buttons stay focusable (disabling them would drop focus). */
async function busy(fn) {
  if (state.busy) return;
  state.busy = true;
  els.form.setAttribute('aria-busy', 'true');
  for (const b of [els.probeBtn, els.downloadBtn]) b.setAttribute('aria-disabled', 'true');
  try {
    await fn();
  } finally {
    state.busy = false;
    els.form.removeAttribute('aria-busy');
    for (const b of [els.probeBtn, els.downloadBtn]) b.removeAttribute('aria-disabled');
  }
}

async function probe(url) {
  say(els.formMsg, 'Probing…');
  try {
    const result = await api('/probe', { method: 'POST', body: { url } });
    state.probe = { url, result };
    renderProbe(result);
    const n = result.variants.length;
    say(
      els.formMsg,
      result.kind === 'mp4'
        ? 'Found an MP4 file. Press Download to save it.'
        : n > 0
          ? `Found ${n} ${n === 1 ? 'quality' : 'qualities'}. Choose one, then press Download.`
          : 'Found a single-quality stream. Press Download to save it.',
      'ok',
    );
    return result;
  } catch (err) {
    clearProbe();
    handleError(err, els.formMsg);
    return null;
  }
}

function clearProbe() {
  state.probe = null;
  els.probeResult.replaceChildren();
  els.probeResult.hidden = true;
}

function elt(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k in node && typeof v !== 'string') node[k] = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function fact(term, value) {
  return value === '' || value == null
    ? null
    : elt('div', {}, elt('dt', { text: term }), elt('dd', { text: value }));
}

const KIND_WORDS = { master: 'HLS playlist with several qualities', media: 'HLS playlist', mp4: 'MP4 file' };

function renderProbe(r) {
  const parts = [elt('h3', { text: 'What this URL holds' })];
  const facts = elt(
    'dl',
    { class: 'facts' },
    fact('Type', KIND_WORDS[r.kind] ?? r.kind),
    fact('Duration', formatDuration(r.duration_seconds)),
    r.kind === 'mp4' ? null : fact('Live', r.live ? 'yes' : 'no'),
    r.kind === 'mp4' ? null : fact('Encrypted', r.encrypted ? (r.encryption ?? 'yes') : 'no'),
    r.mp4 ? fact('Size', r.mp4.size_bytes == null ? 'unknown' : formatBytes(r.mp4.size_bytes)) : null,
    r.mp4 ? fact('Resumable', r.mp4.accepts_ranges ? 'yes (the server supports ranges)' : 'no') : null,
    r.mp4?.content_type ? fact('Content type', r.mp4.content_type) : null,
  );
  parts.push(facts);

  if (r.encrypted && r.encryption && r.encryption !== 'AES-128') {
    parts.push(
      elt('p', { class: 'warning', text: `Protected by ${r.encryption}: ${FRIENDLY_ERRORS.GABE_ERR_DRM}` }),
    );
  }
  if (r.live) parts.push(elt('p', { class: 'warning', text: LIVE_NOTE }));

  if (r.variants.length > 0) parts.push(renderQualities(r.variants));
  if (r.audio.length > 0) parts.push(renderRenditions('Audio tracks', r.audio));
  if (r.subtitles.length > 0) parts.push(renderRenditions('Subtitles', r.subtitles));

  els.probeResult.replaceChildren(...parts);
  els.probeResult.hidden = false;
}

function renderQualities(variants) {
  // Best first, under "Auto (best)": the order people scan a quality menu in.
  const sorted = [...variants].sort((a, b) => (b.bandwidth ?? 0) - (a.bandwidth ?? 0));
  const field = elt('fieldset', { class: 'quality' }, elt('legend', { text: 'Quality' }));
  field.append(choice('', 'Auto (best)', [], true, false));
  for (const v of sorted) {
    const height = v.resolution ? v.resolution.split('x')[1] : null;
    const details = [
      formatBitrate(v.average_bandwidth ?? v.bandwidth),
      v.estimated_size_bytes ? `about ${formatBytes(v.estimated_size_bytes)}` : '',
      v.frame_rate ? `${Math.round(v.frame_rate * 100) / 100} fps` : '',
    ].filter(Boolean);
    // The API chooses by resolution; a variant without one (audio only) cannot be asked for by name.
    const label = v.resolution ? `${height}p (${v.resolution})` : `Variant ${v.id + 1} (no resolution)`;
    field.append(choice(v.resolution ?? '', label, details, false, !v.resolution, `variant-${v.id}`));
  }
  return field;
}

function choice(value, label, details, checked, disabled, id = 'variant-auto') {
  const input = elt('input', { type: 'radio', name: 'quality', id, value, checked, disabled });
  return elt(
    'label',
    { class: 'choice', for: id },
    input,
    elt('span', { class: 'choice-label', text: label }),
    details.length ? elt('span', { class: 'choice-details', text: details.join(' · ') }) : null,
  );
}

function renderRenditions(title, list) {
  return elt(
    'div',
    { class: 'renditions' },
    elt('h4', { text: title }),
    elt(
      'ul',
      {},
      ...list.map((r) =>
        elt('li', {
          text: [r.name, r.language ? `(${r.language})` : '', r.default ? '· default' : '']
            .filter(Boolean)
            .join(' '),
        }),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Download

async function download() {
  const url = checkUrlField();
  if (!url) return;
  // Which endpoint to use depends on what the URL is, so a Download without a Probe probes first.
  let result = state.probe?.url === url ? state.probe.result : null;
  if (!result) {
    result = await probe(url);
    if (!result) return;
  }
  const videoName = els.name.value.trim();
  const body = { url };
  if (videoName) body.video_name = videoName;
  let path = '/download/mp4';
  if (result.kind !== 'mp4') {
    path = '/download/';
    const picked = /** @type {HTMLInputElement | null} */ (
      els.form.querySelector('input[name="quality"]:checked')
    );
    if (picked?.value) body.resolution = picked.value;
  }
  say(els.formMsg, 'Starting the download…');
  try {
    const job = await api(path, { method: 'POST', body });
    upsertJob(job, false);
    say(els.formMsg, `Download started: “${jobName(job)}”. Follow it under Downloads.`, 'ok');
  } catch (err) {
    handleError(err, els.formMsg);
  }
}

// ---------------------------------------------------------------------------------------------
// Jobs list

/** Keeps the further-along copy: an SSE event and a GET /jobs answer may arrive in either order. */
function newer(incoming, existing) {
  if (!existing) return true;
  const a = STATUS_RANK[incoming.status] ?? 0;
  const b = STATUS_RANK[existing.status] ?? 0;
  if (a !== b) return a > b;
  if (a === 2) return true;
  return incoming.downloaded_bytes >= existing.downloaded_bytes;
}

function upsertJob(job, live = true) {
  const entry = state.jobs.get(job.job_id);
  if (entry && !newer(job, entry.job)) return;
  const before = entry?.job.status;
  if (entry) {
    entry.job = job;
    updateCard(entry);
  } else {
    const created = { job, card: makeCard(job) };
    state.jobs.set(job.job_id, created);
    updateCard(created);
    placeCards();
  }
  if (live && before && before !== job.status) {
    if (job.status === 'COMPLETED') announce(`“${jobName(job)}” has finished downloading.`);
    if (job.status === 'FAILED')
      announce(`“${jobName(job)}” failed: ${explain(job.error_code, job.error).text}`);
  }
}

function removeJob(id) {
  const entry = state.jobs.get(id);
  if (!entry) return;
  entry.card.remove();
  state.jobs.delete(id);
  els.jobsEmpty.hidden = state.jobs.size > 0;
}

/** Newest first. Only misplaced cards move: moving a card that holds focus would drop the focus. */
function placeCards() {
  const ordered = [...state.jobs.values()].sort((a, b) => b.job.created_at.localeCompare(a.job.created_at));
  ordered.forEach(({ card }, i) => {
    if (els.jobs.children[i] !== card) els.jobs.insertBefore(card, els.jobs.children[i] ?? null);
  });
  els.jobsEmpty.hidden = state.jobs.size > 0;
}

function makeCard(job) {
  const id = job.job_id;
  const titleId = `job-${id}-name`;
  const card = elt('li', { class: 'job', 'data-job-id': id, 'aria-labelledby': titleId });
  const head = elt(
    'div',
    { class: 'job-head' },
    elt('h3', { class: 'job-name', id: titleId }),
    elt('span', { class: 'badge' }),
  );
  const url = elt('p', { class: 'job-url' });
  // The poster frame of a finished job submitted with thumbnail: true; hidden until there is one.
  const poster = elt('img', { class: 'job-poster', alt: '', hidden: '' });
  const progress = elt('progress', { max: 100, class: 'job-progress' });
  const stats = elt('p', { class: 'job-stats' });
  const error = elt('p', { class: 'job-error' });
  const actions = elt('div', { class: 'job-actions' });
  card.append(head, url, poster, progress, stats, error, actions);
  return card;
}

function statsText(job) {
  const parts = [];
  if (job.status === 'PENDING') return 'Waiting in the queue…';
  if (job.status === 'COMPLETED' && job.result) {
    const r = job.result;
    if (r.resolution) parts.push(r.resolution);
    parts.push(formatBytes(r.file_size_bytes));
    if (r.duration_seconds) parts.push(formatDuration(r.duration_seconds));
    if (r.segment_count) parts.push(`${r.segment_count} segments`);
    return parts.filter(Boolean).join(' · ');
  }
  if (job.total_segments > 0) parts.push(`${job.downloaded_segments}/${job.total_segments} segments`);
  if (job.total_bytes) parts.push(`${formatBytes(job.downloaded_bytes)} of ${formatBytes(job.total_bytes)}`);
  else parts.push(formatBytes(job.downloaded_bytes));
  if (job.status === 'PROCESSING') {
    if (job.speed_bps > 0) parts.push(`${formatBytes(job.speed_bps)}/s`);
    if (job.eta_seconds != null) parts.push(`ETA ${formatDuration(job.eta_seconds)}`);
  }
  return parts.filter(Boolean).join(' · ');
}

function updateCard(entry) {
  const { job, card } = entry;
  const name = jobName(job);
  const [head, url, poster, progress, stats, error, actions] = card.children;
  card.dataset.status = job.status;
  head.querySelector('.job-name').textContent = name;
  const badge = head.querySelector('.badge');
  badge.textContent = STATUS_WORDS[job.status] ?? job.status;
  badge.dataset.status = job.status;
  url.textContent = job.original_url;
  url.title = job.original_url;
  renderPoster(/** @type {HTMLImageElement} */ (poster), job, name);

  const p = /** @type {HTMLProgressElement} */ (progress);
  p.setAttribute('aria-label', `Progress of ${name}`);
  if (job.status === 'PENDING') {
    p.removeAttribute('value'); // indeterminate: nothing to measure yet
  } else {
    p.value = job.status === 'COMPLETED' ? 100 : Math.max(0, Math.min(100, job.progress ?? 0));
  }
  // A failed or cancelled job keeps its bar where it stopped, greyed, so it does not read as done.
  const stopped = job.status === 'FAILED' || job.status === 'CANCELLED';
  p.classList.toggle('stopped', stopped);
  stats.textContent =
    stopped && job.downloaded_bytes > 0 ? `Stopped after ${statsText(job)}` : statsText(job);

  if (job.status === 'FAILED' || (job.status === 'CANCELLED' && job.error)) {
    const { text, more } = explain(job.error_code, job.error);
    error.replaceChildren(elt('span', { text }), more ? elt('small', { text: more }) : null);
    error.classList.remove('note');
    error.hidden = false;
  } else if (job.status === 'COMPLETED' && job.result?.warnings?.length) {
    // A complete file with something to know about it (frames lost in transport, EXTINF far off).
    error.replaceChildren(...job.result.warnings.map((w) => elt('small', { text: `Note: ${w}` })));
    error.classList.add('note');
    error.hidden = false;
  } else {
    error.replaceChildren();
    error.hidden = true;
  }
  renderActions(actions, job, name);
}

function renderPoster(img, job, name) {
  const has = job.status === 'COMPLETED' && Boolean(job.result?.thumbnail_path);
  img.hidden = !has;
  if (!has) return;
  const src = withKey(`/job/${encodeURIComponent(job.job_id)}/thumbnail`);
  // Set once: every progress update would otherwise fetch the picture again.
  if (img.getAttribute('src') !== src) img.setAttribute('src', src);
  img.alt = `Poster frame of ${name}`;
}

function renderActions(actions, job, name) {
  const final = STATUS_RANK[job.status] === 2;
  // Rebuild only when the set of actions changes, so a focused button keeps its focus during progress.
  const signature = `${job.status === 'COMPLETED'}|${final}`;
  if (actions.dataset.signature === signature) return;
  actions.dataset.signature = signature;
  const hadFocus = actions.contains(document.activeElement);
  const nodes = [];
  if (job.status === 'COMPLETED') {
    nodes.push(
      elt('a', {
        class: 'button primary small',
        href: withKey(`/job/${encodeURIComponent(job.job_id)}/file`),
        download: '',
        text: 'Download file',
        'aria-label': `Download file ${name}`,
      }),
    );
  }
  const btn = elt('button', {
    type: 'button',
    class: final ? 'secondary small' : 'danger small',
    text: final ? 'Delete' : 'Cancel',
    'aria-label': `${final ? 'Delete' : 'Cancel'} ${name}`,
  });
  btn.addEventListener('click', () => (final ? deleteJob(job.job_id) : cancelJob(job.job_id)));
  nodes.push(btn);
  actions.replaceChildren(...nodes);
  if (hadFocus) /** @type {HTMLElement} */ (nodes[0]).focus();
}

async function cancelJob(id) {
  try {
    const job = await api(`/job/${encodeURIComponent(id)}`, { method: 'DELETE' });
    upsertJob(job);
    announce(`“${jobName(job)}” was cancelled.`);
  } catch (err) {
    handleError(err, els.formMsg);
  }
}

async function deleteJob(id) {
  const entry = state.jobs.get(id);
  if (!entry) return;
  const name = jobName(entry.job);
  const what = entry.job.status === 'COMPLETED' ? `Delete “${name}” and its file from the server?` : null;
  if (what && !window.confirm(what)) return;
  try {
    await api(`/job/${encodeURIComponent(id)}`, { method: 'DELETE' });
  } catch (err) {
    // Already gone is what we wanted.
    if (!(err instanceof ApiError && err.code === 'GABE_ERR_JOB_NOT_FOUND')) {
      handleError(err, els.formMsg);
      return;
    }
  }
  removeJob(id);
  announce(`“${name}” was deleted.`);
  els.jobsHeading.focus(); // the button that had focus is gone: land somewhere predictable
}

/** GET /jobs; true when it worked. A 401 here is how the page learns that a key is needed. */
async function refreshJobs(focusKey = false) {
  try {
    const data = await api('/jobs?limit=50');
    const seen = new Set();
    for (const job of data.jobs) {
      seen.add(job.job_id);
      upsertJob(job, false);
    }
    // Jobs deleted elsewhere (or cleaned up by age) leave the list; recent ones beyond the page stay.
    const oldest = data.jobs.at(-1)?.created_at ?? '';
    for (const [id, { job }] of state.jobs) {
      if (!seen.has(id) && (data.jobs.length < data.limit || job.created_at >= oldest)) removeJob(id);
    }
    return true;
  } catch (err) {
    handleError(err, els.formMsg, focusKey);
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Live updates (Server-Sent Events)

const LIVE_WORDS = {
  on: 'Live',
  reconnecting: 'Reconnecting…',
  off: 'Live updates unavailable: refreshing every few seconds',
};

function setLive(mode) {
  els.live.dataset.live = mode;
  els.live.textContent = LIVE_WORDS[mode];
}

function connectEvents() {
  clearTimeout(state.retryTimer);
  state.events?.close();
  const es = new EventSource(withKey('/events'));
  state.events = es;
  es.addEventListener('job', (e) => {
    try {
      upsertJob(JSON.parse(/** @type {MessageEvent} */ (e).data));
    } catch {
      // A malformed event must not stop the stream.
    }
  });
  // On every (re)connection re-read the list: the stream only replays running jobs, so a job that
  // finished while we were not listening would otherwise look stuck.
  es.addEventListener('open', () => {
    setLive('on');
    void refreshJobs();
  });
  es.addEventListener('error', () => {
    if (state.events !== es) return;
    // CONNECTING: the browser retries by itself. CLOSED: the server refused the stream (a 401, say),
    // which EventSource never retries; check with GET /jobs (it shows the key prompt) and try later.
    // Until then the list is re-read every few seconds, so progress still moves, only less smoothly.
    if (es.readyState !== EventSource.CLOSED) {
      setLive('reconnecting');
      return;
    }
    setLive('off');
    state.events = null;
    state.retryTimer = window.setTimeout(() => {
      void refreshJobs().then((ok) => ok && connectEvents());
    }, 5000);
  });
}

async function start() {
  if (await refreshJobs()) connectEvents();
}

// ---------------------------------------------------------------------------------------------
// Wiring

els.key.value = state.key;

els.url.addEventListener('input', () => {
  els.url.removeAttribute('aria-invalid');
  if (state.probe && state.probe.url !== currentUrl()) clearProbe();
});

// Enter in the URL field probes a new URL, and downloads one already probed: paste, Enter to see the
// qualities, Enter again (or pick one and press Download) to start.
els.url.addEventListener('keydown', (e) => {
  if (e.key !== 'Enter' || e.isComposing) return;
  e.preventDefault();
  const url = currentUrl();
  if (state.probe?.url === url && url) els.form.requestSubmit(els.downloadBtn);
  else els.probeBtn.click();
});

els.probeBtn.addEventListener('click', () => {
  if (state.busy) return;
  const url = checkUrlField();
  if (url) void busy(() => probe(url));
});

els.form.addEventListener('submit', (e) => {
  e.preventDefault();
  void busy(download);
});

els.refreshBtn.addEventListener('click', () => {
  void refreshJobs(true).then((ok) => ok && !state.events && connectEvents());
});

els.settingsForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  state.key = els.key.value.trim();
  try {
    if (state.key) localStorage.setItem(KEY_STORAGE, state.key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Not persisted, but still used for this page.
  }
  say(els.settingsMsg, state.key ? 'Saved. Checking the key…' : 'Key forgotten.');
  if (await refreshJobs(true)) {
    say(els.settingsMsg, state.key ? 'Saved. The key works.' : 'Key forgotten.', 'ok');
    if (els.formMsg.dataset.kind === 'error') say(els.formMsg, '');
    // Links and the event stream carry the key in their URL: rebuild them with the new one.
    for (const entry of state.jobs.values()) {
      delete entry.card.children[5].dataset.signature;
      updateCard(entry);
    }
    connectEvents();
  }
});

void start();
