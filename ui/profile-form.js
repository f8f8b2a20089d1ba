// The New / Edit profile dialog.
//
// Each type has its own fieldset in index.html (`.type-fields`); parts that
// several types share (`.shared-fields`: the OAuth signing key and token
// request settings, the client certificate) name their types. Only what the
// chosen type uses is shown (and enabled). Stored secrets, keys and
// certificates show what the API reads back and a "Replace" button
// (stored-fields.js); one that is not replaced is left out of the PATCH, so the
// server keeps it. Every input is cleared when the dialog closes, so no secret
// or PEM stays in the page after a save.

import { $, $$, announce, clearFieldErrors, el, fullDate, labelOf, openDialog, showFieldError, timeAgo } from './dom.js';
import { ApiError, call, paths, session } from './api.js';
import { editWarning } from './health.js';
import { clearStored, keepStored, prepareStoredField, removeStored, setStored, startReplacing } from './stored-fields.js';
import { fillTokenOptions, resetTokenOptions, setUpTokenOptions } from './token-options.js';
import {
  fillClientCertificate, requireClientCertificate, resetClientCertificate, setUpClientCertificate,
} from './client-certificate.js';
import { resetServiceAccountImport, setUpServiceAccountImport } from './service-account.js';
import { readProfileForm } from './profile-body.js';
import { fillLimits, resetLimits, setUpLimits } from './limits.js';

export const TYPE_LABELS = {
  bearer: 'Bearer token',
  api_key: 'API key',
  basic: 'Basic auth',
  oauth2_client_credentials: 'OAuth 2.0 (client credentials)',
  oauth2_jwt_bearer: 'OAuth 2.0 JWT bearer (service account)',
  hmac: 'HMAC-signed (webhooks)',
  aws_sigv4: 'AWS Signature V4',
  mtls: 'Client certificate (mTLS)',
};

/** The types that fetch an OAuth 2.0 token (their Test fetches one). */
export const OAUTH_TYPES = ['oauth2_client_credentials', 'oauth2_jwt_bearer'];

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

const widgetOf = (control) => control.closest('[data-secret]');

export function setUpProfileForm(saved) {
  onSaved = saved;
  $$('[data-secret]', form).forEach(prepareStoredField);
  form.addEventListener('change', (event) => {
    if (['type', 'client_auth', 'hmac_scheme'].includes(event.target.name)) showTypeFields();
  });
  form.addEventListener('click', (event) => {
    const widget = event.target.closest('[data-secret]');
    if (event.target.closest('.replace')) startReplacing(widget);
    else if (event.target.closest('.keep')) keepStored(widget);
    else if (event.target.closest('.remove-stored')) removeStored(widget);
    else if (event.target.closest('.undo-remove')) keepStored(widget);
    else if (event.target.closest('.remove-pair')) removePair(event.target.closest('.pair'));
  });
  addPair.addEventListener('click', () => $('.pair-key', appendPair()).focus());
  setUpTokenOptions();
  setUpClientCertificate();
  setUpServiceAccountImport(importServiceAccount);
  setUpLimits();
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
  fillStored(profile.type, profile.config ?? {});
  fillLimits(profile.limits);
  showTypeFields();
  openDialog(dialog, { focus: $('#f-name'), opener });
}

// ---------------------------------------------------------------- filling

function checkRadio(name, value) {
  const radio = $$(`input[name="${name}"]`, form).find((r) => r.value === value);
  if (radio) radio.checked = true;
}

const radioValue = (name) => $(`input[name="${name}"]:checked`, form)?.value ?? null;
const chosenType = () => radioValue('type');

function fillStored(type, config) {
  const set = (selector, value) => { $(selector, form).value = value ?? ''; };
  const stored = (selector, value) => { if (value !== undefined) setStored(widgetOf($(selector, form)), value); };
  switch (type) {
    case 'bearer':
      stored('#f-bearer-token', config.token);
      break;
    case 'basic':
      set('#f-basic-username', config.username);
      stored('#f-basic-password', config.password);
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
      stored('#f-oauth-client-secret', config.client_secret);
      set('#f-oauth-endpoint', config.token_endpoint);
      set('#f-oauth-scope', config.scope);
      set('#f-oauth-audience', config.audience);
      checkRadio('client_auth', config.client_auth ?? 'basic');
      fillSigningKey(config);
      fillTokenOptions(config);
      break;
    case 'oauth2_jwt_bearer':
      set('#f-jwt-endpoint', config.token_endpoint);
      set('#f-jwt-issuer', config.issuer);
      set('#f-jwt-subject', config.subject);
      set('#f-jwt-audience', config.audience);
      set('#f-jwt-scope', config.scope);
      fillSigningKey(config);
      fillTokenOptions(config);
      break;
    case 'hmac':
      stored('#f-hmac-secret', config.secret);
      checkRadio('hmac_scheme', config.scheme ?? 'standard_webhooks');
      set('#f-hmac-header', config.header);
      set('#f-hmac-algorithm', config.algorithm ?? 'sha256');
      set('#f-hmac-encoding', config.encoding ?? 'hex');
      set('#f-hmac-prefix', config.prefix);
      set('#f-hmac-template', config.template);
      set('#f-hmac-timestamp-header', config.timestamp_header);
      break;
    case 'aws_sigv4':
      set('#f-aws-key-id', config.access_key_id);
      stored('#f-aws-secret', config.secret_access_key);
      stored('#f-aws-session', config.session_token);
      set('#f-aws-region', config.region);
      set('#f-aws-service', config.service);
      break;
    case 'mtls':
      stored('#f-mtls-cert', config.certificate);
      stored('#f-mtls-key', config.private_key);
      stored('#f-mtls-ca', config.ca_certificate);
      break;
  }
  if (type !== 'mtls') fillClientCertificate(config.client_certificate);
}

