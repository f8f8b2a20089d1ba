// Manage → Auth Profiles: sign-in, the list (search, health and type
// filters, pages), and the Delete and Test dialogs. The New / Edit form is
// profile-form.js; health (the list's dots, Details, warnings) is health.js.

import { $, $$, announce, clearFieldErrors, duration, el, fullDate, openDialog, setUpDialogs, showFieldError, timeAgo }
  from './dom.js';
import { ApiError, call, paths, session, whenUnauthorized } from './api.js';
import { OAUTH_TYPES, TYPE_LABELS, openEdit, openNew, setUpProfileForm } from './profile-form.js';
import { deleteWarning, healthCell, openDetails, setUpDetails } from './health.js';
import { expiryWarning } from './stored-fields.js';
import { limitsText } from './limits.js';

const PAGE_SIZE = 20;
const SEARCH_DELAY_MS = 300;

// ---------------------------------------------------------------- sign in

function showSignIn(message) {
  for (const dialog of $$('dialog[open]')) dialog.close();
  $('#profiles-view').hidden = true;
  $('#session').hidden = true;
  $('#signin-view').hidden = false;
  $('#signin-workspace').value = session.workspace;
  const error = $('#signin-error');
  error.textContent = message ?? '';
  error.hidden = !message;
  $('#signin-token').focus();
}

function showProfiles() {
  $('#signin-view').hidden = true;
  $('#profiles-view').hidden = false;
  $('#session').hidden = false;
  $('#workspace').value = session.workspace;
  $('#table-caption').textContent = `Auth profiles of workspace ${session.workspace}`;
}

async function signIn(event) {
  event.preventDefault();
  const tokenInput = $('#signin-token');
  const workspaceInput = $('#signin-workspace');
  const error = $('#signin-error');
  clearFieldErrors(event.target);
  error.hidden = true;
  const token = tokenInput.value.trim();
  const workspace = workspaceInput.value.trim();
  if (!token) showFieldError(tokenInput, 'Enter the admin token.');
  if (!workspace) showFieldError(workspaceInput, 'Enter a workspace.');
  if (!token || !workspace) return $('[aria-invalid="true"]', event.target).focus();
  try {
    // Try the token before keeping it.
    await call('GET', `${paths.profiles(workspace)}?limit=1`, { token });
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    error.textContent = e.status === 401
      ? 'That admin token was not accepted. Check it (AUTHRELAY_ADMIN_TOKEN) and try again.'
      : e.details.length ? `Workspace: ${e.details[0].message}.` : e.message;
    error.hidden = false;
    (e.status === 401 ? tokenInput : workspaceInput).focus();
    if (e.status === 401) tokenInput.select();
    return;
  }
  session.signIn(token, workspace);
  tokenInput.value = '';
  resetList();
  showProfiles();
  $('#profiles-title').setAttribute('tabindex', '-1');
  $('#profiles-title').focus();
  await loadList();
}

function signOut() {
  session.signOut();
  showSignIn();
  announce('Signed out. The token was removed from this tab.');
}

async function switchWorkspace(event) {
  event.preventDefault();
  const input = $('#workspace');
  clearFieldErrors(event.target);
  const workspace = input.value.trim();
  if (!workspace) return showFieldError(input, 'Enter a workspace.');
  session.setWorkspace(workspace);
  resetList();
  showProfiles();
  await loadList();
  announce(`Workspace ${workspace}.`);
}

// ---------------------------------------------------------------- the list

const list = {
  q: '',
  type: '',
  state: '', // health states, comma-separated ('' for any)
  cursor: null, // the cursor of the page shown (null: first page)
  previous: [], // cursors of the pages before it
  next: null,
  request: null, // AbortController of the request in flight
  items: [],
};

function resetList() {
  Object.assign(list, { q: '', type: '', state: '', cursor: null, previous: [], next: null, items: [] });
  $('#search').value = '';
  $('#type-filter').value = '';
  $('#state-filter').value = '';
}

