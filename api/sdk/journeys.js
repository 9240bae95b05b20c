/*! journeys.js: events to journeys and its live in-app messages (docs/browser-sdk.md).
 * No dependencies, no build step: ES2017 as written.
 *
 * Calls are Segment calls, batched to POST /v1/batch, kept in localStorage until stored and
 * retried with the same messageIds (the server drops repeats). In-app messages come over
 * Server-Sent Events (polling when that fails) and are drawn with textContent only, styled by
 * journeys.css and positioned through the CSSOM: a strict Content-Security-Policy allows it all.
 */
(() => {
  'use strict';
  const VERSION = '1.0.0';
  const BATCH = 20; // calls per request, and the queue length that sends at once
  const KEEP = 500; // calls kept while the API is out of reach; the oldest go first
  const CALL_BYTES = 32000; // the API refuses a call over 32 KB, and its whole batch with it
  const KEEPALIVE_BYTES = 60000; // browsers refuse keepalive bodies over 64 KB in all
  const QUEUE = 'journeys:queue', ANON = 'journeys:anonymousId', SHOWN = 'journeys:shown';
  const FOCUSABLE = 'a[href],button:not([disabled]),input,select,textarea,[tabindex]';
  const doc = document;
  const listeners = { message: [], shown: [] };
  let cfg = null, queue = [], sending = false, timer = null, failures = 0;
  let live = null; // {stop} of the stream or the poller
  let css = null; // resolves once journeys.css has loaded (or failed to)
  const open = []; // messages on screen, newest last: {id, modal, close}
  const modals = []; // modals waiting for the one on screen

  const load = (key, fallback, where = 'localStorage') => {
    try { return JSON.parse(window[where].getItem(key)) || fallback; } catch (e) { return fallback; }
  };
  const save = (key, value, where = 'localStorage') => {
    try { window[where].setItem(key, JSON.stringify(value)); } catch (e) { /* full, or off */ }
  };
  const shown = new Set(load(SHOWN, [], 'sessionStorage'));
  const warn = (text) => console.warn('journeys: ' + text);
  const need = () => {
    if (!cfg) throw new Error('journeys: call journeys.init({apiUrl, writeKey}) first');
  };
  const emit = (type, ...args) => listeners[type].map((fn) => {
    try { return fn(...args); } catch (e) { warn(`a "${type}" listener failed: ${e}`); }
  });
  const uuid = () => {
    if (crypto.randomUUID) return crypto.randomUUID(); // secure contexts only
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    const h = Array.from(b, (x) => (x + 256).toString(16).slice(1)).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };
  const object = (value, what) => {
    if (value == null) return {};
    if (typeof value !== 'object' || Array.isArray(value)) throw new TypeError(`journeys: ${what} must be an object`);
    return value;
  };
  const headers = (json) => Object.assign(
    { Authorization: 'Basic ' + btoa(cfg.writeKey + ':') },
    json ? { 'Content-Type': 'application/json' } : {});
  const inboxUser = () => cfg.userId || 'anon:' + cfg.anonymousId;
  const inboxUrl = (path, query = []) => {
    if (cfg.userHash) query.push('user_hash=' + encodeURIComponent(cfg.userHash));
    return `${cfg.apiUrl}/v1/users/${encodeURIComponent(inboxUser())}/inbox${path}` +
      (query.length ? '?' + query.join('&') : '');
  };

  // --- calls ----------------------------------------------------------------------------------
  const enqueue = (call, messageId) => {
    need();
    Object.assign(call, {
      messageId: messageId || uuid(), timestamp: new Date().toISOString(),
      anonymousId: cfg.anonymousId, userId: cfg.userId || undefined,
      context: {
        library: { name: 'journeys.js', version: VERSION }, userAgent: navigator.userAgent,
        locale: navigator.language, page: { path: location.pathname, url: location.href, title: doc.title, referrer: doc.referrer }
      }
    });
    let size;
    try { size = new TextEncoder().encode(JSON.stringify(call)).length; } catch (e) { throw new TypeError('journeys: properties and traits must be JSON: ' + e.message); }
    if (size > CALL_BYTES) throw new RangeError(`journeys: a call is ${size} bytes, over the API's 32 KB; nothing was sent`);
    queue.push(call);
    if (queue.length > KEEP) warn(`the API is out of reach: the ${queue.splice(0, queue.length - KEEP).length} oldest calls dropped`);
    save(QUEUE, queue);
    if (queue.length >= BATCH && !failures) flush();
    else schedule(cfg.flushInterval);
  };
  const schedule = (delay) => {
    if (!timer) timer = setTimeout(() => { timer = null; flush(); }, delay);
  };
  const forget = (sent) => {
    const ids = new Set(sent.map((c) => c.messageId));
    queue = queue.filter((c) => !ids.has(c.messageId));
    save(QUEUE, queue);
  };
  // Send what is queued. `leaving` (the page goes away) sends all it can with keepalive at once,
  // even while another request is on its way: a repeat costs nothing, a loss would.
  const flush = (leaving = false) => {
    if (!cfg || !queue.length || (sending && !leaving)) return Promise.resolve();
    const batch = [];
    let size = 0;
    for (const call of queue.slice(0, leaving ? KEEP : BATCH)) {
      size += JSON.stringify(call).length;
      if (leaving && batch.length && size > KEEPALIVE_BYTES) break;
      batch.push(call);
    }
    if (!leaving) { sending = true; clearTimeout(timer); timer = null; }
    return fetch(cfg.apiUrl + '/v1/batch', {
      method: 'POST', headers: headers(true), keepalive: leaving, credentials: 'omit',
      body: JSON.stringify({ batch, sentAt: new Date().toISOString() })
    }).then((res) => {
      if (res.status === 429 || res.status >= 500) throw new Error('HTTP ' + res.status);
      // 400, 401, 413: the same call would be refused again.
      if (!res.ok) warn(`dropped ${batch.length} call(s) the API refused (HTTP ${res.status})`);
      failures = 0;
      forget(batch);
    }).catch(() => {
      if (leaving) return;
      failures++; // with jitter, so that pages cut off together do not come back together
      clearTimeout(timer);
      timer = null;
      schedule(Math.min(30000, 500 * 2 ** failures) * (0.5 + Math.random() / 2));
    }).then(() => {
      if (leaving) return;
      sending = false;
      if (queue.length && !failures) schedule(queue.length >= BATCH ? 0 : cfg.flushInterval);
    });
  };
  const track = (event, properties, messageId) => {
    if (typeof event !== 'string' || !event) throw new TypeError('journeys.track: the event name must be a non-empty string');
    enqueue({ type: 'track', event, properties: object(properties, 'properties') }, messageId);
  };
  const page = (name, properties) => enqueue({
    type: 'page', name: name == null ? undefined : String(name),
    properties: Object.assign({
      url: location.href, path: location.pathname, search: location.search, title: doc.title, referrer: doc.referrer
    }, object(properties, 'properties'))
  });
  const identify = (userId, traits, options = {}) => {
    need();
    if (typeof userId !== 'string' || !userId) throw new TypeError('journeys.identify: userId must be a non-empty string');
    const before = inboxUser() + cfg.userHash;
    cfg.userId = userId;
    if ('userHash' in options) cfg.userHash = options.userHash || null;
    enqueue({ type: 'identify', traits: object(traits, 'traits') });
    if (inboxUser() + cfg.userHash !== before) connect(); // the stream follows the user
  };

  // --- live messages --------------------------------------------------------------------------
  const connect = () => {
    if (live) live.stop();
    live = null;
    if (cfg.live !== false) (window.EventSource ? stream : poll)();
  };
  const stream = () => {
    const source = new EventSource(inboxUrl('/stream', ['key=' + encodeURIComponent(cfg.writeKey)]));
    const me = (live = { stop: () => source.close() });
    source.addEventListener('message', (e) => {
      try { receive(JSON.parse(e.data)); } catch (err) { warn('an unreadable message: ' + err); }
    });
    source.onerror = () => {
      // CONNECTING: the browser reconnects by itself (sending Last-Event-ID). CLOSED: refused
      // (a bad key or hash, a proxy's error page): poll instead, and try the stream again later.
      if (source.readyState === EventSource.CLOSED && live === me) poll(Date.now() + cfg.streamRetry);
    };
  };
  const poll = (streamAgainAt) => {
    let handle = null;
    const me = (live = { stop: () => clearTimeout(handle) });
    const tick = () => {
      if (streamAgainAt && Date.now() > streamAgainAt) return stream();
      inbox().then((list) => list.filter((m) => !m.read).reverse().forEach(receive), (err) => {
        if (err.status !== 401 && err.status !== 403) return;
        warn(err.message + ': no in-app messages');
        live = live === me ? null : live;
      }).then(() => { if (live === me) handle = setTimeout(tick, cfg.pollInterval); });
    };
    tick();
  };
  const inbox = () => {
    need();
    return fetch(inboxUrl(''), { headers: headers(false), credentials: 'omit' }).then((res) => {
      if (res.ok) return res.json();
      throw Object.assign(new Error('the inbox answered HTTP ' + res.status), { status: res.status });
    });
  };
  // Read messages are never announced again: this makes "shown once" hold across pages.
  const markRead = (id) => {
    need();
    return fetch(inboxUrl(`/${id}/read`), { method: 'POST', headers: headers(false), credentials: 'omit', keepalive: true })
      .then((res) => { if (!res.ok) warn(`marking message ${id} read: HTTP ${res.status}`); },
        () => warn(`marking message ${id} read failed`));
  };
  const receive = (message) => {
    if (!message || message.read || shown.has(message.id)) return;
    shown.add(message.id);
    save(SHOWN, Array.from(shown).slice(-200), 'sessionStorage');
    // A listener that returns false draws the message itself (and calls markRead, dismiss).
    if (!emit('message', message).includes(false)) stylesheet().then(() => draw(message));
  };

  // --- drawing --------------------------------------------------------------------------------
  const stylesheet = () => css || (css = new Promise((resolve) => {
    if (cfg.css === false || doc.querySelector('link[data-journeys-css]')) return resolve();
    const link = Object.assign(doc.createElement('link'), { rel: 'stylesheet', href: cfg.apiUrl + '/sdk/journeys.css' });
    link.setAttribute('data-journeys-css', '');
    link.onload = resolve;
    link.onerror = () => { warn('could not load ' + link.href); resolve(); };
    doc.head.appendChild(link);
  }));
  const el = (tag, className, text) => {
    const node = Object.assign(doc.createElement(tag), { className });
    if (text != null) node.textContent = String(text);
    return node;
  };
  const safeUrl = (url) => {
    try {
      const u = new URL(url, location.href);
      return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : null;
    } catch (e) { return null; }
  };
  const selector = (anchor) => {
    if (!anchor) return null;
    try { doc.querySelector(anchor); return anchor; } catch (e) {
      warn(`the anchor "${anchor}" is not a CSS selector: the tooltip is shown without it`);
      return null;
    }
  };
  const draw = (m) => {
    const anchor = m.kind === 'tooltip' && selector(m.anchor);
    const kind = m.kind === 'tooltip' ? (anchor ? 'tooltip' : 'toast') : m.kind === 'banner' ? 'banner' : 'modal';
    if (kind === 'modal' && open.some((o) => o.modal)) return modals.push(m);
    const box = el('div', 'journeys-msg journeys-' + kind);
    box.setAttribute('data-journeys-message', String(m.id));
    const close = el('button', 'journeys-close', '\u00d7');
    close.type = 'button';
    close.setAttribute('aria-label', 'Close');
    box.appendChild(close);
    if (m.title) box.appendChild(el('div', 'journeys-title', m.title)).id = 'journeys-title-' + m.id;
    box.appendChild(el('div', 'journeys-body', m.body)).id = 'journeys-body-' + m.id;
    box.setAttribute(m.title ? 'aria-labelledby' : 'aria-label', m.title ? 'journeys-title-' + m.id : 'Message');
    box.setAttribute('aria-describedby', 'journeys-body-' + m.id);
    const url = m.cta && safeUrl(m.cta.url);
    const cta = url && box.appendChild(Object.assign(el('a', 'journeys-cta', m.cta.label), { href: url }));
    const entry = { id: m.id, modal: kind === 'modal', outer: box, cleanup: [] };
    entry.close = (dismissed) => {
      if (!open.includes(entry)) return;
      open.splice(open.indexOf(entry), 1);
      entry.cleanup.forEach((fn) => fn());
      entry.outer.remove();
      if (dismissed) track('In-App Message Dismissed', { delivery_id: m.id }, 'dismiss-' + m.id);
      if (entry.modal && modals.length) draw(modals.shift());
    };
    close.addEventListener('click', () => entry.close(true));
    if (cta) cta.addEventListener('click', () => {
      // A tracked link records the click on its way; otherwise say so before leaving.
      if (!m.tracked) { track('In-App Message Clicked', { delivery_id: m.id, url }); flush(true); }
      entry.close(false);
    });
    const show = () => {
      open.push(entry);
      emit('shown', m, box);
      markRead(m.id);
    };
    if (kind === 'modal') modal(entry, box, show);
    else if (kind === 'tooltip') whenFound(anchor, (target) => tooltip(entry, box, target, show));
    else {
      box.setAttribute('role', 'status');
      let holder = doc.querySelector('.journeys-stack-' + kind);
      if (!holder) holder = doc.body.appendChild(el('div', 'journeys-stack journeys-stack-' + kind));
      holder.appendChild(box);
      show();
    }
  };
  const modal = (entry, box, show) => {
    const backdrop = el('div', 'journeys-backdrop');
    const before = doc.activeElement;
    box.setAttribute('role', 'dialog');
    box.setAttribute('aria-modal', 'true');
    backdrop.addEventListener('click', (e) => { if (e.target === backdrop) entry.close(true); });
    box.addEventListener('keydown', (e) => { // keep Tab inside the dialog
      if (e.key !== 'Tab') return;
      const items = box.querySelectorAll(FOCUSABLE), first = items[0], last = items[items.length - 1];
      if (e.shiftKey ? doc.activeElement === first : doc.activeElement === last) {
        e.preventDefault();
        (e.shiftKey ? last : first).focus();
      }
    });
    entry.outer = doc.body.appendChild(backdrop);
    entry.cleanup.push(() => { if (before && before.focus && doc.contains(before)) before.focus(); });
    backdrop.appendChild(box);
    show();
    (box.querySelector('.journeys-cta') || box.querySelector('.journeys-close')).focus();
  };
  // A tooltip waits for its anchor (a page that draws it later, a single-page app's route).
  const whenFound = (anchor, then) => {
    const found = doc.querySelector(anchor);
    if (found) return then(found);
    const watch = new MutationObserver(() => {
      const target = doc.querySelector(anchor);
      if (target) { watch.disconnect(); then(target); }
    });
    watch.observe(doc.documentElement, { childList: true, subtree: true });
  };
  const tooltip = (entry, box, target, show) => {
    const arrow = box.appendChild(el('div', 'journeys-arrow'));
    let frame = 0;
    box.setAttribute('role', 'dialog');
    doc.body.appendChild(box);
    const place = () => {
      frame = 0;
      if (!target.isConnected) return entry.close(false);
      const a = target.getBoundingClientRect(), w = box.offsetWidth, h = box.offsetHeight;
      const width = doc.documentElement.clientWidth, gap = 12, edge = 8;
      // Above the anchor, unless there is no room there and there is some below.
      const below = a.top - h - gap < edge && a.bottom + gap + h <= window.innerHeight - edge;
      const left = Math.max(edge, Math.min(a.left + a.width / 2 - w / 2, width - w - edge));
      box.style.setProperty('top', (below ? a.bottom + gap : a.top - h - gap) + 'px');
      box.style.setProperty('left', left + 'px');
      box.setAttribute('data-placement', below ? 'bottom' : 'top');
      arrow.style.setProperty('left', Math.max(12, Math.min(a.left + a.width / 2 - left, w - 12)) + 'px');
    };
    const later = () => { frame = frame || requestAnimationFrame(place); };
    // The page's own changes move the anchor (or take it away) as much as scrolling does.
    const changes = new MutationObserver(later);
    changes.observe(doc.body, { childList: true, subtree: true });
    addEventListener('scroll', later, true);
    addEventListener('resize', later);
    entry.cleanup.push(() => {
      changes.disconnect();
      removeEventListener('scroll', later, true);
      removeEventListener('resize', later);
      cancelAnimationFrame(frame);
    });
    place();
    show();
  };
  const dismiss = (id) => {
    const entry = open.find((o) => o.id === id);
    if (entry) entry.close(true);
    else track('In-App Message Dismissed', { delivery_id: id }, 'dismiss-' + id);
  };

  // --- set-up ---------------------------------------------------------------------------------
  const init = (options = {}) => {
    const { apiUrl, writeKey } = options;
    if (typeof apiUrl !== 'string' || !/^https?:\/\/[^/]/.test(apiUrl)) throw new TypeError('journeys.init: apiUrl must be an http(s) URL');
    if (typeof writeKey !== 'string' || !writeKey) throw new TypeError('journeys.init: writeKey is required');
    if (!cfg) queue = load(QUEUE, []); // what an earlier page left unsent
    const anonymousId = String(options.anonymousId || load(ANON, null) || uuid());
    save(ANON, anonymousId);
    cfg = Object.assign({ flushInterval: 200, pollInterval: 5000, streamRetry: 60000 }, options, {
      apiUrl: apiUrl.replace(/\/+$/, ''), anonymousId, userId: options.userId || null, userHash: options.userHash || null
    });
    if (queue.length) schedule(0);
    connect();
  };
  doc.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && open.length) (open.find((o) => o.modal) || open[open.length - 1]).close(true);
  });
  const leaving = () => { if (cfg && queue.length) flush(true); };
  addEventListener('pagehide', leaving);
  doc.addEventListener('visibilitychange', () => { if (doc.visibilityState === 'hidden') leaving(); });
  addEventListener('online', () => { if (cfg && live) { connect(); flush(); } });

  window.journeys = {
    VERSION, init, identify, page, inbox, markRead, dismiss,
    track: (event, properties) => track(event, properties),
    flush: () => flush(),
    on: (type, fn) => {
      if (!listeners[type]) throw new TypeError(`journeys.on: no "${type}" event (message, shown)`);
      listeners[type].push(fn);
      return () => { listeners[type] = listeners[type].filter((f) => f !== fn); };
    }
  };
})();
