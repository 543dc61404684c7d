// Cookieless tracker: no cookies, storage or fingerprinting
(function (w, d) {
  var L = w.location, N = w.navigator, H = w.history, el = d.currentScript,
    noop = function () {},
    at = function (k) { return el.getAttribute('data-' + k); },
    on = function (t, e, f) { t.addEventListener(e, f); },
    site = at('site'),
    api = at('api') || new URL('/api/event', el.src).href,
    hash = at('hash') == 'true' || at('spa') == 'hash',
    fa = w.fathom = { trackPageview: noop, trackEvent: noop },
    pgUrl, ms = 0, t0, sent, sd, sd0, last, pending;

  if (!site || L.protocol == 'file:' || N.webdriver || w._phantom || w.__nightmare || w.Cypress ||
    (at('allow-local') != 'true' &&
      /^(localhost|127(\.\d+){3}|\[::1\]|0\.0\.0\.0)$|\.localhost$/.test(L.hostname)) ||
    (at('honor-dnt') == 'true' && /^(1|yes)$/.test(N.doNotTrack || w.doNotTrack || N.msDoNotTrack))) return;

  function url() { return hash ? L.href : L.href.split('#')[0]; }
  function path() { return L.pathname + (hash ? L.hash : ''); }

  function send(p) {
    p.sid = site;
    if (hash) p.h = 1;
    p = JSON.stringify(p);
    try {
      if (w.fetch) fetch(api, { method: 'POST', body: p, headers: { 'Content-Type': 'text/plain' }, keepalive: true }).catch(noop);
      else N.sendBeacon(api, new Blob([p], { type: 'text/plain' }));
    } catch (e) {}
  }
  // o: {value: cents, props: {k: 'v'}}
  function track(n, u, o) {
    var p = { n: n, u: u, w: w.innerWidth };
    if (n == 'pageview') p.r = d.referrer || null;
    if (o.value != null) p.value = Math.round(o.value);
    if (o.props) p.p = o.props;
    send(p);
  }

  // engagement: visible ms + max scroll %
  function depth() {
    return Math.min(100, Math.round((w.pageYOffset + w.innerHeight) / (d.documentElement.scrollHeight || 1) * 100));
  }
  function time() { return ms + (t0 ? Date.now() - t0 : 0); }
  function engage() {
    var e = time();
    if (pgUrl && !sent && (e >= 1000 || sd != sd0)) {
      sent = 1;
      send({ n: 'engagement', u: pgUrl, sd: sd, e: e });
    }
  }

  function pageview(o) {
    o = o || {};
    if (d.visibilityState == 'prerender') return pending = o;
    engage(); // previous page (SPA)
    last = path();
    pgUrl = o.url || url();
    ms = sent = 0;
    t0 = d.hidden ? 0 : Date.now();
    sd = sd0 = depth();
    track('pageview', pgUrl, o);
  }

  function nav() { if (path() != last) pageview(); }
  ['pushState', 'replaceState'].forEach(function (k) {
    var orig = H[k];
    H[k] = function () { orig.apply(this, arguments); nav(); };
  });
  on(w, 'popstate', nav);
  if (hash) on(w, 'hashchange', nav);
  on(w, 'scroll', function () { sd = Math.max(sd, depth()); });
  on(w, 'pagehide', engage);
  on(d, 'visibilitychange', function () {
    if (d.hidden) { ms = time(); t0 = 0; engage(); }
    else {
      t0 = Date.now();
      if (pending) pageview(pending), pending = 0;
    }
  });

  fa.trackPageview = pageview;
  fa.trackEvent = function (n, o) { track(n, url(), o || {}); };

  last = path();
  if (at('auto') != 'false') pageview();
})(window, document);
