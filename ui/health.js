// Credential health on the page: the dot and line of each profile in the
// list, the Details dialog (health, traffic limits and the profile's history
// from the audit trail), and the warnings shown before a profile that is in use is edited or
// deleted.

import { $, el, fullDate, openDialog, shortTime, timeAgo } from './dom.js';
import { ApiError, call, paths, session } from './api.js';
import { limitsText } from './limits.js';

const STATE_LABELS = {
  unused: 'Not used yet',
  ok: 'OK',
  failing: 'Failing',
  deauthorized: 'Deauthorized',
};

const HISTORY_PAGE = 10;

/** "Failing since 10:02 — 401 from api.example.com", "OK · last used 2 minutes ago". */
export function healthLine(health) {
  const state = health?.state ?? 'unused';
  switch (state) {
    case 'ok':
      return health.last_used_at ? `OK · last used ${timeAgo(health.last_used_at)}` : 'OK';
    case 'failing':
    case 'deauthorized': {
      const since = health.since ? ` since ${shortTime(health.since)}` : '';
      const why = health.last_failure?.message ? ` — ${health.last_failure.message}` : '';
      return `${STATE_LABELS[state]}${since}${why}`;
    }
    default:
      return STATE_LABELS.unused;
  }
}

/** The list's Health cell: a coloured dot (decorative) and the line. */
export function healthCell(profile) {
  const state = profile.health?.state ?? 'unused';
  return el('td', { class: 'health' },
    el('span', { class: `health-dot ${state}`, 'aria-hidden': 'true' }),
    el('span', { class: `health-line ${state}` }, healthLine(profile.health)));
}

const jobs = (n) => `${n.toLocaleString('en')} job${n === 1 ? '' : 's'}`;

/** Jobs in the last 24 hours, all outcomes. */
const recentJobs = (health) => (health?.last_24h?.succeeded ?? 0) + (health?.last_24h?.failed ?? 0);

function referenceNames(usage) {
  const all = [...usage.pre_call_actions, ...usage.during_call_actions, ...usage.post_call_actions, ...usage.flow_nodes];
  return all.map((item) => item.name || item.id);
}

/**
 * What to say before a profile that is in use is edited: which actions and
 * flow nodes use it, and how many jobs it ran lately. Null when it is not in use.
 */
export function editWarning(usage, health) {
  const parts = [];
  if (usage?.in_use) {
    const names = referenceNames(usage);
    const noun = names.length === 1 ? 'action or flow node' : 'actions or flow nodes';
    parts.push(`${names.length} ${noun} use it (${names.join(', ')})`);
  }
  const recent = recentJobs(health);
  if (recent > 0) parts.push(`it ran ${jobs(recent)} in the last 24 hours`);
  if (!parts.length) return null;
  return `This profile is in use: ${parts.join(', and ')}. Saving changes applies them to every job at once.`;
}

/** What to say before an unreferenced profile that jobs used lately is deleted. Null when unused lately. */
export function deleteWarning(health) {
  const recent = recentJobs(health);
  if (!recent || !health.last_used_at) return null;
  return `Jobs used this profile ${timeAgo(health.last_used_at)} (${jobs(recent)} in the last 24 hours). ` +
    'Jobs that still name it fail with “profile not found” once it is deleted.';
}

// ---------------------------------------------------------------- details

const USAGE_KINDS = {
  pre_call_action: 'Pre-Call action',
  during_call_action: 'During-Call action',
  post_call_action: 'Post-Call action',
  flow_node: 'flow node',
};

function describeEntry(entry) {
  const fields = entry.fields?.length ? ` (${entry.fields.join(', ')})` : '';
  const ref = entry.reference;
  const refName = ref ? `${USAGE_KINDS[ref.kind] ?? ref.kind} “${ref.name || ref.id}”` : '';
  switch (entry.action) {
    case 'created': return `Created${fields}`;
    case 'updated': return `Changed${fields}`;
    case 'deleted': return 'Deleted';
    case 'referenced': return `Used by ${refName}`;
    case 'unreferenced': return `No longer used by ${refName}`;
    case 'tested': return entry.ok === false ? 'Tested: failed' : 'Tested: passed';
    case 'rotated': return `Re-encrypted under a new master key${fields}`;
    default: return entry.action;
  }
}

let details = { profile: null, cursor: null };

export async function openDetails(profile, opener) {
  details = { profile, cursor: null };
  const fresh = await call('GET', paths.profile(session.workspace, profile.id));
  details.profile = fresh;
  $('#details-title').textContent = `“${fresh.name}”`;
  $('#details-subtitle').textContent = `Version ${fresh.version} · updated ${timeAgo(fresh.updated_at)}`;
  renderHealth(fresh.health);
  const limits = limitsText(fresh.limits);
  $('#details-limits').textContent = `${limits.charAt(0).toUpperCase()}${limits.slice(1)}`;
  $('#history-list').replaceChildren();
  $('#history-error').hidden = true;
  await loadHistory();
  openDialog($('#details-dialog'), { focus: $('#details-close'), opener });
}

function renderHealth(health) {
  const state = health?.state ?? 'unused';
  const facts = [];
  const fact = (term, ...value) => facts.push(el('dt', {}, term), el('dd', {}, ...value));
  const when = (iso) => (iso ? el('time', { datetime: iso, title: fullDate(iso) }, timeAgo(iso)) : 'never');
  fact('State', el('span', { class: `health-dot ${state}`, 'aria-hidden': 'true' }), healthLine(health));
  fact('Last used', when(health?.last_used_at));
  fact('Last success', when(health?.last_success_at));
  const failure = health?.last_failure;
  if (failure) {
    fact('Last failure', when(failure.at), ` — ${failure.message}`,
      el('span', { class: 'muted' }, ` (${failure.kind}${failure.status ? ` ${failure.status}` : ''})`));
  }
  const counts = health?.last_24h ?? { succeeded: 0, failed: 0 };
  fact('Last 24 hours', `${counts.succeeded.toLocaleString('en')} succeeded · ${counts.failed.toLocaleString('en')} failed`);
  $('#details-health').replaceChildren(el('dl', {}, facts));
}

async function loadHistory() {
  const params = new URLSearchParams({ profile_id: details.profile.id, limit: String(HISTORY_PAGE) });
  if (details.cursor) params.set('cursor', details.cursor);
  const more = $('#history-more');
  more.disabled = true;
  try {
    const page = await call('GET', `${paths.audit(session.workspace)}?${params}`);
    const items = page.items.map((entry) => el('li', {},
      el('span', { class: 'history-what' }, describeEntry(entry)),
      el('span', { class: 'history-meta' }, `by ${entry.actor} · `,
        el('time', { datetime: entry.at, title: fullDate(entry.at) }, timeAgo(entry.at)))));
    $('#history-list').append(...items);
    details.cursor = page.next_cursor ?? null;
    $('#history-empty').hidden = $('#history-list').children.length > 0;
    more.hidden = !details.cursor;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    $('#history-error').textContent = `Could not load the history. ${error.message}`;
    $('#history-error').hidden = false;
  } finally {
    more.disabled = false;
  }
}

export function setUpDetails() {
  $('#history-more').addEventListener('click', loadHistory);
}
