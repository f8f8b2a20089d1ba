// The admin API as the page uses it. The admin token lives in this tab's
// sessionStorage only (never a cookie, never the URL) and goes out as
// `Authorization: Bearer` on every call.

const TOKEN_KEY = 'authrelay.adminToken';
const WORKSPACE_KEY = 'authrelay.workspace';

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  get workspace() { return sessionStorage.getItem(WORKSPACE_KEY) ?? ''; },
  signIn(token, workspace) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(WORKSPACE_KEY, workspace);
  },
  setWorkspace(workspace) { sessionStorage.setItem(WORKSPACE_KEY, workspace); },
  signOut() { sessionStorage.removeItem(TOKEN_KEY); },
};

/** An answer other than 2xx: `code` and `message` from the API's error body. */
export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }

  /** `details` of a 422: `[{field, message}]`. */
  get details() {
    return Array.isArray(this.body?.details) ? this.body.details : [];
  }
}

let onUnauthorized = () => {};

/** Called when the API refuses the stored token (it may have been rotated). */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/**
 * Calls the API and returns the parsed JSON body (null for 204). Throws
 * ApiError; a 401 also signs the tab out unless `token` was given explicitly
 * (the sign-in form tries a token before keeping it).
 */
export async function call(method, path, { body, token, signal } = {}) {
  const headers = { Accept: 'application/json', Authorization: `Bearer ${token ?? session.token ?? ''}` };
  const init = { method, headers, signal, cache: 'no-store', credentials: 'omit', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'network', 'Cannot reach authrelay. Check that it is running, then try again.');
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.ok) return data;
  const error = new ApiError(
    response.status,
    data?.error ?? `http_${response.status}`,
    data?.message ?? `authrelay answered HTTP ${response.status}.`,
    data,
  );
  if (response.status === 401 && token === undefined) onUnauthorized();
  throw error;
}

const segment = encodeURIComponent;

export const paths = {
  profiles: (ws) => `/v1/workspaces/${segment(ws)}/auth-profiles`,
  profile: (ws, id) => `${paths.profiles(ws)}/${segment(id)}`,
  usage: (ws, id) => `${paths.profile(ws, id)}/usage`,
  test: (ws, id) => `${paths.profile(ws, id)}/test`,
  audit: (ws) => `/v1/workspaces/${segment(ws)}/audit`,
};
