// The New / Edit profile dialog.
//
// Each type has its own fieldset in index.html; only the chosen one is shown
// (and enabled). Secret fields of a stored profile show the masked hint and a
// "Replace" button; a secret that is not replaced is left out of the PATCH, so
// the server keeps it. Every input is cleared when the dialog closes, so no
// secret stays in the page after a save.

import { $, $$, announce, clearFieldErrors, el, fullDate, labelOf, openDialog, showFieldError, timeAgo } from './dom.js';
import { ApiError, call, paths, session } from './api.js';
import { editWarning } from './health.js';

export const TYPE_LABELS = {
  bearer: 'Bearer token',
  api_key: 'API key',
  basic: 'Basic auth',
  oauth2_client_credentials: 'OAuth 2.0',
};

const MAX_PAIRS = 20;

const dialog = $('#profile-dialog');
const form = $('#profile-form');
const formError = $('#form-error');
const pairsList = $('#pairs-list');
const addPair = $('#add-pair');
const saveButton = $('#save-profile');

/** The profile being edited (as the API shows it), or null for a new one. */
let editing = null;
let pairCounter = 0;
let onSaved = async () => {};

export function setUpProfileForm(saved) {
  onSaved = saved;
  form.addEventListener('change', (event) => {
    if (event.target.name === 'type') showTypeFields();
  });
  form.addEventListener('click', (event) => {
    const widget = event.target.closest('[data-secret]');
    if (event.target.closest('.replace')) startReplacing(widget);
    else if (event.target.closest('.keep')) keepStored(widget);
    else if (event.target.closest('.remove-pair')) removePair(event.target.closest('.pair'));
  });
  addPair.addEventListener('click', () => $('.pair-key', appendPair()).focus());
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    save();
  });
  dialog.addEventListener('close', reset);
}

export function openNew(opener) {
  reset();
  $('#profile-dialog-title').textContent = 'New profile';
  saveButton.textContent = 'Create profile';
  openDialog(dialog, { focus: $('#f-name'), opener });
}

export async function openEdit(id, opener) {
  const [profile, usage] = await Promise.all([
    call('GET', paths.profile(session.workspace, id)),
    call('GET', paths.usage(session.workspace, id)),
  ]);
  reset();
  editing = profile;
  // A profile in use: say so before anything is changed.
  const warning = editWarning(usage, profile.health);
  $('#edit-warning').textContent = warning ?? '';
  $('#edit-warning').hidden = !warning;
  $('#profile-dialog-title').textContent = `Edit “${profile.name}”`;
  const meta = $('#profile-dialog-meta');
  meta.textContent = `Version ${profile.version} · updated ${timeAgo(profile.updated_at)} (${fullDate(profile.updated_at)})`;
  meta.hidden = false;
  saveButton.textContent = 'Save changes';
  $('#f-name').value = profile.name;
  checkRadio('type', profile.type);
  fillStored(profile.type, profile.config);
  showTypeFields();
  openDialog(dialog, { focus: $('#f-name'), opener });
}

// ---------------------------------------------------------------- filling

function checkRadio(name, value) {
  const radio = $$(`input[name="${name}"]`, form).find((r) => r.value === value);
  if (radio) radio.checked = true;
}

function chosenType() {
  return $('input[name="type"]:checked', form)?.value ?? null;
}

function fieldsetOf(type) {
  return $(`.type-fields[data-type="${type}"]`, form);
}

function fillStored(type, config) {
  const set = (selector, value) => { $(selector, form).value = value ?? ''; };
  switch (type) {
    case 'bearer':
      setStored($('#f-bearer-token').closest('[data-secret]'), config.token);
      break;
    case 'basic':
      set('#f-basic-username', config.username);
      setStored($('#f-basic-password').closest('[data-secret]'), config.password);
      break;
    case 'api_key':
      checkRadio('method', config.method);
      pairsList.replaceChildren();
      for (const pair of config.pairs ?? []) {
        const row = appendPair();
        $('.pair-key', row).value = pair.key;
        row.dataset.storedKey = pair.key;
        setStored($('[data-secret]', row), pair.value);
      }
      break;
    case 'oauth2_client_credentials':
      set('#f-oauth-client-id', config.client_id);
      setStored($('#f-oauth-client-secret').closest('[data-secret]'), config.client_secret);
      set('#f-oauth-endpoint', config.token_endpoint);
      set('#f-oauth-scope', config.scope);
      set('#f-oauth-audience', config.audience);
      checkRadio('client_auth', config.client_auth ?? 'basic');
      break;
  }
}

