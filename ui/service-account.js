// Import of a Google service-account key (the JSON file Google Cloud hands
// out): its `token_uri`, `client_email`, `private_key` and `private_key_id`
// become the token endpoint, issuer, private key and key ID of an
// `oauth2_jwt_bearer` profile. The JSON is read in the page only: the pasted
// text and the chosen file are cleared at once, and nothing else of it is kept.

import { $, clearFieldErrors, showFieldError } from './dom.js';

/** A key file is about 2.4 KiB; anything much larger is something else. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

const box = $('#sa-import');
const text = $('#sa-json');
const file = $('#sa-file');
const status = $('#sa-status');

/** `onImport({token_endpoint, issuer, private_key, key_id})` fills the form. */
export function setUpServiceAccountImport(onImport) {
  const run = (source, control) => {
    clearFieldErrors(box);
    status.textContent = '';
    let fields;
    try {
      fields = readServiceAccount(source);
    } catch (error) {
      showFieldError(control, error.message);
      control.focus();
      return;
    }
    text.value = '';
    file.value = '';
    onImport(fields);
    status.textContent = `Imported the key of ${fields.issuer}. The JSON was not kept; check the fields below, ` +
      'then save.';
  };
  $('#sa-import-text').addEventListener('click', () => run(text.value, text));
  file.addEventListener('change', async () => {
    const chosen = file.files?.[0];
    if (!chosen) return;
    if (chosen.size > MAX_KEY_FILE_BYTES) {
      file.value = '';
      clearFieldErrors(box);
      showFieldError(file, `“${chosen.name}” is too large to be a service-account key.`);
      return;
    }
    const source = await chosen.text();
    file.value = '';
    run(source, file);
  });
}

export function resetServiceAccountImport() {
  text.value = '';
  file.value = '';
  status.textContent = '';
  clearFieldErrors(box);
  box.open = false;
}

/** The four fields of a service-account key, or an Error saying why this is not one. */
export function readServiceAccount(source) {
  const fail = (why) => new Error(`This is not a Google service-account key: ${why}.`);
  if (!source.trim()) throw new Error('Paste the JSON key first, or choose its file.');
  let key;
  try {
    key = JSON.parse(source);
  } catch {
    throw fail('it is not valid JSON');
  }
  if (key === null || typeof key !== 'object' || Array.isArray(key)) throw fail('it is not a JSON object');
  if (key.type !== 'service_account') {
    throw fail(key.type
      ? `its "type" is "${String(key.type)}", not "service_account"`
      : 'it has no "type": "service_account"');
  }
  const text = (name) => (typeof key[name] === 'string' ? key[name].trim() : '');
  if (!/-----BEGIN (RSA )?PRIVATE KEY-----/.test(text('private_key'))) throw fail('it has no "private_key" PEM');
  if (!text('client_email')) throw fail('it has no "client_email"');
  if (!/^https?:\/\/\S+$/.test(text('token_uri'))) throw fail('it has no "token_uri" URL');
  return {
    token_endpoint: text('token_uri'),
    issuer: text('client_email'),
    private_key: key.private_key,
    key_id: text('private_key_id'),
  };
}