async function loadList() {
  list.request?.abort();
  const controller = new AbortController();
  list.request = controller;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (list.q) params.set('q', list.q);
  if (list.type) params.set('type', list.type);
  if (list.state) params.set('state', list.state);
  if (list.cursor) params.set('cursor', list.cursor);
  const card = $('#table-card');
  card.setAttribute('aria-busy', 'true');
  try {
    const page = await call('GET', `${paths.profiles(session.workspace)}?${params}`, { signal: controller.signal });
    list.items = page.items;
    list.next = page.next_cursor ?? null;
    $('#list-error').hidden = true;
    renderList();
  } catch (error) {
    if (error.name === 'AbortError') return;
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401) return;
    const message = error.details.length ? `${error.details[0].field} ${error.details[0].message}` : error.message;
    $('#list-error').textContent = `Could not load the profiles. ${message}`;
    $('#list-error').hidden = false;
  } finally {
    if (list.request === controller) {
      list.request = null;
      card.removeAttribute('aria-busy');
    }
  }
}

function renderList() {
  const filtered = Boolean(list.q || list.type || list.state);
  const onFirstPage = !list.cursor;
  const empty = list.items.length === 0;
  $('#profiles-body').replaceChildren(...list.items.map(renderRow));
  $('#table-card').classList.toggle('is-empty', empty);
  $('#empty-state').hidden = !(empty && !filtered && onFirstPage);
  $('#no-match').hidden = !(empty && filtered);
  if (empty && filtered) {
    const what = [list.q && `“${list.q}”`, list.type && TYPE_LABELS[list.type]].filter(Boolean).join(' of type ');
    const health = list.state && $('#state-filter').selectedOptions[0]?.textContent;
    const text = [what && `matches ${what}`, health && `is in the state ${health}`].filter(Boolean).join(' and ');
    $('#no-match-text').textContent = `No profile in ${session.workspace} ${text}.`;
  }
  const pageNumber = list.previous.length + 1;
  $('#pager').hidden = onFirstPage && !list.next;
  $('#prev-page').disabled = onFirstPage;
  $('#next-page').disabled = !list.next;
  $('#page-label').textContent = `Page ${pageNumber}`;
  const count = list.items.length;
  const noun = count === 1 ? 'profile' : 'profiles';
  let status;
  if (empty) status = filtered ? 'No matching profiles.' : 'No profiles yet.';
  else if (filtered) status = `${count}${list.next ? '+' : ''} matching ${noun}`;
  else status = `${count}${list.next ? '+' : ''} ${noun}`;
  if (pageNumber > 1 || list.next) status += ` · page ${pageNumber}`;
  $('#list-status').textContent = status;
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return url; // Shown as stored.
  }
}

/** One line under the name: what the credentials are, never a secret. */
function describe(profile) {
  const c = profile.config ?? {};
  let line;
  switch (profile.type) {
    case 'api_key': {
      const keys = (c.pairs ?? []).map((p) => p.key).join(', ');
      line = `${{ header: 'Headers', query: 'Query', body: 'Body' }[c.method] ?? c.method}: ${keys}`;
      break;
    }
    case 'basic':
      line = `User ${c.username}`;
      break;
    case 'oauth2_client_credentials':
      line = `Token from ${hostOf(c.token_endpoint)}${c.scope ? ` · scope ${c.scope}` : ''}`;
      break;
    case 'oauth2_jwt_bearer':
      line = `Token from ${hostOf(c.token_endpoint)} · issuer ${c.issuer}`;
      break;
    case 'hmac':
      line = c.scheme === 'custom'
        ? `Header ${c.header} (${c.algorithm}, ${c.encoding})`
        : 'Standard Webhooks signature';
      break;
    case 'aws_sigv4':
      line = `${c.service} in ${c.region} · key ${c.access_key_id}`;
      break;
    case 'mtls':
      line = `Certificate ${c.certificate?.subject ?? ''}`;
      break;
    default:
      line = 'Authorization: Bearer';
  }
  if (c.client_certificate) line += ' · with a client certificate';
  return line;
}

