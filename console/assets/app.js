// Strata's console. Plain script, no framework, no third-party code: every
// S3 call goes to /api/s3 (the signed-in user's request, authorised by the
// server as any S3 request is), admin calls to /api/admin. Stored text is
// only ever put into the page as text (textContent), never as markup.
'use strict';

const MiB = 1024 * 1024;
const PART_BYTES = 16 * MiB;
const PAGE_KEYS = 100;
const PALETTE = ['#2456c7', '#d9480f', '#2b8a3e', '#862e9c', '#c2255c', '#0b7285', '#5f3dc4', '#e67700'];

const $ = (id) => document.getElementById(id);

// h('button', {onclick: f, class: 'x'}, 'text', child...)
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    // Through the CSSOM: the page's CSP refuses style attributes.
    else if (k === 'style') for (const [p, val] of v) el.style.setProperty(p, val);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function svgEl(tag, attrs) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

function fmtBytes(n) {
  if (n === null || n === undefined || isNaN(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}

function encodeKey(key) {
  return key.split('/').map(encodeURIComponent).join('/');
}

function query(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null) continue;
    parts.push(v === '' ? encodeURIComponent(k) : encodeURIComponent(k) + '=' + encodeURIComponent(v));
  }
  return parts.length ? '?' + parts.join('&') : '';
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(code ? `${code}: ${message || ''}` : message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, opts = {}) {
  const res = await fetch(path, {
    method,
    body: opts.body,
    headers: opts.headers || {},
    credentials: 'same-origin',
  });
  if (res.status === 401 && !opts.quiet401) {
    showLogin();
    throw new ApiError(401, null, 'Signed out');
  }
  if (!res.ok && !opts.allow?.includes(res.status)) {
    const text = await res.text();
    let code = null, message = text;
    const doc = parseXml(text);
    if (doc && doc.getElementsByTagName('Code').length) {
      code = xmlText(doc, 'Code');
      message = xmlText(doc, 'Message');
    } else {
      try { message = JSON.parse(text).error || text; } catch (_) { /* plain text */ }
    }
    throw new ApiError(res.status, code, message);
  }
  return res;
}

const s3 = (method, path, opts) => api(method, '/api/s3' + path, opts);

async function admin(method, op, body) {
  const res = await api(method, '/api/admin/' + op, {
    body: body ? JSON.stringify(body) : undefined,
    headers: body ? { 'content-type': 'application/json' } : {},
  });
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

function parseXml(text) {
  if (!text || !text.trimStart().startsWith('<')) return null;
  const doc = new DOMParser().parseFromString(text, 'application/xml');
  return doc.getElementsByTagName('parsererror').length ? null : doc;
}

function xmlText(node, tag) {
  const el = node.getElementsByTagName(tag)[0];
  return el ? el.textContent : '';
}

function children(node, tag) {
  return [...node.children].filter((c) => c.localName === tag);
}

function xmlEscape(s) {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]);
}

async function sha256Base64(text) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

// A PUT of a bucket or object setting, with the checksum S3 asks such
// requests to carry.
async function putSetting(path, body, contentType) {
  const headers = { 'content-type': contentType };
  if (window.isSecureContext && crypto.subtle) headers['x-amz-checksum-sha256'] = await sha256Base64(body);
  if (headers['x-amz-checksum-sha256']) headers['x-amz-sdk-checksum-algorithm'] = 'SHA256';
  return s3('PUT', path, { body, headers });
}

function errorLine(where) {
  return (e) => { where.textContent = e.message; where.classList.add('error'); };
}

// ---------------------------------------------------------------- session

const state = { accessKey: null, view: null, timer: null };

function showLogin() {
  clearInterval(state.timer);
  state.accessKey = null;
  $('top').hidden = true;
  $('view').replaceChildren();
  $('login').hidden = false;
  $('login-access').focus();
}

async function start() {
  $('login').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('login-error').textContent = '';
    $('login-submit').disabled = true;
    try {
      const res = await api('POST', '/api/login', {
        body: JSON.stringify({ access_key: $('login-access').value, secret_key: $('login-secret').value }),
        headers: { 'content-type': 'application/json' },
        quiet401: true,
      });
      const who = await res.json();
      $('login-secret').value = '';
      signedIn(who.access_key);
    } catch (e) {
      $('login-error').textContent = e.status === 401 ? 'Wrong access key or secret.' : e.message;
    } finally {
      $('login-submit').disabled = false;
    }
  });
  $('logout').addEventListener('click', async () => {
    await api('POST', '/api/logout', { quiet401: true }).catch(() => {});
    location.hash = '';
    showLogin();
  });
  for (const b of document.querySelectorAll('nav [data-view]')) {
    b.addEventListener('click', () => { location.hash = '#/' + b.dataset.view; });
  }
  window.addEventListener('hashchange', route);
  try {
    const res = await api('GET', '/api/session', { quiet401: true, allow: [401] });
    if (res.status === 401) return showLogin();
    signedIn((await res.json()).access_key);
  } catch (e) {
    showLogin();
  }
}

