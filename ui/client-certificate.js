// The optional "Client certificate (mTLS)" section of every type but `mtls`:
// `config.client_certificate = {certificate, private_key, ca_certificate?}`,
// presented in the TLS handshake on top of the type's own credentials.
// Collapsed while empty; a stored one shows its facts and can be replaced in
// parts or removed (`client_certificate: null`).

import { $, longDate } from './dom.js';
import { expiryWarning, setStored, storedValue } from './stored-fields.js';

const section = $('[data-client-certificate]');
const details = $('#cc-details');
const cert = $('#f-cc-cert');
const key = $('#f-cc-key');
const ca = $('#f-cc-ca');
const widget = (control) => control.closest('[data-secret]');

/** The stored certificate (as the API reads it back), or null. */
let stored = null;
let removed = false;
let required = false;

export function setUpClientCertificate() {
  $('#cc-remove').addEventListener('click', () => {
    removed = true;
    render();
    $('#cc-undo-remove').focus();
  });
  $('#cc-undo-remove').addEventListener('click', () => {
    removed = false;
    render();
    $('#cc-remove').focus();
  });
}

export function fillClientCertificate(view) {
  stored = view ?? null;
  if (stored) {
    setStored(widget(cert), stored.certificate);
    setStored(widget(key), stored.private_key);
    if (stored.ca_certificate) setStored(widget(ca), stored.ca_certificate);
  }
  details.open = Boolean(stored);
  render();
}

export function resetClientCertificate() {
  stored = null;
  removed = false;
  required = false;
  details.open = false;
  render();
}

/** With `client_auth` `tls_client_auth` the certificate is the credential: opened and required. */
export function requireClientCertificate(needed) {
  required = needed;
  if (needed) details.open = true;
  render();
}

function render() {
  $('#cc-removed').hidden = !removed;
  $('#cc-fields').hidden = removed;
  $('#cc-remove').hidden = !stored || removed;
  const warning = stored && !removed ? expiryWarning(stored.certificate.not_after) : null;
  let state = required ? 'required for client certificate authentication' : 'optional';
  if (removed) state = 'removed when you save';
  else if (stored) state = `stored · expires ${longDate(stored.certificate.not_after)}${warning ? ` · ⚠ ${warning}` : ''}`;
  $('#cc-state').textContent = state;
  $('#cc-state').classList.toggle('warning', Boolean(warning));
}

/**
 * What to send as `config.client_certificate`: undefined (leave it as it
 * is), null (remove it) or the fields entered. Missing fields go to `reader`.
 */
export function collectClientCertificate(reader) {
  if (section.disabled) return undefined;
  if (removed) return reader.editing ? null : undefined;
  const mayKeep = Boolean(stored) && reader.sameType;
  const value = (control) => {
    const v = storedValue(widget(control), mayKeep);
    return typeof v === 'string' && v.trim() === '' ? undefined : v;
  };
  const fields = { certificate: value(cert), private_key: value(key), ca_certificate: value(ca) };
  if (mayKeep) {
    const changed = Object.entries(fields).filter(([, v]) => v !== undefined);
    return changed.length ? Object.fromEntries(changed) : undefined;
  }
  // Nothing stored that may be kept: a new certificate, whole, or none.
  const entered = Object.values(fields).some((v) => v !== undefined);
  const carriedOver = Boolean(stored); // Stored for another type: it does not carry over.
  if (!entered && !required && !carriedOver) return undefined;
  const message = carriedOver && !entered
    ? 'is required again for the new type (or remove the client certificate)'
    : 'is required';
  reader.required(cert, fields.certificate ?? '', message);
  reader.required(key, fields.private_key ?? '', message);
  const certificate = { certificate: fields.certificate, private_key: fields.private_key };
  if (fields.ca_certificate) certificate.ca_certificate = fields.ca_certificate;
  return certificate;
}