function fillSigningKey(config) {
  if (config.private_key !== undefined) setStored(widgetOf($('#f-sign-key')), config.private_key);
  $('#f-sign-kid').value = config.key_id ?? '';
  $('#f-sign-alg').value = config.signing_alg ?? '';
  if (config.certificate !== undefined) setStored(widgetOf($('#f-sign-cert')), config.certificate);
}

/** A Google service-account key was read: it is a JWT bearer profile with these fields. */
function importServiceAccount(fields) {
  checkRadio('type', 'oauth2_jwt_bearer');
  showTypeFields();
  $('#f-jwt-endpoint').value = fields.token_endpoint;
  $('#f-jwt-issuer').value = fields.issuer;
  const key = widgetOf($('#f-sign-key'));
  if (key.dataset.mode === 'stored') startReplacing(key);
  $('#f-sign-key').value = fields.private_key;
  $('#f-sign-kid').value = fields.key_id;
  $('#f-sign-alg').value = '';
  $('#f-jwt-scope').focus();
}

/** Shows what the chosen type (and its choices) uses; hides and disables the rest. */
function showTypeFields() {
  const type = chosenType();
  const clientAuth = radioValue('client_auth') ?? 'basic';
  const toggle = (node, active) => {
    node.hidden = !active;
    if (node.tagName === 'FIELDSET') node.disabled = !active;
  };
  for (const fieldset of $$('.type-fields', form)) toggle(fieldset, fieldset.dataset.type === type);
  for (const fieldset of $$('.shared-fields', form)) {
    let active = fieldset.dataset.types.split(' ').includes(type);
    if (fieldset.hasAttribute('data-signing') && type === 'oauth2_client_credentials') {
      active = clientAuth === 'private_key_jwt';
    }
    toggle(fieldset, active);
  }
  for (const part of $$('[data-client-auth]', form)) {
    toggle(part, part.dataset.clientAuth.split(' ').includes(clientAuth));
  }
  for (const part of $$('[data-hmac-scheme]', form)) {
    toggle(part, part.dataset.hmacScheme === radioValue('hmac_scheme'));
  }
  requireClientCertificate(type === 'oauth2_client_credentials' && clientAuth === 'tls_client_auth');
  $('#sa-import').hidden = !(type === null || type === 'oauth2_jwt_bearer');
  if (type === 'api_key' && !pairsList.children.length) appendPair();
  $('#type-change-note').hidden = !(editing && type && type !== editing.type);
}

// ---------------------------------------------------------------- API key pairs

function appendPair() {
  const row = $('#pair-template').content.firstElementChild.cloneNode(true);
  pairCounter += 1;
  $('.pair-key', row).id = `pair-${pairCounter}-key`;
  $('.pair-value', row).id = `pair-${pairCounter}-value`;
  $('[data-label="key"]', row).htmlFor = `pair-${pairCounter}-key`;
  $('[data-label="value"]', row).htmlFor = `pair-${pairCounter}-value`;
  prepareStoredField($('[data-secret]', row));
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
    $('.replace', row).setAttribute('aria-label', `Replace value ${i + 1}`);
  });
  addPair.disabled = rows.length >= MAX_PAIRS;
  addPair.textContent = rows.length >= MAX_PAIRS ? `At most ${MAX_PAIRS} pairs` : '+ Add another';
}

// ---------------------------------------------------------------- saving

async function save() {
  clearErrors();
  const { body, missing } = readProfileForm(editing);
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
 * of the second row; `config.token_params[3].extra` falls back to that list;
 * `config.client_certificate.private_key` is the key of the client certificate.
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

/** Opens the collapsed sections around a control, so that it can be seen and focused. */
function reveal(control) {
  for (let node = control.closest('details'); node; node = node.parentElement?.closest('details')) node.open = true;
}

/** Errors next to their fields, a summary at the top (announced), focus on the first. */
function showErrors(errors) {
  const lines = [];
  for (const { control, field, message } of errors) {
    if (control) {
      reveal(control);
      const widget = widgetOf(control);
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
  const isGroup = first?.tagName === 'FIELDSET' || first?.getAttribute('role') === 'group';
  const focusable = isGroup ? $('input:checked, input:not([hidden]), textarea, select', first) : first;
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

/** Empties every field (secrets, keys and pasted JSON included) and forgets the edited profile. */
function reset() {
  editing = null;
  form.reset();
  clearErrors();
  pairsList.replaceChildren();
  resetTokenOptions();
  resetClientCertificate();
  resetServiceAccountImport();
  resetLimits();
  for (const widget of $$('[data-secret]', form)) clearStored(widget);
  $('#profile-dialog-meta').hidden = true;
  $('#edit-warning').hidden = true;
  $('#edit-warning').textContent = '';
  showTypeFields();
}