function signedIn(accessKey) {
  state.accessKey = accessKey;
  $('login').hidden = true;
  $('top').hidden = false;
  $('who').textContent = accessKey;
  route();
}

function route() {
  if (!state.accessKey) return;
  clearInterval(state.timer);
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  const view = $('view');
  view.replaceChildren();
  const run = {
    dashboard: () => viewDashboard(view),
    buckets: () => viewBuckets(view),
    users: () => viewUsers(view),
    bucket: () => viewObjects(view, decodeURIComponent(parts[1] || ''),
      decodeURIComponent(parts.slice(2).join('/'))),
    settings: () => viewBucketSettings(view, decodeURIComponent(parts[1] || '')),
  }[parts[0]] || (() => viewBuckets(view));
  run().catch((e) => view.append(h('p', { class: 'error', role: 'alert', text: e.message })));
}

// ---------------------------------------------------------------- buckets

async function listBuckets() {
  const doc = parseXml(await (await s3('GET', '/')).text());
  return [...doc.getElementsByTagName('Bucket')].map((b) => ({
    name: xmlText(b, 'Name'), created: xmlText(b, 'CreationDate'),
  }));
}

async function versioningOf(bucket) {
  try {
    const doc = parseXml(await (await s3('GET', `/${bucket}?versioning`)).text());
    return (doc && xmlText(doc, 'Status')) || 'Off';
  } catch (e) {
    return '-';
  }
}

async function viewBuckets(view) {
  const status = h('p', { class: 'muted' });
  const name = h('input', { id: 'new-bucket', placeholder: 'bucket-name', 'aria-label': 'New bucket name', required: true, pattern: '[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]' });
  const versioned = h('input', { type: 'checkbox', id: 'new-bucket-versioning' });
  const locked = h('input', { type: 'checkbox', id: 'new-bucket-lock' });
  const form = h('form', { class: 'card', id: 'create-bucket' },
    h('h2', { text: 'Create a bucket' }),
    h('div', { class: 'row' }, name,
      h('label', {}, versioned, ' versioning'),
      h('label', {}, locked, ' object lock'),
      h('button', { type: 'submit', class: 'primary', id: 'create-bucket-submit' }, 'Create')),
    status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    status.className = 'muted';
    try {
      const headers = locked.checked ? { 'x-amz-bucket-object-lock-enabled': 'true' } : {};
      await s3('PUT', '/' + name.value, { headers });
      if (versioned.checked && !locked.checked) await setVersioning(name.value, 'Enabled');
      route();
    } catch (e) { errorLine(status)(e); }
  });
  const device = h('div', { class: 'card', id: 'device-total' });
  const body = h('tbody');
  view.append(
    h('h1', { text: 'Buckets' }),
    device,
    h('div', { class: 'card table-wrap' }, h('table', { id: 'buckets' },
      h('thead', {}, h('tr', {},
        h('th', { text: 'Bucket' }), h('th', { class: 'num', text: 'Objects' }),
        h('th', { class: 'num', text: 'Size' }), h('th', { class: 'num hide-narrow', text: 'Stored' }),
        h('th', { class: 'hide-narrow', text: 'Versioning' }), h('th', { text: 'Actions' }))),
      body)),
    form);
  let buckets = [];
  const metrics = await api('GET', '/api/metrics').then((r) => r.json());
  try {
    buckets = await listBuckets();
  } catch (e) {
    body.append(h('tr', {}, h('td', { colspan: 6, class: 'error', text: `The bucket list: ${e.message}` })));
  }
  if (metrics.device) {
    const d = metrics.device;
    device.append(h('strong', { text: 'Device: ' }),
      `${fmtBytes(d.used_bytes)} used of ${fmtBytes(d.size_bytes)}, ${fmtBytes(d.free_bytes)} free. `,
      h('span', { class: 'muted', text: 'Stored sizes count each bucket\u2019s chunks once; chunks shared between buckets count in each, so buckets may add up to more than the device holds.' }));
  }
  if (!buckets.length && !body.children.length) body.append(h('tr', {}, h('td', { colspan: 6, class: 'muted', text: 'No buckets yet.' })));
  for (const b of buckets) {
    const cells = { objects: h('td', { class: 'num', text: '…' }), size: h('td', { class: 'num', text: '…' }),
      stored: h('td', { class: 'num hide-narrow', text: '…' }), versioning: h('td', { class: 'hide-narrow', text: '…' }) };
    const del = h('button', { type: 'button', class: 'danger' }, 'Delete');
    const problem = h('span', { class: 'error' });
    del.addEventListener('click', confirmThen(del, async () => {
      try { await s3('DELETE', '/' + b.name); route(); } catch (e) { errorLine(problem)(e); }
    }));
    body.append(h('tr', { 'data-bucket': b.name },
      h('td', { class: 'name' }, h('a', { href: `#/bucket/${encodeURIComponent(b.name)}/`, text: b.name })),
      cells.objects, cells.size, cells.stored, cells.versioning,
      h('td', {}, h('div', { class: 'row' },
        h('a', { class: 'button', href: `#/settings/${encodeURIComponent(b.name)}`, text: 'Settings' }), del, problem))));
    api('GET', '/api/usage/' + encodeURIComponent(b.name)).then((r) => r.json()).then((u) => {
      cells.objects.textContent = u.objects.toLocaleString();
      cells.size.textContent = fmtBytes(u.logical_bytes);
      cells.stored.textContent = fmtBytes(u.stored_bytes);
    }).catch(() => { cells.objects.textContent = cells.size.textContent = cells.stored.textContent = '-'; });
    versioningOf(b.name).then((v) => { cells.versioning.textContent = v; });
  }
}