/** Shows the chosen type's fieldset and hides (and disables) the others. */
function showTypeFields() {
  const type = chosenType();
  for (const fieldset of $$('.type-fields', form)) {
    const active = fieldset.dataset.type === type;
    fieldset.hidden = !active;
    fieldset.disabled = !active;
  }
  if (type === 'api_key' && !pairsList.children.length) appendPair();
  $('#type-change-note').hidden = !(editing && type && type !== editing.type);
}

// ---------------------------------------------------------------- secrets

const secretInput = (widget) => $('input', $('.entry', widget));

function setStored(widget, masked) {
  widget.dataset.mode = 'stored';
  const input = secretInput(widget);
  const mask = $('.mask', widget);
  mask.id = `${input.id}-stored`;
  mask.textContent = masked && masked !== '••••' ? `Stored · ${masked}` : 'Stored · hidden';
  const replace = $('.replace', widget);
  replace.setAttribute('aria-label', `Replace ${labelOf(input).toLowerCase()}`);
  replace.setAttribute('aria-describedby', mask.id);
  showStored(widget, true);
}

function showStored(widget, stored) {
  $('.stored', widget).hidden = !stored;
  $('.entry', widget).hidden = stored;
  $('.keep', widget).hidden = !widget.dataset.mode;
  const input = secretInput(widget);
  input.value = '';
  input.placeholder = widget.dataset.replacing ? 'Enter the new value' : '';
}

function startReplacing(widget) {
  widget.dataset.replacing = 'yes';
  showStored(widget, false);
  secretInput(widget).focus();
}

function keepStored(widget) {
  delete widget.dataset.replacing;
  showStored(widget, true);
  $('.replace', widget).focus();
}

/** The value to send for a secret field, or undefined to keep the stored one. */
function secretValue(widget, type) {
  const keepsStored = widget.dataset.mode === 'stored' && !widget.dataset.replacing && editing?.type === type;
  return keepsStored ? undefined : secretInput(widget).value;
}

// ---------------------------------------------------------------- API key pairs

function appendPair() {
  const row = $('#pair-template').content.firstElementChild.cloneNode(true);
  pairCounter += 1;
  $('.pair-key', row).id = `pair-${pairCounter}-key`;
  $('.pair-value', row).id = `pair-${pairCounter}-value`;
  $('[data-label="key"]', row).htmlFor = `pair-${pairCounter}-key`;
  $('[data-label="value"]', row).htmlFor = `pair-${pairCounter}-value`;
  pairsList.append(row);
  renumberPairs();
  return row;
}

function removePair(row) {
  const next = row.nextElementSibling ?? row.previousElementSibling;
  row.remove();
  renumberPairs();
  (next ? $('.pair-key', next) : addPair).focus();
}

/** Labels and `data-field` paths follow the order: `config.pairs[1].key` is the second row. */
function renumberPairs() {
  const rows = [...pairsList.children];
  rows.forEach((row, i) => {
    $('[data-label="key"]', row).textContent = `Key ${i + 1}`;
    $('[data-label="value"]', row).textContent = `Value ${i + 1}`;
    $('.pair-key', row).dataset.field = `config.pairs[${i}].key`;
    $('.pair-value', row).dataset.field = `config.pairs[${i}].value`;
    const remove = $('.remove-pair', row);
    remove.setAttribute('aria-label', `Remove pair ${i + 1}`);
    remove.disabled = rows.length === 1;
    const replace = $('.replace', row);
    if (replace) replace.setAttribute('aria-label', `Replace value ${i + 1}`);
  });
  addPair.disabled = rows.length >= MAX_PAIRS;
  addPair.textContent = rows.length >= MAX_PAIRS ? `At most ${MAX_PAIRS} pairs` : '+ Add another';
}

// ---------------------------------------------------------------- saving

