// The drop page: a PIN buys a session cookie (HttpOnly: this script never
// sees it), then each batch of files is offered with LocalSend's
// prepare-upload body and every accepted file is uploaded with its own
// token, one after another, with XHR for its upload progress.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  // Files up to this size get a SHA-256 (checked by the receiver); bigger
  // ones would have to be read whole into memory first.
  const HASH_MAX = 16 << 20;
  let queue = Promise.resolve();
  let session = ''; // the session whose files are being sent, if any

  function setStatus(text) { $('status').textContent = text; }

  function showUpload() {
    $('pin-form').hidden = true;
    $('upload').hidden = false;
    $('upload-title').setAttribute('tabindex', '-1');
    $('upload-title').focus();
  }

  function showPIN(text) {
    $('upload').hidden = true;
    $('pin-form').hidden = false;
    $('pin-status').textContent = text || '';
    $('pin').focus();
  }

  async function message(resp) {
    try {
      const j = await resp.json();
      if (j && j.message) return j.message;
    } catch (e) { /* not JSON */ }
    return 'error ' + resp.status;
  }

  function fmtBytes(n) {
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
  }

  function hex(buf) {
    return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
  }

  $('pin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const status = $('pin-status');
    status.textContent = 'Checking…';
    let resp;
    try {
      resp = await fetch('/web/api/login', {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ pin: $('pin').value }),
      });
    } catch (e) {
      status.textContent = 'Could not reach the receiver.';
      return;
    }
    if (resp.status === 204) {
      $('pin').value = '';
      status.textContent = '';
      showUpload();
      return;
    }
    status.textContent = await message(resp);
    $('pin').select();
  });

  // A row of the list: name, size, progress and outcome of one file.
  function addRow(path, size) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'file-name';
    name.textContent = path;
    const info = document.createElement('span');
    info.className = 'file-info';
    info.textContent = fmtBytes(size) + ' · waiting';
    const bar = document.createElement('progress');
    bar.max = Math.max(size, 1);
    bar.value = 0;
    bar.setAttribute('aria-label', path);
    li.append(name, info, bar);
    $('list').prepend(li);
    const set = (text, cls) => {
      info.textContent = fmtBytes(size) + ' · ' + text;
      if (cls) li.className = cls;
    };
    return {
      progress(loaded) {
        bar.value = loaded;
        set(Math.floor((100 * loaded) / Math.max(size, 1)) + '%');
      },
      done() { bar.value = bar.max; set('sent', 'ok'); },
      fail(why) { set(why, 'failed'); },
      set,
    };
  }

  function upload(sid, id, token, file, row) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/web/api/upload?' + new URLSearchParams({ sessionId: sid, fileId: id, token }));
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.upload.onprogress = (ev) => row.progress(ev.loaded);
      xhr.onload = () => {
        if (xhr.status === 200) { resolve(); return; }
        let why = 'error ' + xhr.status;
        try { why = JSON.parse(xhr.responseText).message || why; } catch (e) { /* not JSON */ }
        reject(new Error(why));
      };
      xhr.onerror = () => reject(new Error('the connection was lost'));
      xhr.send(file);
    });
  }

  // Totals of every batch since the page opened: the list shows them all.
  let totalSent = 0;
  let totalOffered = 0;

  async function sendBatch(picked) {
    const rows = picked.map((p) => addRow(p.path, p.file.size));
    setStatus('Preparing ' + picked.length + (picked.length === 1 ? ' file…' : ' files…'));
    const files = {};
    for (let i = 0; i < picked.length; i++) {
      const f = picked[i].file;
      const entry = { id: String(i), fileName: picked[i].path, size: f.size, fileType: f.type || 'application/octet-stream' };
      if (f.lastModified) entry.metadata = { modified: new Date(f.lastModified).toISOString() };
      if (f.size <= HASH_MAX && window.crypto && crypto.subtle) {
        try { entry.sha256 = hex(await crypto.subtle.digest('SHA-256', await f.arrayBuffer())); } catch (e) { /* sent without */ }
      }
      files[entry.id] = entry;
    }
    const offer = { info: { alias: 'Browser', version: '2.2', deviceModel: 'web browser', deviceType: 'web', protocol: 'https' }, files };
    setStatus('Waiting for the receiver to accept…');
    let resp;
    try {
      resp = await fetch('/web/api/offer', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(offer) });
    } catch (e) {
      rows.forEach((r) => r.fail('not sent: the receiver cannot be reached'));
      setStatus('The receiver cannot be reached.');
      return;
    }
    if (resp.status === 401) {
      rows.forEach((r) => r.fail('not sent'));
      showPIN('Your session ended: enter the PIN again.');
      return;
    }
    if (!resp.ok) {
      const why = await message(resp);
      rows.forEach((r) => r.fail('refused: ' + why));
      setStatus('Refused: ' + why);
      return;
    }
    const reply = await resp.json();
    session = reply.sessionId;
    let sent = 0;
    let failed = 0;
    for (let i = 0; i < picked.length; i++) {
      const token = reply.files[String(i)];
      if (!token) {
        rows[i].fail('refused by the receiver');
        failed++;
        continue;
      }
      rows[i].set('sending');
      setStatus('Sending ' + (i + 1) + ' of ' + picked.length + ': ' + picked[i].path);
      try {
        await upload(reply.sessionId, String(i), token, picked[i].file, rows[i]);
        rows[i].done();
        sent++;
      } catch (e) {
        rows[i].fail(e.message);
        failed++;
      }
    }
    session = '';
    if (failed > 0) {
      // Ends the session at once, so that the next batch need not wait.
      fetch('/web/api/cancel?' + new URLSearchParams({ sessionId: reply.sessionId }), { method: 'POST' }).catch(() => {});
    }
    totalSent += sent;
    totalOffered += picked.length;
    setStatus('Sent ' + totalSent + ' of ' + totalOffered + (totalOffered === 1 ? ' file' : ' files') + (failed ? '; ' + failed + ' failed.' : '.'));
  }

  function enqueue(picked) {
    if (picked.length === 0) return;
    queue = queue.then(() => sendBatch(picked)).catch((e) => setStatus('Error: ' + e.message));
  }

  $('files').addEventListener('change', (ev) => {
    const picked = Array.from(ev.target.files, (f) => ({ file: f, path: f.name }));
    ev.target.value = '';
    enqueue(picked);
  });
  $('folder').addEventListener('change', (ev) => {
    const picked = Array.from(ev.target.files, (f) => ({ file: f, path: f.webkitRelativePath || f.name }));
    ev.target.value = '';
    enqueue(picked);
  });
  if (!('webkitdirectory' in document.createElement('input'))) {
    $('folder-label').hidden = true;
  }

  // Drag and drop, folders included where the browser gives entries.
  function walk(entry, out) {
    if (entry.isFile) {
      return new Promise((resolve, reject) => entry.file(resolve, reject))
        .then((f) => { out.push({ file: f, path: entry.fullPath.replace(/^\/+/, '') }); });
    }
    if (!entry.isDirectory) return Promise.resolve();
    const reader = entry.createReader();
    const more = () => new Promise((resolve, reject) => reader.readEntries(resolve, reject))
      .then(async (batch) => {
        if (batch.length === 0) return;
        for (const e of batch) await walk(e, out);
        return more();
      });
    return more();
  }

  // Leaving the page ends its session at once, rather than when the
  // receiver gives up on it: the next visit need not wait.
  window.addEventListener('pagehide', () => {
    if (session && navigator.sendBeacon) {
      navigator.sendBeacon('/web/api/cancel?' + new URLSearchParams({ sessionId: session }));
    }
  });

  const drop = $('drop');
  window.addEventListener('dragover', (ev) => ev.preventDefault());
  window.addEventListener('drop', (ev) => ev.preventDefault());
  drop.addEventListener('dragenter', () => drop.classList.add('over'));
  drop.addEventListener('dragover', () => drop.classList.add('over'));
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', async (ev) => {
    drop.classList.remove('over');
    const dt = ev.dataTransfer;
    // Entries must be taken before the first await: the items are only
    // readable during the event.
    const entries = Array.from(dt.items || [], (it) => (it.webkitGetAsEntry ? it.webkitGetAsEntry() : null)).filter(Boolean);
    if (entries.length === 0) {
      enqueue(Array.from(dt.files, (f) => ({ file: f, path: f.name })));
      return;
    }
    const picked = [];
    try {
      for (const e of entries) await walk(e, picked);
    } catch (e) {
      setStatus('Could not read what was dropped: ' + e.message);
      return;
    }
    enqueue(picked);
  });

  if (document.body.dataset.needPin === 'true') $('pin').focus();
})();