// A button that asks to be pressed twice.
function confirmThen(button, action) {
  let armed = false;
  const label = button.textContent;
  return async () => {
    if (!armed) {
      armed = true;
      button.textContent = 'Confirm ' + label.toLowerCase();
      setTimeout(() => { armed = false; button.textContent = label; }, 5000);
      return;
    }
    armed = false;
    button.textContent = label;
    await action();
  };
}

async function setVersioning(bucket, status) {
  const body = `<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>${status}</Status></VersioningConfiguration>`;
  return putSetting(`/${bucket}?versioning`, body, 'application/xml');
}

// One bucket setting as editable text: GET shows it, Save PUTs it, Remove
// DELETEs it.
function textSetting(bucket, title, sub, placeholder, contentType) {
  const area = h('textarea', { 'aria-label': title, placeholder, id: `setting-${sub}` });
  const status = h('p', { class: 'muted' });
  const save = h('button', { type: 'button', class: 'primary' }, 'Save');
  const remove = h('button', { type: 'button', class: 'danger' }, 'Remove');
  save.addEventListener('click', async () => {
    try { await putSetting(`/${bucket}?${sub}`, area.value, contentType); status.className = 'muted'; status.textContent = 'Saved.'; } catch (e) { errorLine(status)(e); }
  });
  remove.addEventListener('click', async () => {
    try { await s3('DELETE', `/${bucket}?${sub}`); area.value = ''; status.className = 'muted'; status.textContent = 'Removed.'; } catch (e) { errorLine(status)(e); }
  });
  s3('GET', `/${bucket}?${sub}`, { allow: [404] }).then(async (r) => {
    if (r.ok) area.value = await r.text();
    else status.textContent = 'Not set.';
  }).catch(errorLine(status));
  const parts = [h('h2', { text: title }), area, h('div', { class: 'row' }, save)];
  if (sub !== 'object-lock') parts[2].append(remove);
  return h('section', { class: 'card' }, ...parts, status);
}

async function viewBucketSettings(view, bucket) {
  const status = h('p', { class: 'muted' });
  const select = h('select', { id: 'versioning-select', 'aria-label': 'Versioning' },
    h('option', { value: 'Enabled', text: 'Enabled' }), h('option', { value: 'Suspended', text: 'Suspended' }));
  const current = await versioningOf(bucket);
  if (current === 'Enabled' || current === 'Suspended') select.value = current;
  const save = h('button', { type: 'button', class: 'primary' }, 'Save');
  save.addEventListener('click', async () => {
    try { await setVersioning(bucket, select.value); status.className = 'muted'; status.textContent = 'Saved.'; } catch (e) { errorLine(status)(e); }
  });
  view.append(
    h('h1', {}, 'Settings of ', h('a', { href: `#/bucket/${encodeURIComponent(bucket)}/`, text: bucket })),
    h('section', { class: 'card' }, h('h2', { text: 'Versioning' }),
      h('p', { class: 'muted', text: `Now: ${current}` }), h('div', { class: 'row' }, select, save), status),
    textSetting(bucket, 'Object lock (XML)', 'object-lock',
      '<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>', 'application/xml'),
    textSetting(bucket, 'Lifecycle rules (XML)', 'lifecycle',
      '<LifecycleConfiguration><Rule><ID>expire</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>7</Days></Expiration></Rule></LifecycleConfiguration>', 'application/xml'),
    textSetting(bucket, 'Bucket policy (JSON)', 'policy', '{"Version": "2012-10-17", "Statement": []}', 'application/json'),
    textSetting(bucket, 'CORS (XML)', 'cors',
      '<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>', 'application/xml'),
    textSetting(bucket, 'Tags (XML)', 'tagging',
      '<Tagging><TagSet><Tag><Key>team</Key><Value>data</Value></Tag></TagSet></Tagging>', 'application/xml'));
}