/** "Client certificate: expires in 5 days", for any certificate of the profile near or past its expiry. */
function certificateWarning(profile) {
  const c = profile.config ?? {};
  const certificates = [
    ['Certificate', c.certificate],
    ['Client certificate', c.client_certificate?.certificate],
    ['CA certificate', c.ca_certificate ?? c.client_certificate?.ca_certificate],
  ];
  for (const [what, view] of certificates) {
    const warning = view?.not_after && expiryWarning(view.not_after);
    if (warning) return `${what}: ${warning.charAt(0).toLowerCase()}${warning.slice(1)}`;
  }
  return null;
}

function renderRow(profile) {
  const warning = certificateWarning(profile);
  const action = (name, label, extra = '') => el('button', {
    type: 'button',
    class: `button small ghost ${extra}`,
    dataset: { action: name, id: profile.id },
    'aria-label': `${label} ${profile.name}`,
  }, label);
  return el('tr', { dataset: { id: profile.id } },
    el('td', {},
      el('div', { class: 'profile-name' }, profile.name),
      el('div', { class: 'profile-detail' }, describe(profile)),
      profile.limits ? el('div', { class: 'profile-limits' }, `Limits: ${limitsText(profile.limits)}`) : null,
      warning ? el('div', { class: 'profile-warning' }, `⚠ ${warning}`) : null),
    el('td', {}, el('span', { class: `badge ${profile.type}` }, TYPE_LABELS[profile.type] ?? profile.type)),
    healthCell(profile),
    el('td', { class: 'num' }, `v${profile.version}`),
    el('td', {}, el('time', { datetime: profile.updated_at, title: fullDate(profile.updated_at) },
      timeAgo(profile.updated_at))),
    el('td', {}, el('div', { class: 'row-actions' },
      action('details', 'Details'),
      action('test', 'Test'),
      action('edit', 'Edit'),
      action('delete', 'Delete', 'danger-text'))));
}

function firstPage() {
  list.cursor = null;
  list.previous = [];
  return loadList();
}

let searchTimer;

function wireList() {
  $('#search').addEventListener('input', (event) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      list.q = event.target.value.trim();
      firstPage();
    }, SEARCH_DELAY_MS);
  });
  $('#type-filter').addEventListener('change', (event) => {
    list.type = event.target.value;
    firstPage();
  });
  $('#state-filter').addEventListener('change', (event) => {
    list.state = event.target.value;
    firstPage();
  });
  $('#clear-search').addEventListener('click', () => {
    resetList();
    $('#search').focus();
    loadList();
  });
  $('#next-page').addEventListener('click', () => {
    if (!list.next) return;
    list.previous.push(list.cursor);
    list.cursor = list.next;
    loadList();
  });
  $('#prev-page').addEventListener('click', async () => {
    list.cursor = list.previous.pop() ?? null;
    await loadList();
    if ($('#prev-page').disabled) $('#next-page').focus();
  });
  $('#new-profile').addEventListener('click', (event) => openNew(event.currentTarget));
  $('#empty-create').addEventListener('click', (event) => openNew(event.currentTarget));
  $('#profiles-body').addEventListener('click', async (event) => {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const profile = list.items.find((p) => p.id === button.dataset.id);
    if (!profile) return;
    try {
      if (button.dataset.action === 'edit') await openEdit(profile.id, button);
      else if (button.dataset.action === 'delete') await openDelete(profile, button);
      else if (button.dataset.action === 'test') openTest(profile, button);
      else if (button.dataset.action === 'details') await openDetails(profile, button);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 404) {
        announce(`“${profile.name}” no longer exists.`);
        await loadList();
      } else if (error.status !== 401) {
        $('#list-error').textContent = error.message;
        $('#list-error').hidden = false;
      }
    }
  });
}

// ---------------------------------------------------------------- delete

