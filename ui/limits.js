// A profile's traffic limits (contract §9), for every type: `limits =
// {rate_per_s?, burst?, max_concurrency?}` or null for none. The form's
// "Traffic limits" section (three optional numbers, collapsed while empty),
// what it sends, and the limits said in words for the list and Details.
//
// Empty fields mean "not set"; all three empty is "no limits". The server
// checks the numbers (a 422 names `limits.burst` …), so the page sends what
// was typed and only refuses what is not a number at all.

import { $ } from './dom.js';

const FIELDS = [
  ['rate_per_s', '#f-limit-rate'],
  ['burst', '#f-limit-burst'],
  ['max_concurrency', '#f-limit-concurrency'],
];

const details = $('#limits-details');
const clearButton = $('#limits-clear');

/** The limits of the profile being edited (as the API shows them), or null. */
let stored = null;

const number = (n) => n.toLocaleString('en', { maximumFractionDigits: 6 });

/** "10/s, burst 5, at most 4 at once"; "no limits" for null (or an empty object). */
export function limitsText(limits) {
  const set = (key) => limits?.[key] !== undefined && limits?.[key] !== null;
  const parts = [];
  if (set('rate_per_s')) parts.push(`${number(limits.rate_per_s)}/s`);
  if (set('burst')) parts.push(`burst ${number(limits.burst)}`);
  if (set('max_concurrency')) parts.push(`at most ${number(limits.max_concurrency)} at once`);
  return parts.length ? parts.join(', ') : 'no limits';
}

export function setUpLimits() {
  details.addEventListener('input', render);
  clearButton.addEventListener('click', () => {
    for (const [, selector] of FIELDS) $(selector).value = '';
    render();
    $(FIELDS[0][1]).focus();
  });
}

/** Fills the section from a stored profile's limits; opens it when any is set. */
export function fillLimits(limits) {
  stored = limits ?? null;
  for (const [key, selector] of FIELDS) $(selector).value = stored?.[key] ?? '';
  details.open = Boolean(stored);
  render();
}

export function resetLimits() {
  fillLimits(null);
}

/** What the fields hold, as the API reads limits; `bad` lists the inputs that are not numbers. */
function entered() {
  const limits = {};
  const bad = [];
  for (const [key, selector] of FIELDS) {
    const input = $(selector);
    // A number input reads "" for what is not a number; `badInput` tells it from an empty one.
    if (input.validity.badInput) bad.push(input);
    else if (input.value.trim() !== '') limits[key] = Number(input.value);
  }
  return { limits: Object.keys(limits).length ? limits : null, bad };
}

const sameLimits = (a, b) => FIELDS.every(([key]) => (a?.[key] ?? null) === (b?.[key] ?? null));

/**
 * What to send as `limits`: undefined (left out: none on a new profile, the
 * stored ones kept on an edit), null (remove them) or the object typed, which
 * replaces the stored limits whole. Inputs that are not numbers go to `reader`.
 */
export function collectLimits(reader) {
  const { limits, bad } = entered();
  for (const control of bad) reader.missing.push({ control, message: 'must be a number' });
  if (!reader.editing) return limits ?? undefined;
  return sameLimits(limits, stored) ? undefined : limits;
}

/** The summary line says what saving does; "Remove the limits" shows while any field is set. */
function render() {
  const { limits, bad } = entered();
  let state = limits ? limitsText(limits) : 'none';
  if (!limits && stored && !bad.length) state = 'removed when you save';
  $('#limits-state').textContent = state;
  clearButton.hidden = !limits && !bad.length;
}