// ---------------------------------------------------------------- objects

async function viewObjects(view, bucket, prefix, token) {
  const versioning = await versioningOf(bucket);
  const list = await s3('GET', '/' + bucket + query({ 'list-type': '2', delimiter: '/', prefix, 'max-keys': String(PAGE_KEYS), 'continuation-token': token }));
  const doc = parseXml(await list.text());
  const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Path' },
    h('a', { href: '#/buckets', text: 'Buckets' }), ' / ',
    h('a', { href: `#/bucket/${encodeURIComponent(bucket)}/`, text: bucket }));
  let acc = '';
  for (const part of prefix.split('/').filter(Boolean)) {
    acc += part + '/';
    crumbs.append(' / ', h('a', { href: `#/bucket/${encodeURIComponent(bucket)}/${encodeKey(acc)}`, text: part }));
  }
  const search = h('input', { id: 'prefix-search', 'aria-label': 'Search by prefix', placeholder: 'search by prefix', value: prefix });
  const searchForm = h('form', { class: 'row' }, search, h('button', { type: 'submit' }, 'Search'));
  searchForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = `#/bucket/${encodeURIComponent(bucket)}/${encodeKey(search.value)}`;
  });

  const rows = h('tbody');
  for (const p of doc.getElementsByTagName('CommonPrefixes')) {
    const full = xmlText(p, 'Prefix');
    rows.append(h('tr', { class: 'folder' },
      h('td', { class: 'name' }, h('a', { href: `#/bucket/${encodeURIComponent(bucket)}/${encodeKey(full)}`, text: full.slice(prefix.length) })),
      h('td', { class: 'num', text: 'folder' }), h('td', { class: 'hide-narrow' }), h('td')));
  }
  const details = h('div', { id: 'details' });
  for (const c of children(doc.documentElement, 'Contents')) {
    const key = xmlText(c, 'Key');
    const size = Number(xmlText(c, 'Size'));
    const href = `/api/s3/${bucket}/${encodeKey(key)}?response-content-disposition=attachment`;
    const del = h('button', { type: 'button', class: 'danger' }, versioning === 'Off' ? 'Delete' : 'Delete all versions');
    const problem = h('span', { class: 'error' });
    del.addEventListener('click', confirmThen(del, async () => {
      try { await deleteObject(bucket, key, versioning !== 'Off'); route(); } catch (e) { errorLine(problem)(e); }
    }));
    const open = h('button', { type: 'button' }, 'Details');
    open.addEventListener('click', () => showDetails(details, bucket, key, size).catch(errorLine(details)));
    rows.append(h('tr', { 'data-key': key },
      h('td', { class: 'name', text: key.slice(prefix.length) }),
      h('td', { class: 'num', text: fmtBytes(size) }),
      h('td', { class: 'hide-narrow', text: new Date(xmlText(c, 'LastModified')).toLocaleString() }),
      h('td', {}, h('div', { class: 'row' }, open, h('a', { class: 'button', href, download: key.split('/').pop(), text: 'Download' }), del, problem))));
  }
  if (!rows.children.length) rows.append(h('tr', {}, h('td', { colspan: 4, class: 'muted', text: 'Nothing here.' })));

  const pager = h('div', { class: 'row' });
  const back = state.pages && state.pages.at === `${bucket}/${prefix}` ? state.pages.tokens : [];
  if (token) {
    pager.append(h('button', { type: 'button', id: 'prev-page', onclick: () => {
      const previous = back.pop();
      view.replaceChildren();
      viewObjects(view, bucket, prefix, previous || undefined).catch(errorLine(view));
    } }, 'Previous page'));
  }
  if (xmlText(doc, 'IsTruncated') === 'true') {
    const next = xmlText(doc, 'NextContinuationToken');
    pager.append(h('button', { type: 'button', id: 'next-page', onclick: () => {
      state.pages = { at: `${bucket}/${prefix}`, tokens: [...back, token || ''] };
      view.replaceChildren();
      viewObjects(view, bucket, prefix, next).catch(errorLine(view));
    } }, 'Next page'));
  }

  view.append(h('h1', {}, crumbs), searchForm, uploader(bucket, prefix),
    h('div', { class: 'card table-wrap' }, h('table', { id: 'objects' },
      h('thead', {}, h('tr', {}, h('th', { text: 'Name' }), h('th', { class: 'num', text: 'Size' }),
        h('th', { class: 'hide-narrow', text: 'Modified' }), h('th', { text: 'Actions' }))), rows), pager),
    details);
}