const USAGE_GROUPS = [
  ['pre_call_actions', 'Pre-Call actions'],
  ['during_call_actions', 'During-Call actions'],
  ['post_call_actions', 'Post-Call actions'],
  ['flow_nodes', 'Flow nodes'],
];

let deleting = null;

async function openDelete(profile, opener) {
  deleting = profile;
  // Fresh health too: a profile no action references may still be named by jobs.
  const [usage, fresh] = await Promise.all([
    call('GET', paths.usage(session.workspace, profile.id)),
    call('GET', paths.profile(session.workspace, profile.id)),
  ]);
  deleting = fresh;
  renderDelete(usage);
  const dialog = $('#delete-dialog');
  openDialog(dialog, { focus: $('#delete-cancel'), opener });
}

function renderDelete(usage) {
  const inUse = usage.in_use;
  const name = deleting.name;
  $('#delete-error').hidden = true;
  $('#delete-title').textContent = inUse ? `“${name}” is in use` : `Delete “${name}”?`;
  $('#delete-text').textContent = inUse
    ? 'It cannot be deleted while these still use it. Remove the profile from each of them, then check again.'
    : 'Actions and flows can no longer use it once it is deleted. This cannot be undone.';
  const box = $('#usage');
  box.hidden = !inUse;
  box.replaceChildren(...(inUse ? usageSummary(usage) : []));
  const warning = inUse ? null : deleteWarning(deleting.health);
  $('#delete-warning').textContent = warning ?? '';
  $('#delete-warning').hidden = !warning;
  $('#delete-confirm').hidden = inUse;
  $('#usage-recheck').hidden = !inUse;
  $('#delete-cancel').textContent = inUse ? 'Close' : 'Cancel';
}

function usageSummary(usage) {
  const nodes = [];
  for (const [key, title] of USAGE_GROUPS) {
    const items = usage[key] ?? [];
    if (!items.length) continue;
    nodes.push(el('h3', {}, `${title} (${items.length})`));
    nodes.push(el('ul', {}, items.map((item) =>
      el('li', {}, item.name || item.id, item.name ? el('span', { class: 'ref-id' }, item.id) : ''))));
  }
  return nodes;
}

async function confirmDelete() {
  const button = $('#delete-confirm');
  button.disabled = true;
  try {
    await call('DELETE', paths.profile(session.workspace, deleting.id));
    const name = deleting.name;
    await loadList();
    $('#delete-dialog').close();
    announce(`Profile “${name}” deleted.`);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.code === 'profile_in_use' && error.body?.usage) {
      renderDelete(error.body.usage);
      $('#delete-cancel').focus();
    } else if (error.status === 404) {
      await loadList();
      $('#delete-dialog').close();
      announce(`“${deleting.name}” was already deleted.`);
    } else if (error.status !== 401) {
      $('#delete-error').textContent = error.message;
      $('#delete-error').hidden = false;
    }
  } finally {
    button.disabled = false;
  }
}

async function recheckUsage() {
  try {
    renderDelete(await call('GET', paths.usage(session.workspace, deleting.id)));
    ($('#delete-confirm').hidden ? $('#usage-recheck') : $('#delete-confirm')).focus();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    $('#delete-error').textContent = error.message;
    $('#delete-error').hidden = false;
  }
}

// ---------------------------------------------------------------- test

let testing = null;

function openTest(profile, opener) {
  testing = profile;
  const oauth = OAUTH_TYPES.includes(profile.type);
  $('#test-title').textContent = `Test “${profile.name}”`;
  $('#test-subtitle').textContent = TYPE_LABELS[profile.type] ?? profile.type;
  $('#test-intro').textContent = oauth
    ? 'Fetches a fresh access token from the token endpoint now. The token itself is never shown. ' +
      'Optionally, also call a URL with it.'
    : 'Checks that the stored credentials can be used. Give a URL to call it with them for real.';
  $('#test-url').value = '';
  clearFieldErrors($('#test-form'));
  $('#test-result').replaceChildren();
  $('#test-result').className = 'test-result';
  $('#test-run').textContent = oauth ? 'Fetch a token' : 'Run test';
  openDialog($('#test-dialog'), { focus: oauth ? $('#test-run') : $('#test-url'), opener });
  if (oauth) runTest();
}

