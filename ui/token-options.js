// The advanced part of both OAuth 2.0 types: extra form fields and headers of
// the token request (`token_params`, `token_headers`: rows of key, value and
// "secret"), where the reply puts the token (`token_response`) and how the
// token is sent (`send_as`). Collapsed unless a stored profile uses it.

import { $, $$ } from './dom.js';
import { isStored, keepStored, prepareStoredField, setStored, startReplacing, storedValue }
  from './stored-fields.js';

const MAX_ENTRIES = 20;

const LISTS = {
  token_params: { noun: 'Form field', add: '+ Add a form field', placeholder: 'resource' },
  token_headers: { noun: 'Header', add: '+ Add a header', placeholder: 'X-Account-Id' },
};
const RESPONSE_PATHS = [
  ['access_token', '#f-tr-access-token'],
  ['expires_in', '#f-tr-expires-in'],
  ['token_type', '#f-tr-token-type'],
];

const details = $('#token-advanced');
const listOf = (name) => $(`[data-list="${name}"]`, details);
const addButton = (name) => $(`[data-add="${name}"]`, details);
let rowCounter = 0;

export function setUpTokenOptions() {
  details.addEventListener('click', (event) => {
    const add = event.target.closest('[data-add]');
    if (add) $('.param-key', appendRow(add.dataset.add)).focus();
    const remove = event.target.closest('.remove-param');
    if (remove) removeRow(remove.closest('.param'));
    // "Keep stored" on a value that was made plain: it is a secret again.
    const row = event.target.closest('.keep') && event.target.closest('.param');
    if (row) {
      $('.param-secret', row).checked = true;
      secretToggled(row, { stored: true });
    }
  });
  details.addEventListener('change', (event) => {
    if (event.target.classList.contains('param-secret')) secretToggled(event.target.closest('.param'));
  });
}

/** Fills the section from a stored config; opens it when anything is set. */
export function fillTokenOptions(config) {
  for (const name of Object.keys(LISTS)) {
    for (const entry of config[name] ?? []) {
      const row = appendRow(name);
      $('.param-key', row).value = entry.key;
      $('.param-secret', row).checked = Boolean(entry.secret);
      if (entry.secret) setStored($('[data-secret]', row), entry.value);
      else $('.param-value', row).value = entry.value ?? '';
      secretToggled(row, { stored: true });
    }
  }
  for (const [name, selector] of RESPONSE_PATHS) $(selector).value = config.token_response?.[name] ?? '';
  $('#f-send-header').value = config.send_as?.header ?? '';
  $('#f-send-prefix').value = config.send_as?.prefix ?? '';
  details.open = Boolean(config.token_params?.length || config.token_headers?.length || config.token_response ||
    config.send_as);
}

export function resetTokenOptions() {
  for (const name of Object.keys(LISTS)) {
    listOf(name).replaceChildren();
    renumber(name);
  }
  details.open = false;
}

/**
 * Adds the section's fields to `config`. `reader` decides what a stored
 * secret sends and collects missing fields. New profiles leave out what is
 * empty; an edit sends `[]` and `null` so that cleared settings go.
 */
export function collectTokenOptions(reader, config) {
  for (const name of Object.keys(LISTS)) {
    const entries = $$('.param', listOf(name)).map((row) => collectRow(reader, row));
    if (entries.length || reader.editing) config[name] = entries;
  }
  const response = {};
  for (const [name, selector] of RESPONSE_PATHS) {
    const path = $(selector).value.trim();
    if (path) response[name] = path;
  }
  if (Object.keys(response).length) config.token_response = response;
  else if (reader.editing) config.token_response = null;
  const header = $('#f-send-header').value.trim();
  const prefix = $('#f-send-prefix').value; // Spaces count: "Bearer " ends with one.
  if (header) config.send_as = { header, prefix };
  else if (prefix) config.send_as = { prefix };
  else if (reader.editing) config.send_as = null;
}

function collectRow(reader, row) {
  const keyInput = $('.param-key', row);
  const entry = { key: reader.required(keyInput, keyInput.value.trim()) };
  const valueInput = $('.param-value', row);
  if (!$('.param-secret', row).checked) {
    entry.value = valueInput.value;
    return entry;
  }
  entry.secret = true;
  const value = storedValue($('[data-secret]', row), reader.sameType);
  if (value !== undefined) entry.value = reader.required(valueInput, value ?? '');
  return entry;
}

function appendRow(name) {
  const row = $('#param-template').content.firstElementChild.cloneNode(true);
  rowCounter += 1;
  for (const part of ['key', 'value', 'secret']) {
    const control = $(`.param-${part}`, row);
    control.id = `param-${rowCounter}-${part}`;
    if (part !== 'secret') $(`[data-label="${part}"]`, row).htmlFor = control.id;
  }
  $('.param-key', row).placeholder = LISTS[name].placeholder;
  prepareStoredField($('[data-secret]', row));
  listOf(name).append(row);
  renumber(name);
  return row;
}

function removeRow(row) {
  const name = row.closest('[data-list]').dataset.list;
  const next = row.nextElementSibling ?? row.previousElementSibling;
  row.remove();
  renumber(name);
  (next ? $('.param-key', next) : addButton(name)).focus();
}

/** Labels and `data-field` paths follow the order: `config.token_headers[1].value` is the second row. */
function renumber(name) {
  const { noun, add } = LISTS[name];
  const rows = $$('.param', listOf(name));
  rows.forEach((row, i) => {
    const n = i + 1;
    $('[data-label="key"]', row).textContent = `${noun} ${n} name`;
    $('[data-label="value"]', row).textContent = `${noun} ${n} value`;
    $('.param-key', row).dataset.field = `config.${name}[${i}].key`;
    $('.param-value', row).dataset.field = `config.${name}[${i}].value`;
    const secret = $('.param-secret', row);
    secret.dataset.field = `config.${name}[${i}].secret`;
    secret.setAttribute('aria-label', `${noun} ${n} value is secret`);
    $('.remove-param', row).setAttribute('aria-label', `Remove ${noun.toLowerCase()} ${n}`);
    for (const [selector, verb] of [['.replace', 'Replace'], ['.keep', 'Keep stored']]) {
      $(selector, row)?.setAttribute('aria-label', `${verb} ${noun.toLowerCase()} ${n} value`);
    }
  });
  const full = rows.length >= MAX_ENTRIES;
  addButton(name).disabled = full;
  addButton(name).textContent = full ? `At most ${MAX_ENTRIES}` : add;
}

/**
 * A secret value is typed hidden; a plain one is shown. Making a stored
 * secret plain needs its value typed again (the page never had it).
 */
function secretToggled(row, { stored = false } = {}) {
  const secret = $('.param-secret', row).checked;
  const widget = $('[data-secret]', row);
  const input = $('.param-value', row);
  input.type = secret ? 'password' : 'text';
  input.autocomplete = secret ? 'new-password' : 'off';
  if (stored || !isStored(widget)) return;
  if (secret) keepStored(widget);
  else startReplacing(widget);
}