async function deleteObject(bucket, key, allVersions) {
  if (!allVersions) return s3('DELETE', `/${bucket}/${encodeKey(key)}`);
  let keyMarker, versionMarker;
  for (;;) {
    const doc = parseXml(await (await s3('GET', `/${bucket}` + query({ versions: '', prefix: key, 'key-marker': keyMarker, 'version-id-marker': versionMarker }))).text());
    const all = [...children(doc.documentElement, 'Version'), ...children(doc.documentElement, 'DeleteMarker')];
    for (const v of all) {
      if (xmlText(v, 'Key') !== key) continue;
      await s3('DELETE', `/${bucket}/${encodeKey(key)}` + query({ versionId: xmlText(v, 'VersionId') }));
    }
    if (xmlText(doc, 'IsTruncated') !== 'true') return;
    keyMarker = xmlText(doc, 'NextKeyMarker');
    versionMarker = xmlText(doc, 'NextVersionIdMarker');
  }
}

// One request with upload progress; abort() cancels it.
function send(method, url, body, headers, onProgress) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.open(method, url);
    for (const [k, v] of Object.entries(headers || {})) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (ev) => onProgress && onProgress(ev.loaded);
    xhr.onload = () => (xhr.status < 300 ? resolve(xhr) : reject(new ApiError(xhr.status, xmlText(parseXml(xhr.responseText) || document, 'Code'), xhr.statusText)));
    xhr.onerror = () => reject(new Error('network error'));
    xhr.onabort = () => reject(new Error('cancelled'));
    xhr.send(body);
  });
  return { xhr, done };
}

function uploader(bucket, prefix) {
  const input = h('input', { type: 'file', id: 'upload-input', multiple: true, 'aria-label': 'Files to upload' });
  const drop = h('div', { class: 'drop', id: 'drop-zone' }, 'Drop files here, or choose them: ', input);
  const list = h('div', { id: 'uploads' });
  const go = (files) => { for (const f of files) uploadOne(list, bucket, prefix + f.name, f); };
  input.addEventListener('change', () => { go([...input.files]); input.value = ''; });
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => { ev.preventDefault(); drop.classList.remove('over'); go(ev.dataTransfer.files); });
  return h('section', { class: 'card' }, h('h2', { text: 'Upload' }), drop, list);
}

function uploadOne(list, bucket, key, file) {
  const bar = h('progress', { max: file.size || 1, value: 0, 'aria-label': `Upload of ${key}` });
  const status = h('span', { class: 'muted upload-status', text: 'uploading' });
  const cancel = h('button', { type: 'button', class: 'cancel-upload' }, 'Cancel');
  const row = h('div', { class: 'row upload', 'data-key': key }, h('span', { class: 'name', text: key }), bar, status, cancel);
  list.append(row);
  const path = `/api/s3/${bucket}/${encodeKey(key)}`;
  const type = { 'content-type': file.type || 'application/octet-stream' };
  let current = null, uploadId = null, cancelled = false;
  cancel.addEventListener('click', async () => {
    cancelled = true;
    if (current) current.xhr.abort();
    if (uploadId) await s3('DELETE', `/${bucket}/${encodeKey(key)}` + query({ uploadId })).catch(() => {});
    status.textContent = 'cancelled';
    cancel.disabled = true;
  });
  (async () => {
    if (file.size <= PART_BYTES) {
      current = send('PUT', path, file, type, (n) => { bar.value = n; });
      await current.done;
    } else {
      const created = parseXml(await (await s3('POST', `/${bucket}/${encodeKey(key)}?uploads`, { headers: type })).text());
      uploadId = xmlText(created, 'UploadId');
      const etags = [];
      for (let n = 1, at = 0; at < file.size; n++, at += PART_BYTES) {
        if (cancelled) return;
        current = send('PUT', path + query({ partNumber: String(n), uploadId }), file.slice(at, at + PART_BYTES), {}, (loaded) => { bar.value = at + loaded; });
        const xhr = await current.done;
        etags.push(`<Part><PartNumber>${n}</PartNumber><ETag>${xmlEscape(xhr.getResponseHeader('etag') || '')}</ETag></Part>`);
      }
      if (cancelled) return;
      await s3('POST', `/${bucket}/${encodeKey(key)}` + query({ uploadId }), {
        body: `<CompleteMultipartUpload>${etags.join('')}</CompleteMultipartUpload>`,
        headers: { 'content-type': 'application/xml' },
      });
    }
    bar.value = file.size;
    status.textContent = 'done';
    cancel.disabled = true;
  })().catch((e) => {
    if (!cancelled) { status.textContent = e.message; status.className = 'error upload-status'; }
  });
}

