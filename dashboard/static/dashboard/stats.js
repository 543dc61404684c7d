// The dashboard works without this file. It adds: the live "current visitors" counter,
// keyboard shortcuts for the period picker, closing the picker on Escape / outside click,
// and a sanity check on the custom range form.
(function () {
  'use strict';
  var REFRESH_MS = 30000;

  // -- realtime counter ------------------------------------------------------------------
  var box = document.querySelector('[data-realtime-url]');
  if (box) {
    var count = box.querySelector('[data-realtime-count]');
    var label = box.querySelector('[data-realtime-label]');
    var timer = null;
    var refresh = function () {
      if (document.hidden) return;
      fetch(box.getAttribute('data-realtime-url'), { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data || typeof data.visitors !== 'number') return;
          count.textContent = data.visitors.toLocaleString();
          label.textContent = data.visitors === 1 ? 'current visitor' : 'current visitors';
          box.hidden = false;
        })
        .catch(function () {});
    };
    refresh();
    timer = setInterval(refresh, REFRESH_MS);
    document.addEventListener('visibilitychange', function () {
      if (!document.hidden) refresh();
    });
    window.addEventListener('pagehide', function () { clearInterval(timer); });
  }

  // -- period picker ---------------------------------------------------------------------
  var picker = document.querySelector('[data-picker]');
  if (picker) {
    document.addEventListener('click', function (e) {
      if (picker.open && !picker.contains(e.target)) picker.open = false;
    });
    picker.addEventListener('keydown', function (e) {
      if (e.key === 'Escape' && picker.open) {
        picker.open = false;
        picker.querySelector('summary').focus();
      }
    });
  }

  // Keyboard shortcuts, as in Plausible: t today, y yesterday, w 7 days, d 30 days, m month,
  // l last month, s 6 months, a 12 months, arrows for the previous / next period.
  document.addEventListener('keydown', function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.shiftKey) return;
    var target = e.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    var key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    var links = document.querySelectorAll('a[data-shortcut]');
    for (var i = 0; i < links.length; i++) {
      if (links[i].getAttribute('data-shortcut') === key) {
        e.preventDefault();
        window.location.href = links[i].href;
        return;
      }
    }
  });

  // -- custom range ----------------------------------------------------------------------
  var range = document.querySelector('.custom-range');
  if (range) {
    var from = range.querySelector('[name=from]');
    var to = range.querySelector('[name=to]');
    var check = function () {
      if (from.value) to.min = from.value;
      to.setCustomValidity(from.value && to.value && to.value < from.value ? 'The end must not be before the start.' : '');
    };
    from.addEventListener('change', check);
    to.addEventListener('change', check);
  }
})();
