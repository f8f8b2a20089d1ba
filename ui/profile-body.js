// What the New / Edit dialog sends: the form read into an API body
// (`{name, type, config, limits?}`), with the fields that are missing. Only what the
// chosen type uses is read. A stored secret, key or certificate that was not
// replaced is left out, so the server keeps it; one that was removed is sent
// as null; optional text left empty is left out of a new profile and sent as
// "" by an edit, which removes it.

import { $ } from './dom.js';
import { storedValue } from './stored-fields.js';
import { collectTokenOptions } from './token-options.js';
import { collectClientCertificate } from './client-certificate.js';
import { collectLimits } from './limits.js';

const form = $('#profile-form');
const pairsList = $('#pairs-list');
const widgetOf = (control) => control.closest('[data-secret]');
const radioValue = (name) => $(`input[name="${name}"]:checked`, form)?.value ?? null;

/**
 * Reads fields for one save: what a stored value sends, and which fields are
 * missing. A stored value may be kept only when the type stays the same (the
 * server keeps nothing of another type).
 */
class FormReader {
  constructor(type, editing) {
    this.type = type;
    this.editing = editing;
    this.sameType = editing?.type === type;
    this.missing = [];
  }

  required(control, value, message = 'is required') {
    if (value.trim() === '') this.missing.push({ control, message });
    return value;
  }

  text(selector) {
    return $(selector, form).value.trim();
  }

  requiredText(selector) {
    return this.required($(selector, form), this.text(selector));
  }

  /** Optional text: left out of a new profile when empty; "" on an edit removes it. */
  optional(selector, { trim = true } = {}) {
    const raw = $(selector, form).value;
    const value = trim ? raw.trim() : raw;
    if (value.trim() === '') return this.editing ? '' : undefined;
    return value;
  }

  /**
   * A field that may hold a stored value: undefined keeps it, null removes
   * it. Left empty, a required field is missing, an optional one is left out
   * and `empty: 'send'` sends "" (a password may be empty).
   */
  stored(selector, { empty = $(selector, form).hasAttribute('data-required') ? 'missing' : 'omit' } = {}) {
    const control = $(selector, form);
    const value = storedValue(widgetOf(control), this.sameType);
    if (value === undefined || value === null || value.trim() !== '') return value;
    if (empty === 'missing') return this.required(control, value);
    return empty === 'send' ? value : undefined;
  }
}

/**
 * Reads the form into an API body, with the fields that are missing.
 * `editing` is the profile being edited (as the API shows it), or null.
 */
export function readProfileForm(editing) {
  const type = radioValue('type');
  const r = new FormReader(type, editing);
  const name = r.requiredText('#f-name');
  if (!type) r.missing.push({ control: $('fieldset.types', form), message: 'must be chosen' });
  const config = {};
  if (type === 'bearer') {
    config.token = r.stored('#f-bearer-token');
  } else if (type === 'basic') {
    config.username = r.required($('#f-basic-username'), $('#f-basic-username').value);
    config.password = r.stored('#f-basic-password', { empty: 'send' });
  } else if (type === 'api_key') {
    config.method = radioValue('method');
    config.pairs = [...pairsList.children].map((row) => {
      const pair = { key: r.required($('.pair-key', row), $('.pair-key', row).value.trim()) };
      const value = r.stored(`#${$('.pair-value', row).id}`);
      if (value !== undefined) pair.value = value;
      return pair;
    });
  } else if (type === 'oauth2_client_credentials') {
    config.client_id = r.requiredText('#f-oauth-client-id');
    config.token_endpoint = r.requiredText('#f-oauth-endpoint');
    config.scope = r.optional('#f-oauth-scope');
    config.audience = r.optional('#f-oauth-audience');
    config.client_auth = radioValue('client_auth') ?? 'basic';
    // A stored secret or key that the chosen method does not use is not kept either.
    const stored = r.sameType ? editing.config : {};
    const noKey = { private_key: null, key_id: null, signing_alg: null, certificate: null };
    if (['basic', 'post'].includes(config.client_auth)) config.client_secret = r.stored('#f-oauth-client-secret');
    else if (stored.client_secret) config.client_secret = null;
    if (config.client_auth === 'private_key_jwt') collectSigningKey(r, config);
    else if (stored.private_key) Object.assign(config, noKey);
    collectTokenOptions(r, config);
  } else if (type === 'oauth2_jwt_bearer') {
    config.token_endpoint = r.requiredText('#f-jwt-endpoint');
    config.issuer = r.requiredText('#f-jwt-issuer');
    config.subject = r.optional('#f-jwt-subject');
    config.audience = r.optional('#f-jwt-audience');
    config.scope = r.optional('#f-jwt-scope');
    collectSigningKey(r, config);
    collectTokenOptions(r, config);
  } else if (type === 'hmac') {
    config.secret = r.stored('#f-hmac-secret');
    config.scheme = radioValue('hmac_scheme');
    if (config.scheme === 'custom') {
      config.header = r.requiredText('#f-hmac-header');
      config.algorithm = r.text('#f-hmac-algorithm');
      config.encoding = r.text('#f-hmac-encoding');
      config.prefix = r.optional('#f-hmac-prefix', { trim: false });
      config.template = r.optional('#f-hmac-template', { trim: false });
      config.timestamp_header = r.optional('#f-hmac-timestamp-header');
    }
  } else if (type === 'aws_sigv4') {
    config.access_key_id = r.requiredText('#f-aws-key-id');
    config.secret_access_key = r.stored('#f-aws-secret');
    config.session_token = r.stored('#f-aws-session');
    config.region = r.requiredText('#f-aws-region');
    config.service = r.requiredText('#f-aws-service');
  } else if (type === 'mtls') {
    config.certificate = r.stored('#f-mtls-cert');
    config.private_key = r.stored('#f-mtls-key');
    config.ca_certificate = r.stored('#f-mtls-ca');
  }
  if (type && type !== 'mtls') config.client_certificate = collectClientCertificate(r);
  for (const key of Object.keys(config)) if (config[key] === undefined) delete config[key];
  const body = { name, type, config };
  const limits = collectLimits(r);
  if (limits !== undefined) body.limits = limits;
  return { body, missing: r.missing };
}

function collectSigningKey(r, config) {
  config.private_key = r.stored('#f-sign-key');
  config.key_id = r.optional('#f-sign-kid');
  const alg = r.text('#f-sign-alg');
  config.signing_alg = alg || (r.editing ? null : undefined);
  config.certificate = r.stored('#f-sign-cert');
}