const TEXTUAL = /\.(txt|json|md|csv|log|xml|yaml|yml|toml|ini|html?|svg|js|css|py|rs|go|sh)$/i;
const IMAGE = /^image\/(png|jpeg|gif|webp|avif|bmp)$/;

async function showDetails(box, bucket, key, size) {
  box.replaceChildren(h('p', { class: 'muted', text: 'Loading…' }));
  const path = `/${bucket}/${encodeKey(key)}`;
  const head = await s3('HEAD', path);
  const type = head.headers.get('content-type') || '';
  const rows = [['Key', key], ['Size', `${fmtBytes(size)} (${size} bytes)`], ['ETag', head.headers.get('etag')],
    ['Content type', type], ['Last modified', head.headers.get('last-modified')]];
  for (const name of ['x-amz-version-id', 'x-amz-server-side-encryption', 'x-amz-object-lock-mode', 'x-amz-object-lock-retain-until-date', 'x-amz-object-lock-legal-hold']) {
    if (head.headers.get(name)) rows.push([name, head.headers.get(name)]);
  }
  for (const [name, value] of head.headers) {
    if (name.startsWith('x-amz-meta-')) rows.push([name, value]);
  }
  const tagging = await s3('GET', path + '?tagging', { allow: [403, 404] });
  if (tagging.ok) {
    const tags = [...parseXml(await tagging.text()).getElementsByTagName('Tag')].map((t) => `${xmlText(t, 'Key')}=${xmlText(t, 'Value')}`);
    rows.push(['Tags', tags.join(', ') || 'none']);
  }
  const versions = await s3('GET', `/${bucket}` + query({ versions: '', prefix: key, 'max-keys': '50' }), { allow: [403] });
  if (versions.ok) {
    const doc = parseXml(await versions.text());
    const mine = [...children(doc.documentElement, 'Version'), ...children(doc.documentElement, 'DeleteMarker')]
      .filter((v) => xmlText(v, 'Key') === key)
      .map((v) => `${xmlText(v, 'VersionId')}${v.localName === 'DeleteMarker' ? ' (delete marker)' : ''}${xmlText(v, 'IsLatest') === 'true' ? ' (latest)' : ''}`);
    if (mine.length > 1 || (mine.length === 1 && !mine[0].startsWith('null'))) rows.push(['Versions', mine.join(', ')]);
  }
  const table = h('table', {}, h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', { text: k }), h('td', { class: 'name', text: v || '' })))));

  const expiry = h('select', { id: 'share-expiry', 'aria-label': 'Link expires in' },
    h('option', { value: '3600', text: '1 hour' }), h('option', { value: '86400', text: '1 day' }), h('option', { value: '604800', text: '7 days' }));
  const link = h('p', { class: 'share', id: 'share-link' });
  const share = h('button', { type: 'button', id: 'share' }, 'Make a share link');
  share.addEventListener('click', async () => {
    try {
      const res = await api('POST', '/api/share', { body: JSON.stringify({ bucket, key, expires_s: Number(expiry.value) }), headers: { 'content-type': 'application/json' } });
      const url = (await res.json()).url;
      link.replaceChildren(h('a', { href: url, text: url, rel: 'noreferrer', target: '_blank' }));
    } catch (e) { errorLine(link)(e); }
  });

  const preview = h('div', { id: 'preview' });
  box.replaceChildren(h('section', { class: 'card' }, h('h2', { text: key }), h('div', { class: 'table-wrap' }, table),
    h('div', { class: 'row' }, expiry, share), link, preview));
  if (IMAGE.test(type) && size <= 16 * MiB) {
    const blob = await (await s3('GET', path)).blob();
    // A blob of an image type shown by <img>: no script can run in it.
    preview.append(h('img', { class: 'preview', alt: `preview of ${key}`, src: URL.createObjectURL(new Blob([blob], { type })) }));
  } else if (type.startsWith('text/') || /json|xml|svg|html|javascript/.test(type) || TEXTUAL.test(key)) {
    // Shown as text whatever it is: HTML and SVG never render here.
    const res = await s3('GET', path, { headers: { range: 'bytes=0-65535' } });
    preview.append(h('pre', { class: 'preview', text: await res.text() }));
  }
}

// ---------------------------------------------------------------- users

async function viewUsers(view) {
  const status = h('p', { class: 'muted', role: 'status' });
  const secretBox = h('div', { id: 'new-secret' });
  const showKey = (k) => secretBox.replaceChildren(h('div', { class: 'card' }, h('p', { text: 'Save this secret now: it is not shown again.' }),
    h('p', { class: 'secret' }, 'Access key: ', k.access_key), h('p', { class: 'secret' }, 'Secret key: ', k.secret_key)));
  const act = (fn) => async () => { try { const r = await fn(); if (r && r.secret_key) showKey(r); await fill(); } catch (e) { errorLine(status)(e); } };
  const [policies] = await Promise.all([admin('GET', 'policies').catch(() => [])]);
  const policyNames = ['readonly', 'readwrite', 'writeonly', 'consoleAdmin',
    ...(policies || []).map((p) => (typeof p === 'string' ? p : p.name)).filter(Boolean)];
  const uniq = [...new Set(policyNames)];
  const body = h('tbody');
  const fill = async () => {
    const users = await admin('GET', 'users');
    body.replaceChildren();
    if (!users.length) body.append(h('tr', {}, h('td', { colspan: 5, class: 'muted', text: 'No users yet.' })));
    for (const u of users) {
      const pick = h('select', { 'aria-label': `Policy for ${u.name}` }, uniq.map((p) => h('option', { value: p, text: p })));
      const keys = h('div', {}, u.access_keys.map((k) => h('div', { class: 'row' }, h('code', { text: k.access_key }),
        h('button', { type: 'button', onclick: act(() => admin('POST', 'key/rotate', { user: u.name, access_key: k.access_key })) }, 'Rotate'),
        h('button', { type: 'button', class: 'danger', onclick: act(() => admin('POST', 'key/remove', { user: u.name, access_key: k.access_key })) }, 'Remove key'))));
      const remove = h('button', { type: 'button', class: 'danger' }, 'Delete');
      remove.addEventListener('click', confirmThen(remove, act(() => admin('POST', 'user/remove', { name: u.name }))));
      body.append(h('tr', { 'data-user': u.name },
        h('td', { class: 'name', text: u.name }),
        h('td', { text: u.enabled ? 'enabled' : 'disabled' }),
        h('td', {}, h('div', {}, u.policies.map((p) => h('div', { class: 'row' }, p,
          h('button', { type: 'button', onclick: act(() => admin('POST', 'policy/detach', { user: u.name, policy: p })) }, 'Detach')))),
          h('div', { class: 'row' }, pick, h('button', { type: 'button', onclick: act(() => admin('POST', 'policy/attach', { user: u.name, policy: pick.value })) }, 'Attach'))),
        h('td', {}, keys, h('button', { type: 'button', onclick: act(() => admin('POST', 'key/add', { user: u.name })) }, 'Add key')),
        h('td', {}, h('div', { class: 'row' },
          h('button', { type: 'button', onclick: act(() => admin('POST', u.enabled ? 'user/disable' : 'user/enable', { name: u.name })) }, u.enabled ? 'Disable' : 'Enable'),
          remove))));
    }
  };
  const name = h('input', { id: 'new-user', 'aria-label': 'New user name', placeholder: 'user name', required: true });
  const policy = h('select', { id: 'new-user-policy', 'aria-label': 'Policy' }, uniq.map((p) => h('option', { value: p, text: p })));
  const form = h('form', { class: 'card' }, h('h2', { text: 'Create a user' }), h('div', { class: 'row' }, name, policy, h('button', { type: 'submit', class: 'primary' }, 'Create')));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); act(() => admin('POST', 'user', { name: name.value, policies: [policy.value] }))(); });
  view.append(h('h1', { text: 'Users and keys' }), secretBox, status,
    h('div', { class: 'card table-wrap' }, h('table', { id: 'users' }, h('thead', {}, h('tr', {},
      h('th', { text: 'User' }), h('th', { text: 'State' }), h('th', { text: 'Policies' }), h('th', { text: 'Access keys' }), h('th', { text: 'Actions' }))), body)),
    form);
  await fill();
}