async function runTest(event) {
  event?.preventDefault();
  const profile = testing;
  const result = $('#test-result');
  const urlInput = $('#test-url');
  const button = $('#test-run');
  clearFieldErrors($('#test-form'));
  const url = urlInput.value.trim();
  result.className = 'test-result pending';
  result.replaceChildren(el('p', { class: 'headline' }, url ? `Calling ${url}…` : 'Testing…'));
  button.disabled = true;
  try {
    const report = await call('POST', paths.test(session.workspace, profile.id), { body: url ? { url } : {} });
    if (testing !== profile) return;
    renderReport(report);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    const urlError = error.details.find((d) => d.field === 'url');
    if (urlError) {
      showFieldError(urlInput, `URL ${urlError.message}`);
      urlInput.focus();
    }
    result.className = 'test-result fail';
    result.replaceChildren(el('div', { role: 'alert' },
      el('p', { class: 'headline' }, '✗ The test could not run'),
      el('p', {}, urlError ? `URL ${urlError.message}.` : error.message)));
  } finally {
    button.disabled = false;
    if (OAUTH_TYPES.includes(profile.type)) button.textContent = 'Test again';
  }
}

function renderReport(report) {
  const result = $('#test-result');
  const facts = [];
  const fact = (term, value) => facts.push(el('dt', {}, term), el('dd', {}, value));
  let headline;
  if (report.ok) {
    headline = {
      token_fetched: '✓ Token fetched',
      url_called: `✓ The URL answered HTTP ${report.status}`,
      not_called: '✓ The stored credentials are ready to use',
    }[report.check] ?? '✓ Test passed';
  } else {
    headline = report.check === 'token_fetched' ? '✗ No token was issued' : '✗ Test failed';
  }
  if (report.token_type) fact('Token type', report.token_type);
  if (report.expires_in !== undefined) fact('Expires in', `${duration(report.expires_in)} (${report.expires_in} s)`);
  if (report.check === 'token_fetched' || report.token_type) fact('Granted scope', report.scope || 'none reported');
  if (report.status !== undefined && report.ok === false) fact('HTTP status', String(report.status));
  if (report.error) fact('Error', report.error);
  fact('Took', `${report.duration_ms} ms`);
  const notes = [];
  if (report.token_type) notes.push('The token itself is never shown.');
  if (report.check === 'not_called') notes.push('No URL was given, so nothing was called.');
  const body = [
    el('p', { class: 'headline' }, headline),
    el('dl', {}, facts),
    notes.length ? el('p', { class: 'note' }, notes.join(' ')) : '',
  ];
  result.className = `test-result ${report.ok ? 'ok' : 'fail'}`;
  result.replaceChildren(report.ok ? el('div', {}, body) : el('div', { role: 'alert' }, body));
}

// ---------------------------------------------------------------- start

function start() {
  setUpDialogs(() => ($('#profiles-view').hidden ? $('#signin-token') : $('#new-profile')));
  setUpProfileForm(async () => { await loadList(); });
  setUpDetails();
  wireList();
  $('#signin-form').addEventListener('submit', signIn);
  $('#sign-out').addEventListener('click', signOut);
  $('#workspace-form').addEventListener('submit', switchWorkspace);
  $('#delete-confirm').addEventListener('click', confirmDelete);
  $('#usage-recheck').addEventListener('click', recheckUsage);
  $('#test-form').addEventListener('submit', runTest);
  $('#test-dialog').addEventListener('close', () => { testing = null; });
  whenUnauthorized(() => {
    session.signOut();
    showSignIn('The admin token was refused (it may have been changed). Sign in again.');
  });
  if (session.token && session.workspace) {
    showProfiles();
    loadList();
  } else {
    showSignIn();
  }
}

start();
