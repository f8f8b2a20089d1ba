// Fields that may hold a stored value the page never sees: secrets (shown
// masked), private keys (shown as their fingerprint) and certificates (shown
// as subject, issuer, expiry and fingerprint; not secret, but their PEM is not
// read back either).
//
// Each such field is a `[data-secret]` element holding an `.entry` with its
// input or textarea. `prepareStoredField` adds the rest once: the stored view
// (`.stored`: the hint, Replace and, for optional fields marked
// `data-removable`, Remove), the "removed when you save" note and the "Keep
// stored" button. A stored value that is neither replaced nor removed is left
// out of the request, so the server keeps it.

import { $, el, labelOf, longDate } from './dom.js';

/** Certificates that expire within this many days are flagged. */
export const EXPIRY_WARNING_DAYS = 14;

const DAY_MS = 24 * 60 * 60 * 1000;

const entryControl = (widget) => $('input, textarea', $('.entry', widget));

export const isStored = (widget) => widget.dataset.mode === 'stored';

/** Adds the stored view, the removed note and Keep stored to a field (once). */
export function prepareStoredField(widget) {
  if ($('.stored', widget)) return;
  const kind = widget.dataset.kind ?? 'secret';
  const entry = $('.entry', widget);
  const removable = widget.hasAttribute('data-removable');
  const stored = el('div', { class: `stored ${kind}`, hidden: true },
    el(kind === 'certificate' ? 'div' : 'span', { class: 'mask' }),
    el('span', { class: 'stored-actions' },
      el('button', { type: 'button', class: 'button small replace' }, 'Replace'),
      removable ? el('button', { type: 'button', class: 'button small ghost remove-stored' }, 'Remove') : null));
  const removed = el('div', { class: 'removed', hidden: true },
    el('span', {}, 'Removed when you save.'),
    el('button', { type: 'button', class: 'button small ghost undo-remove' }, 'Undo'));
  entry.before(stored, removed);
  entry.append(el('button', { type: 'button', class: 'button small ghost keep', hidden: true }, 'Keep stored'));
  // Replace swaps the control's own placeholder for a prompt, and back.
  const control = entryControl(widget);
  control.dataset.placeholder = control.placeholder;
}

/**
 * Shows a stored value: a masked secret (`"••••1f2e"`), a key
 * (`{fingerprint_sha256}`) or a certificate (`{subject, issuer, not_after,
 * fingerprint_sha256}`), as the API reads them back.
 */
export function setStored(widget, value) {
  prepareStoredField(widget);
  widget.dataset.mode = 'stored';
  delete widget.dataset.replacing;
  delete widget.dataset.removed;
  const control = entryControl(widget);
  const mask = $('.mask', widget);
  mask.id = `${control.id}-stored`;
  if (typeof value === 'string') {
    mask.textContent = value && value !== '••••' ? `Stored · ${value}` : 'Stored · hidden';
  } else if (value?.subject !== undefined) {
    mask.replaceChildren(...certificateFacts(value));
  } else if (value?.fingerprint_sha256) {
    mask.textContent = `Stored · key fingerprint ${value.fingerprint_sha256}`;
  } else {
    mask.textContent = 'Stored · hidden';
  }
  const name = labelOf(control).toLowerCase();
  for (const [selector, verb] of [['.replace', 'Replace'], ['.remove-stored', 'Remove']]) {
    const button = $(selector, widget);
    button?.setAttribute('aria-label', `${verb} ${name}`);
    button?.setAttribute('aria-describedby', mask.id);
  }
  render(widget);
}

/** Subject, issuer, expiry (flagged when near or past) and fingerprint of a certificate. */
export function certificateFacts(view) {
  const warning = expiryWarning(view.not_after);
  return [
    el('dl', { class: 'cert-facts' },
      el('dt', {}, 'Subject'), el('dd', {}, view.subject || '(empty)'),
      el('dt', {}, 'Issuer'), el('dd', {}, view.issuer || '(empty)'),
      el('dt', {}, 'Expires'), el('dd', {},
        el('time', { datetime: view.not_after }, longDate(view.not_after)),
        warning ? el('span', { class: 'expiry-warning' }, warning) : null),
      el('dt', {}, 'SHA-256'), el('dd', { class: 'fingerprint' }, view.fingerprint_sha256)),
  ];
}

/** "Expired on Mar 3, 2026", "Expires in 5 days", or null when it is further away. */
export function expiryWarning(notAfter, now = Date.now()) {
  const at = new Date(notAfter).getTime();
  if (Number.isNaN(at)) return null;
  if (at <= now) return `Expired on ${longDate(notAfter)}`;
  const days = Math.ceil((at - now) / DAY_MS);
  if (days > EXPIRY_WARNING_DAYS) return null;
  return days <= 1 ? 'Expires within a day' : `Expires in ${days} days`;
}

function render(widget) {
  const stored = isStored(widget);
  const removed = stored && Boolean(widget.dataset.removed);
  const showStored = stored && !removed && !widget.dataset.replacing;
  $('.stored', widget).hidden = !showStored;
  $('.removed', widget).hidden = !removed;
  $('.entry', widget).hidden = showStored || removed;
  $('.keep', widget).hidden = !stored;
  const control = entryControl(widget);
  control.value = '';
  control.placeholder = widget.dataset.replacing ? 'Enter the new value' : (control.dataset.placeholder ?? '');
}

export function startReplacing(widget) {
  widget.dataset.replacing = 'yes';
  delete widget.dataset.removed;
  render(widget);
  entryControl(widget).focus();
}

export function keepStored(widget) {
  delete widget.dataset.replacing;
  delete widget.dataset.removed;
  render(widget);
  $('.replace', widget).focus();
}

export function removeStored(widget) {
  delete widget.dataset.replacing;
  widget.dataset.removed = 'yes';
  render(widget);
  $('.undo-remove', widget).focus();
}

/** Forgets the stored value: the field is empty and editable. */
export function clearStored(widget) {
  prepareStoredField(widget);
  delete widget.dataset.mode;
  delete widget.dataset.replacing;
  delete widget.dataset.removed;
  $('.mask', widget).replaceChildren();
  render(widget);
}

/**
 * What to send for the field: `undefined` keeps the stored value (when it
 * may be kept: same profile type), `null` removes it, otherwise what was entered.
 */
export function storedValue(widget, mayKeep) {
  if (isStored(widget) && mayKeep) {
    if (widget.dataset.removed) return null;
    if (!widget.dataset.replacing) return undefined;
  }
  return entryControl(widget).value;
}