// ---------------------------------------------------------------- dashboard

function chart(title, series, unit, format) {
  const W = 400, H = 160, L = 72, B = 16, T = 8;
  const all = series.flatMap((s) => s.points);
  const svg = svgEl('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, 'data-points': String(all.length) });
  const legend = h('div', { class: 'legend' });
  const box = h('figure', { class: 'card' }, h('figcaption', {}, h('strong', { text: title })), svg, legend);
  if (!all.length) {
    const t = svgEl('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' });
    t.textContent = 'no requests in the last hour';
    svg.append(t);
    return box;
  }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]), t0 + 1);
  const ymax = Math.max(...all.map((p) => p[1]), 1e-9) * 1.1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - 4);
  const y = (v) => H - B - (v / ymax) * (H - B - T);
  svg.append(svgEl('line', { class: 'axis', x1: L, y1: H - B, x2: W, y2: H - B }), svgEl('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
  for (const frac of [0, 0.5, 1]) {
    const label = svgEl('text', { x: L - 4, y: y(ymax * frac / 1.1) + 3, 'text-anchor': 'end' });
    label.textContent = format(ymax * frac / 1.1);
    svg.append(label);
  }
  const when = svgEl('text', { x: W - 4, y: H - 4, 'text-anchor': 'end' });
  const span = t1 - t0;
  when.textContent = span < 120 ? `last ${Math.round(span)} s` : `last ${Math.round(span / 60)} min`;
  svg.append(when);
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const pts = s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
    svg.append(svgEl('polyline', { points: pts, fill: 'none', stroke: color, 'stroke-width': 2, 'stroke-dasharray': s.dashed ? '4 3' : 'none', 'data-series': s.name }));
    if (s.points.length === 1) svg.append(svgEl('circle', { cx: x(s.points[0][0]), cy: y(s.points[0][1]), r: 3, fill: color }));
    legend.append(h('span', { style: [['--c', color]], text: s.name }));
  });
  svg.setAttribute('aria-label', `${title} (${unit})`);
  return box;
}