/** Reads the form into an API body, with the fields that are missing. */
function collect() {
  const missing = [];
  const text = (selector) => $(selector, form).value.trim();
  const required = (control, value) => {
    if (value === '') missing.push({ control, message: 'is required' });
    return value;
  };
  const name = required($('#f-name'), text('#f-name'));
  const type = chosenType();
  if (!type) missing.push({ control: $('fieldset.types', form), message: 'must be chosen' });
  const config = {};
  const secret = (input) => {
    const value = secretValue(input.closest('[data-secret]'), type);
    if (value !== undefined && input.hasAttribute('data-required')) required(input, value);
    return value;
  };
  const optional = (selector) => {
    const value = text(selector);
    return value === '' && !editing ? undefined : value;
  };
  if (type === 'bearer') {
    config.token = secret($('#f-bearer-token'));
  } else if (type === 'basic') {
    config.username = required($('#f-basic-username'), $('#f-basic-username').value);
    config.password = secret($('#f-basic-password'));
  } else if (type === 'api_key') {
    config.method = $('input[name="method"]:checked', form)?.value;
    config.pairs = [...pairsList.children].map((row) => {
      const pair = { key: required($('.pair-key', row), $('.pair-key', row).value.trim()) };
      const value = secret($('.pair-value', row));
      if (value !== undefined) pair.value = value;
      return pair;
    });
  } else if (type === 'oauth2_client_credentials') {
    config.client_id = required($('#f-oauth-client-id'), text('#f-oauth-client-id'));
    config.client_secret = secret($('#f-oauth-client-secret'));
    config.token_endpoint = required($('#f-oauth-endpoint'), text('#f-oauth-endpoint'));
    config.scope = optional('#f-oauth-scope');
    config.audience = optional('#f-oauth-audience');
    config.client_auth = $('input[name="client_auth"]:checked', form)?.value ?? 'basic';
  }
  for (const key of Object.keys(config)) if (config[key] === undefined) delete config[key];
  return { body: { name, type, config }, missing };
}

async function save() {
  clearErrors();
  const { body, missing } = collect();
  if (missing.length) return showErrors(missing);
  const wasNew = !editing;
  saveButton.disabled = true;
  saveButton.setAttribute('aria-busy', 'true');
  try {
    const ws = session.workspace;
    const saved = editing
      ? await call('PATCH', paths.profile(ws, editing.id), { body })
      : await call('POST', paths.profiles(ws), { body });
    reset(); // No secret stays in the page.
    await onSaved(saved);
    dialog.close();
    announce(wasNew ? `Profile “${saved.name}” created.` : `Profile “${saved.name}” saved (version ${saved.version}).`);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    showServerError(error);
  } finally {
    saveButton.disabled = false;
    saveButton.removeAttribute('aria-busy');
  }
}

function showServerError(error) {
  if (error.status === 401) return; // The page signs out and says why.
  if (error.code === 'name_taken') {
    return showErrors([{ control: $('#f-name'), message: 'is already used by another profile in this workspace' }]);
  }
  if (error.details.length) {
    return showErrors(error.details.map(({ field, message }) => ({ control: controlFor(field), field, message })));
  }
  if (error.status === 404 && editing) {
    return showSummary('This profile no longer exists: someone else deleted it.');
  }
  showSummary(error.message);
}

/**
 * The control a server error path is about: `config.pairs[1].key` is the key
 * of the second row; `config.pairs[3].extra` falls back to the pair list.
 */
function controlFor(field) {
  const controls = $$('[data-field]', form).filter((c) => !c.closest('fieldset[disabled]'));
  for (let path = field; path; path = path.replace(/(\.[^.[\]]*|\[\d+\])$/, '')) {
    const control = controls.find((c) => c.dataset.field === path);
    if (control) return control;
    if (!/(\.[^.[\]]*|\[\d+\])$/.test(path)) break;
  }
  return null;
}

/** Errors next to their fields, a summary at the top (announced), focus on the first. */
function showErrors(errors) {
  const lines = [];
  for (const { control, field, message } of errors) {
    if (control) {
      const widget = control.closest('[data-secret]');
      if (widget && $('.entry', widget).hidden) startReplacing(widget);
      const label = labelOf(control);
      showFieldError(control, `${label} ${message}`.trim());
      lines.push(`${label} ${message}`);
    } else {
      lines.push(`${field}: ${message}`);
    }
  }
  showSummary(errors.length === 1 ? 'Please correct this field:' : `Please correct these ${errors.length} fields:`, lines);
  const first = errors.find((e) => e.control)?.control;
  const focusable = first?.tagName === 'FIELDSET' || first?.getAttribute('role') === 'group'
    ? $('input:checked, input', first) : first;
  focusable?.focus();
}

function showSummary(message, lines = []) {
  formError.replaceChildren(el('strong', {}, message), lines.length ? el('ul', {}, lines.map((l) => el('li', {}, l))) : '');
  formError.hidden = false;
}

function clearErrors() {
  clearFieldErrors(form);
  formError.hidden = true;
  formError.replaceChildren();
}

/** Empties every field (secrets included) and forgets the edited profile. */
function reset() {
  editing = null;
  form.reset();
  clearErrors();
  pairsList.replaceChildren();
  for (const widget of $$('[data-secret]', form)) {
    delete widget.dataset.mode;
    delete widget.dataset.replacing;
    $('.mask', widget).textContent = '';
    showStored(widget, false);
  }
  $('#profile-dialog-meta').hidden = true;
  $('#edit-warning').hidden = true;
  $('#edit-warning').textContent = '';
  showTypeFields();
}
