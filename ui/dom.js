// Small DOM helpers: element building (text only, never HTML strings),
// dialogs that give focus back, field errors, the toast, and formatting.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** Builds an element. Children are nodes or strings (inserted as text). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

// ---------------------------------------------------------------- dialogs

const openers = new WeakMap();

/**
 * Opens a modal dialog and moves focus into it (to `focus`, or the first
 * field). When the dialog closes, focus goes back to what opened it.
 */
export function openDialog(dialog, { focus, opener = document.activeElement } = {}) {
  openers.set(dialog, opener);
  if (!dialog.open) dialog.showModal();
  const target = focus ?? $('input:not([type=hidden]):not([disabled]), select, button:not([data-close])', dialog);
  target?.focus();
}

/** Wires the close buttons and the focus return of every dialog once. */
export function setUpDialogs(fallbackFocus) {
  for (const dialog of $$('dialog')) {
    dialog.addEventListener('click', (event) => {
      if (event.target.closest('[data-close]')) dialog.close();
    });
    dialog.addEventListener('close', () => {
      const opener = openers.get(dialog);
      openers.delete(dialog);
      restoreFocus(opener, fallbackFocus);
    });
  }
}

function isUsable(node) {
  return node instanceof HTMLElement && node.isConnected && !node.closest('[hidden]') && !node.disabled;
}

/** Focus back on the opener; if a re-render replaced it, on its twin (same action and id). */
export function restoreFocus(opener, fallback) {
  if (isUsable(opener)) return opener.focus();
  const { action, id } = opener?.dataset ?? {};
  const twin = action && id ? $(`[data-action="${CSS.escape(action)}"][data-id="${CSS.escape(id)}"]`) : null;
  if (isUsable(twin)) return twin.focus();
  fallback()?.focus();
}

// ---------------------------------------------------------------- field errors

/** The visible label of a control or group, without the required mark. */
export function labelOf(control) {
  const label = control.labels?.[0] ?? $(':scope > legend', control) ??
    (control.getAttribute('aria-labelledby') && document.getElementById(control.getAttribute('aria-labelledby')));
  if (!label) return '';
  const copy = label.cloneNode(true);
  $$('.req, .optional', copy).forEach((n) => n.remove());
  return copy.textContent.replace(/\s+/g, ' ').trim();
}

/** Shows `message` next to a field (input, radio group or pair list) and marks it invalid. */
export function showFieldError(control, message) {
  const id = `${control.id || control.dataset.field.replace(/[^\w-]/g, '-')}-error`;
  const existing = document.getElementById(id);
  if (existing) {
    existing.textContent += ` ${message}`;
    return;
  }
  const error = el('p', { class: 'field-error', id }, message);
  const isGroup = control.tagName === 'FIELDSET' || control.getAttribute('role') === 'group';
  if (isGroup) control.append(error);
  else (control.closest('.pair, .param') ?? control.closest('.field') ?? control.parentElement).append(error);
  control.setAttribute('aria-invalid', 'true');
  const described = (control.getAttribute('aria-describedby') ?? '').split(' ').filter(Boolean);
  control.setAttribute('aria-describedby', [...described, id].join(' '));
}

export function clearFieldErrors(root) {
  for (const error of $$('.field-error', root)) {
    for (const control of $$(`[aria-describedby~="${error.id}"]`, root)) {
      const rest = control.getAttribute('aria-describedby').split(' ').filter((x) => x && x !== error.id);
      if (rest.length) control.setAttribute('aria-describedby', rest.join(' '));
      else control.removeAttribute('aria-describedby');
    }
    error.remove();
  }
  $$('[aria-invalid]', root).forEach((n) => n.removeAttribute('aria-invalid'));
}

// ---------------------------------------------------------------- toast

let toastTimer;

/** A short, polite announcement ("Profile created") that fades away. */
export function announce(message) {
  const toast = $('#toast');
  clearTimeout(toastTimer);
  toast.textContent = message;
  toast.classList.add('visible');
  toastTimer = setTimeout(() => {
    toast.classList.remove('visible');
    toastTimer = setTimeout(() => { toast.textContent = ''; }, 400);
  }, 4000);
}

// ---------------------------------------------------------------- formatting

const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
const absolute = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'short' });

export function timeAgo(iso) {
  const date = new Date(iso);
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return 'just now';
  for (const [unit, size] of [['year', 31536000], ['month', 2592000], ['day', 86400], ['hour', 3600], ['minute', 60]]) {
    if (abs >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return relative.format(seconds, 'second');
}

export const fullDate = (iso) => absolute.format(new Date(iso));

const day = new Intl.DateTimeFormat('en', { dateStyle: 'medium' });

/** "Mar 5, 2027": a date without the time (certificate expiry). */
export const longDate = (iso) => day.format(new Date(iso));

const clock = new Intl.DateTimeFormat('en', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
const dayAndClock = new Intl.DateTimeFormat('en', { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });

/** "10:02" today, "Dec 6, 10:02" on another day. */
export function shortTime(iso) {
  const date = new Date(iso);
  return date.toDateString() === new Date().toDateString() ? clock.format(date) : dayAndClock.format(date);
}

/** 3600 → "1 hour", 5400 → "1 hour 30 minutes", 45 → "45 seconds". */
export function duration(totalSeconds) {
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  const part = (n, unit) => (n ? `${n} ${unit}${n === 1 ? '' : 's'}` : '');
  return [part(h, 'hour'), part(m, 'minute'), h ? '' : part(s, 'second')].filter(Boolean).join(' ') || '0 seconds';
}