async function viewDashboard(view) {
  const draw = async () => {
    const m = await (await api('GET', '/api/metrics')).json();
    const points = m.history.points;
    const totals = {};
    for (const p of points) for (const [op, v] of Object.entries(p.operations)) totals[op] = (totals[op] || 0) + v.per_s;
    const top = Object.keys(totals).sort((a, b) => totals[b] - totals[a]).slice(0, 6);
    const seriesOf = (field) => top.map((op) => ({ name: op, points: points.filter((p) => p.operations[op]).map((p) => [p.t, p.operations[op][field]]) }));
    const rate = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
    const ms = (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1)) + ' ms';
    const perS = (v) => fmtBytes(v) + '/s';
    const d = m.device;
    const health = h('section', { class: 'card', id: 'health' }, h('h2', { text: 'Health' }),
      h('p', { text: m.ready ? 'Serving: recovery finished.' : 'Starting: recovering the index.' }));
    if (d) {
      const pause = h('button', { type: 'button', id: 'compaction-toggle' }, d.compaction_paused ? 'Resume compaction' : 'Pause compaction');
      const problem = h('span', { class: 'error' });
      pause.addEventListener('click', async () => {
        try { await admin('POST', d.compaction_paused ? 'compaction/resume' : 'compaction/pause'); await draw(); } catch (e) { errorLine(problem)(e); }
      });
      health.append(h('p', { text: `Compaction: ${d.compaction_paused ? 'paused' : 'running'}` }), h('div', { class: 'row' }, pause, problem));
    }
    const device = h('section', { class: 'card', id: 'device' }, h('h2', { text: 'Device' }));
    if (d) {
      const used = d.size_bytes ? (100 * d.used_bytes) / d.size_bytes : 0;
      device.append(h('div', { class: 'bar', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': used.toFixed(0), 'aria-label': 'device used' }, h('div', { style: [['width', `${used.toFixed(1)}%`]] })),
        h('p', { text: `${fmtBytes(d.used_bytes)} used of ${fmtBytes(d.size_bytes)}; ${fmtBytes(d.free_bytes)} free. ${d.objects.toLocaleString()} objects, ${fmtBytes(d.logical_bytes)} of data.` }));
    }
    view.replaceChildren(h('h1', { text: 'Dashboard' }),
      h('div', { class: 'charts' },
        chart('Requests per second', seriesOf('per_s'), 'requests/s', rate),
        chart('Latency p50', seriesOf('p50_ms'), 'ms', ms),
        chart('Latency p99', seriesOf('p99_ms'), 'ms', ms),
        chart('Bytes in and out', [
          { name: 'in', points: points.map((p) => [p.t, p.bytes_in_per_s]) },
          { name: 'out', points: points.map((p) => [p.t, p.bytes_out_per_s]), dashed: true }], 'bytes/s', perS)),
      h('div', { class: 'charts' }, device, health),
      h('p', { class: 'muted', text: `One point per ${m.history.interval_s} s over the last hour, kept in the server's memory.` }));
  };
  await draw();
  state.timer = setInterval(() => draw().catch(() => {}), 5000);
}

document.addEventListener('DOMContentLoaded', start);
