// Sites pages: copy buttons, a time zone guess on "add a site", confirmations. No dependencies.
(function () {
  'use strict';

  function announce(button, text) {
    var row = button.closest('.copy-row');
    var status = row && row.querySelector('.copy-status');
    var label = button.getAttribute('data-label') || button.textContent;
    button.setAttribute('data-label', label);
    button.textContent = text;
    if (status) status.textContent = text === 'Copied!' ? 'Copied to the clipboard.' : text;
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(function () {
      button.textContent = label;
      if (status) status.textContent = '';
    }, 2500);
  }

  function fallbackCopy(text) {
    var area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }

  document.addEventListener('click', function (event) {
    var button = event.target.closest('[data-copy-target]');
    if (!button) return;
    var source = document.getElementById(button.getAttribute('data-copy-target'));
    if (!source) return;
    var text = 'value' in source && source.tagName !== 'PRE' ? source.value : source.textContent;
    var done = function () { announce(button, 'Copied!'); };
    var failed = function () {
      if (fallbackCopy(text)) { done(); return; }
      if (source.select) source.select();
      announce(button, 'Press Ctrl+C to copy');
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, failed);
    } else {
      failed();
    }
  });

  // "Add a site": preselect the browser's time zone while the person has not chosen one.
  var zone = document.querySelector('select[data-guess-timezone]');
  if (zone && zone.value === 'UTC' && window.Intl && Intl.DateTimeFormat) {
    try {
      var guess = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (guess && zone.querySelector('option[value="' + guess.replace(/"/g, '') + '"]')) zone.value = guess;
    } catch (e) { /* keep UTC */ }
  }

  // After a POST that re-rendered the settings page: bring the person to what needs them.
  var fresh = document.querySelector('.new-key');
  var invalid = document.querySelector('.has-error input, .has-error select, .has-error textarea');
  if (fresh) {
    fresh.setAttribute('tabindex', '-1');
    fresh.focus();
  } else if (invalid) {
    invalid.focus();
  }

  // Forms that undo something ask first.
  document.addEventListener('submit', function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
