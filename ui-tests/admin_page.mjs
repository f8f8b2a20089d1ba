// End-to-end tests of the admin page in headless Chromium, against a running
// authrelay (started by tests/ui_e2e.rs, or by hand for development):
//
//   AUTHRELAY_UI_URL=http://127.0.0.1:8080/ui/ AUTHRELAY_UI_TOKEN=… node ui-tests/admin_page.mjs
//
// Optional: AUTHRELAY_UI_SCREENSHOTS=<dir> saves PNGs of the list, the form (its
// traffic limits too) and the usage dialog; CHROMIUM=<path> (default /usr/bin/chromium);
// AUTHRELAY_UI_HEALTH_WS=<workspace> names a workspace whose profiles jobs made
// healthy ("Healthy CRM", referenced by "Book a slot"), deauthorized ("Refused
// key"), failing ("Flaky webhook") and unused ("Idle"), to test the health
// views (tests/it/admin_page.rs prepares one; without it they are skipped).
// AUTHRELAY_UI_KEYS=<JSON> holds the PEMs typed into the forms of the signing
// and certificate types: client certificates from a test CA (one expiring in
// 5 days), a key of no certificate, an EC P-256 and an RSA signing key
// (tests/it/admin_page.rs makes them with rcgen; without it those tests are
// skipped).
//
// Network: the browser may reach the app's origin only (anything else is
// aborted and fails the run); the OAuth token endpoints (which check the
// signed assertions with the public keys) and the URL that the Test calls are
// served by this script on 127.0.0.1.

import assert from 'node:assert/strict';
import { X509Certificate, createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = required('AUTHRELAY_UI_URL');
const TOKEN = required('AUTHRELAY_UI_TOKEN');
const SHOTS = process.env.AUTHRELAY_UI_SCREENSHOTS;
const HEALTH_WS = process.env.AUTHRELAY_UI_HEALTH_WS;
const KEYS = process.env.AUTHRELAY_UI_KEYS ? JSON.parse(process.env.AUTHRELAY_UI_KEYS) : null;
const ORIGIN = new URL(BASE).origin;
const RUN = randomBytes(4).toString('hex');
const WS = `ui-${RUN}`;

// Secrets typed into the form: each must never come back into the page.
const BEARER_SECRET = `bearer-${RUN}-AAAA-1f2e`;
const NEW_BEARER_SECRET = `bearer-new-${RUN}-9z8y`;
const PAIR_SECRETS = [`pair-one-${RUN}-BBB1`, `pair-two-${RUN}-BBB2`];
const BASIC_SECRET = `basic-${RUN}-CCCC-7a6b`;
const CLIENT_SECRET = `client-${RUN}-DDDD-5e4f`;
const ACCESS_TOKEN = `at-${RUN}-never-shown-0000`;
const HMAC_SECRET = `hmac-${RUN}-EEEE-3c2d`;
const WEBHOOK_SECRET = `whsec_${Buffer.from(`webhook-${RUN}-JJJJ`).toString('base64')}`;
const AWS_SECRET = `aws-${RUN}-wJalrXUtnFEMI-FFFF`;
const AWS_SESSION = `session-${RUN}-IQoJb3JpZ2luX2-GGGG`;
const PARAM_SECRET = `account-${RUN}-HHHH-8d7c`;
const CERT_BEARER_SECRET = `cert-bearer-${RUN}-IIII`;
const GOOGLE_ACCESS_TOKEN = `ya29.${RUN}-never-shown-1111`;
const PARTNER_ACCESS_TOKEN = `partner-at-${RUN}-never-shown-2222`;
const LIMITED_SECRET = `limited-${RUN}-KKKK-4b3a`;
// PEMs are never shown back: a line from the middle of each stands for it.
const PEMS = KEYS ? [KEYS.ca_certificate, KEYS.client.certificate, KEYS.client.private_key,
  KEYS.expiring.certificate, KEYS.expiring.private_key, KEYS.stranger_key, KEYS.ec_key, KEYS.rsa_key] : [];
const PEM_LINES = PEMS.map((pem) => pem.trim().split('\n')[1]);
const ALL_SECRETS = [BEARER_SECRET, NEW_BEARER_SECRET, ...PAIR_SECRETS, BASIC_SECRET, CLIENT_SECRET, ACCESS_TOKEN,
  HMAC_SECRET, WEBHOOK_SECRET, AWS_SECRET, AWS_SESSION, PARAM_SECRET, CERT_BEARER_SECRET, GOOGLE_ACCESS_TOKEN,
  PARTNER_ACCESS_TOKEN, LIMITED_SECRET,
  ...PEM_LINES];

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
}

// ---------------------------------------------------------------- helpers

/** The admin API, called directly (arrange and check what the page did). */
async function api(method, apiPath, body) {
  const response = await fetch(new URL(apiPath, ORIGIN), {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

const profilesPath = (ws = WS) => `/v1/workspaces/${ws}/auth-profiles`;

async function profileNamed(name, ws = WS) {
  const { body } = await api('GET', `${profilesPath(ws)}?q=${encodeURIComponent(name)}`);
  const found = body.items.find((p) => p.name === name);
  assert.ok(found, `profile ${name} exists`);
  return found;
}

/** SHA-256 of a key's DER public key (SubjectPublicKeyInfo), hex: how the API names a stored key. */
function keyFingerprint(pem) {
  return createHash('sha256').update(createPublicKey(pem).export({ type: 'spki', format: 'der' })).digest('hex');
}

/** What a certificate reads back as, worked out here from the PEM. */
function certificateView(pem) {
  const certificate = new X509Certificate(pem);
  return {
    subject: certificate.subject.replace(/\n/g, ', '),
    issuer: certificate.issuer.replace(/\n/g, ', '),
    not_after: new Date(certificate.validTo),
    fingerprint_sha256: certificate.fingerprint256.replace(/:/g, '').toLowerCase(),
  };
}

/** The header and claims of a JWT whose signature `publicKeyOf` (a private key PEM) verifies; null if it does not. */
function verifiedJwt(jwt, publicKeyOf) {
  const [header, claims, signature] = (jwt ?? '').split('.');
  if (!signature) return null;
  const decoded = (part) => JSON.parse(Buffer.from(part, 'base64url').toString());
  const key = createPublicKey(publicKeyOf);
  const alg = decoded(header).alg;
  const ok = verify('sha256', Buffer.from(`${header}.${claims}`),
    alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key, Buffer.from(signature, 'base64url'));
  return ok ? { header: decoded(header), claims: decoded(claims) } : null;
}

/** Polls until `check` returns a truthy value (bounded). */
async function eventually(check, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A small server on 127.0.0.1: the OAuth token endpoint and a URL to call. */
async function startTargetServer() {
  const seen = { tokenRequests: [], calls: [], google: [], partner: [] };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      const json = (status, value) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (req.method === 'POST' && req.url === '/token') {
        const basic = (req.headers.authorization ?? '').replace(/^Basic /, '');
        const [id, secret] = Buffer.from(basic, 'base64').toString().split(':').map(decodeURIComponent);
        seen.tokenRequests.push({ id, secret, body });
        if (id === 'calendar-client' && secret === CLIENT_SECRET && body.includes('grant_type=client_credentials')) {
          return json(200, { access_token: ACCESS_TOKEN, token_type: 'Bearer', expires_in: 3600, scope: 'read' });
        }
        return json(401, { error: 'invalid_client' });
      }
      if (req.method === 'POST' && req.url === '/google-token') {
        // A Google-style JWT bearer grant: the assertion signed by the service account's key.
        const form = new URLSearchParams(body);
        const jwt = verifiedJwt(form.get('assertion'), KEYS.rsa_key);
        seen.google.push({ grantType: form.get('grant_type'), jwt });
        if (jwt && form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
          return json(200, { access_token: GOOGLE_ACCESS_TOKEN, token_type: 'Bearer', expires_in: 3599 });
        }
        return json(400, { error: 'invalid_grant' });
      }
      if (req.method === 'POST' && req.url === '/partner-token') {
        // Client credentials with private_key_jwt; the reply puts the token where RFC 6749 does not.
        const form = Object.fromEntries(new URLSearchParams(body));
        const jwt = verifiedJwt(form.client_assertion, KEYS.ec_key);
        seen.partner.push({ form, jwt, tenant: req.headers['x-tenant'] });
        const assertionType = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
        if (jwt && form.grant_type === 'client_credentials' && form.client_assertion_type === assertionType) {
          return json(200, { data: { token: PARTNER_ACCESS_TOKEN, ttl: 600 } });
        }
        return json(401, { error: 'invalid_client' });
      }
      if (req.url === '/me') {
        seen.calls.push(req.headers.authorization ?? '');
        return json(seen.expectedAuthorization === req.headers.authorization ? 200 : 401, {});
      }
      json(404, {});
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { server, url, seen };
}

// ---------------------------------------------------------------- the runner

const results = [];
let stopped = false;

async function test(name, fn) {
  if (stopped) {
    results.push({ name, skipped: true });
    console.log(`skip - ${name}`);
    return;
  }
  const started = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok - ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    results.push({ name, ok: false });
    stopped = true; // Later steps build on earlier ones.
    console.log(`not ok - ${name}\n  ${String(error.stack ?? error).replace(/\n/g, '\n  ')}`);
  }
}

async function screenshot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

// ---------------------------------------------------------------- page helpers

function row(page, name) {
  const exact = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  return page.locator('#profiles-body tr').filter({ has: page.locator('.profile-name', { hasText: exact }) });
}

async function rowNames(page) {
  return page.locator('#profiles-body .profile-name').allTextContents();
}

/** Everything the page holds as text: markup, input values and storage but the token. */
async function pageText(page) {
  return page.evaluate(() => [
    document.documentElement.outerHTML,
    ...[...document.querySelectorAll('input, textarea')].map((i) => i.value),
  ].join('\n'));
}

async function assertNoSecretInPage(page) {
  const text = await pageText(page);
  for (const secret of ALL_SECRETS) assert.ok(!text.includes(secret), `secret ${secret} is not in the page`);
}

async function visibleTypeFieldsets(page) {
  return page.$$eval('#profile-form .type-fields', (sets) => sets.filter((s) => !s.hidden).map((s) => s.dataset.type));
}

/** Every visible field has a label (or the radio's wrapping label). */
async function assertFieldsLabelled(page) {
  const unlabelled = await page.$$eval('input, select, textarea', (controls) => controls
    .filter((c) => c.type !== 'hidden' && c.getClientRects().length > 0)
    .filter((c) => !(c.labels?.length && [...c.labels].some((l) => l.textContent.trim())) && !c.getAttribute('aria-label'))
    .map((c) => c.id || c.name || c.outerHTML));
  assert.deepEqual(unlabelled, [], 'fields without a label');
}

async function createThroughForm(page, name, type, fill) {
  await page.click('#new-profile');
  await page.locator('#profile-dialog').waitFor({ state: 'visible' });
  assert.deepEqual(await visibleTypeFieldsets(page), [], 'no type fields before a type is chosen');
  await page.fill('#f-name', name);
  await page.check(`#profile-form input[name="type"][value="${type}"]`);
  assert.deepEqual(await visibleTypeFieldsets(page), [type], `only the ${type} fields are shown`);
  await fill();
  await assertFieldsLabelled(page);
  await page.click('#save-profile');
  await page.locator('#profile-dialog').waitFor({ state: 'hidden' });
  await row(page, name).waitFor();
  await assertNoSecretInPage(page);
}

async function fieldError(page, inputSelector) {
  return page.$eval(inputSelector, (input) => {
    const ids = (input.getAttribute('aria-describedby') ?? '').split(' ').filter(Boolean);
    const error = ids.map((id) => document.getElementById(id)).find((n) => n?.classList.contains('field-error'));
    return { invalid: input.getAttribute('aria-invalid'), text: error?.textContent ?? null };
  });
}

/** The body of the last PATCH the page sent. */
function lastPatchBody() {
  const patch = v1Requests.findLast((r) => r.method === 'PATCH');
  assert.ok(patch, 'the page sent a PATCH');
  return JSON.parse(patch.body);
}

/** No field holds a PEM, and none of the test PEMs is anywhere in the page. */
async function assertNoPemInPage(page) {
  const values = await page.$$eval('input, textarea', (controls) => controls.map((c) => c.value));
  assert.ok(!values.some((v) => v.includes('-----BEGIN')), 'no PEM in a field');
  const text = await pageText(page);
  PEM_LINES.forEach((line, i) => assert.ok(!text.includes(line), `PEM ${i} is not in the page`));
}

/** Escape closes the dialog; its fields are emptied once its `close` event has run. */
async function closeProfileDialog(page) {
  await page.keyboard.press('Escape');
  await page.locator('#profile-dialog').waitFor({ state: 'hidden' });
  await page.waitForFunction(() => [...document.querySelectorAll('#profile-form input, #profile-form textarea')]
    .filter((c) => c.type !== 'radio' && c.type !== 'checkbox').every((c) => c.value === ''));
}

async function openEditOf(page, name) {
  await row(page, name).locator('[data-action="edit"]').click();
  await page.locator('#profile-dialog').waitFor();
}

async function saveAndClose(page) {
  await page.click('#save-profile');
  await page.locator('#profile-dialog').waitFor({ state: 'hidden' });
}

/** The stored view (hint, facts, Replace) of the field holding `control`. */
const storedView = (page, control) => page.locator(`[data-secret]:has(${control}) > .stored`);

const isVisible = (page, selector) => page.locator(selector).isVisible();

const shortDate = (date) => new Intl.DateTimeFormat('en', { dateStyle: 'medium' }).format(date);

// ---------------------------------------------------------------- the tests

// A hung browser must not hang the build: give up after 4 minutes.
setTimeout(() => {
  console.log('not ok - the browser tests did not finish within 240 s');
  process.exit(1);
}, 240_000).unref();

const target = await startTargetServer();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--no-first-run', '--disable-sync', '--disable-quic', '--no-proxy-server',
  ],
});
const context = await browser.newContext({ viewport: { width: 1180, height: 860 } });
const foreignRequests = [];
const v1Requests = [];
const pageProblems = [];
await context.route('**/*', (route) => {
  const url = route.request().url();
  if (new URL(url).origin === ORIGIN) return route.continue();
  foreignRequests.push(url);
  return route.abort('blockedbyclient');
});
const page = await context.newPage();
page.on('request', (request) => {
  if (new URL(request.url()).pathname.startsWith('/v1/')) {
    v1Requests.push({
      url: request.url(), method: request.method(), authorization: request.headers().authorization,
      body: request.postData(),
    });
  }
});
page.on('console', (message) => {
  // Refused requests the tests provoke (401, 422) are logged by Chromium; anything else is a problem.
  const expected = /^Failed to load resource: the server responded with a status of 4\d\d/;
  if (message.type() === 'error' && !expected.test(message.text())) pageProblems.push(message.text());
});
page.on('pageerror', (error) => pageProblems.push(`uncaught: ${error.message}`));
page.setDefaultTimeout(10_000);

const ids = {};

try {
  await test('the page is served with a strict Content-Security-Policy and safe headers', async () => {
    const index = await fetch(BASE);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type'), /^text\/html/);
    const csp = index.headers.get('content-security-policy');
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
      "frame-ancestors 'none'", "form-action 'none'", "base-uri 'none'"]) {
      assert.ok(csp.includes(directive), `CSP has ${directive}: ${csp}`);
    }
    assert.ok(!csp.includes('unsafe-inline') && !csp.includes('unsafe-eval'), csp);
    assert.equal(index.headers.get('x-frame-options'), 'DENY');
    assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(index.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(index.headers.get('cache-control'), 'no-store');
    for (const [file, type] of [['app.js', /^text\/javascript/], ['app.css', /^text\/css/]]) {
      const asset = await fetch(new URL(file, BASE));
      assert.equal(asset.status, 200, file);
      assert.match(asset.headers.get('content-type'), type, file);
      assert.ok(asset.headers.get('content-security-policy'), `${file} has a CSP`);
    }
    assert.equal((await fetch(new URL('missing.js', BASE))).status, 404);
  });

  await test('a wrong token is refused with a clear message', async () => {
    await page.goto(BASE);
    await page.locator('#signin-view').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'signin-token', 'focus starts on the token');
    await page.fill('#signin-token', 'not-the-admin-token');
    await page.fill('#signin-workspace', WS);
    await page.click('#signin-form button[type="submit"]');
    const error = page.locator('#signin-error');
    await error.waitFor();
    assert.match(await error.textContent(), /not accepted/);
    assert.equal(await error.getAttribute('role'), 'alert');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('authrelay.adminToken')), null);
    assert.ok(await page.locator('#profiles-view').isHidden());
  });

  await test('signing in keeps the token in this tab only and shows the empty state', async () => {
    await page.fill('#signin-token', TOKEN);
    await page.click('#signin-form button[type="submit"]');
    await page.locator('#empty-state').waitFor();
    assert.match(await page.locator('#empty-state').textContent(), /No auth profiles yet/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('authrelay.adminToken')), TOKEN);
    assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
    assert.equal(await page.evaluate(() => document.cookie), '', 'no cookie');
    assert.ok(!page.url().includes(TOKEN), 'the token is not in the URL');
    assert.equal(await page.inputValue('#signin-token'), '', 'the token field is cleared');
    assert.equal(await page.inputValue('#workspace'), WS);
    await assertFieldsLabelled(page);
  });

  await test('one profile of each type is created through the form and listed', async () => {
    await createThroughForm(page, 'CRM bearer', 'bearer', async () => {
      await page.fill('#f-bearer-token', BEARER_SECRET);
    });
    await createThroughForm(page, 'Shop keys', 'api_key', async () => {
      await page.check('#profile-form input[name="method"][value="header"]');
      const keys = page.locator('#pairs-list .pair-key');
      const values = page.locator('#pairs-list .pair-value');
      await keys.nth(0).fill('X-Api-Key');
      await values.nth(0).fill(PAIR_SECRETS[0]);
      await page.click('#add-pair');
      assert.equal(await page.evaluate(() => document.activeElement.dataset.field), 'config.pairs[1].key');
      await keys.nth(1).fill('X-Client');
      await values.nth(1).fill(PAIR_SECRETS[1]);
    });
    await createThroughForm(page, 'Legacy basic', 'basic', async () => {
      await page.fill('#f-basic-username', 'svc-user');
      await page.fill('#f-basic-password', BASIC_SECRET);
    });
    await createThroughForm(page, 'Calendar OAuth', 'oauth2_client_credentials', async () => {
      await page.fill('#f-oauth-client-id', 'calendar-client');
      await page.fill('#f-oauth-client-secret', CLIENT_SECRET);
      await page.fill('#f-oauth-endpoint', `${target.url}/token`);
      await page.fill('#f-oauth-scope', 'read');
      await page.check('#profile-form input[name="client_auth"][value="basic"]');
      await screenshot(page, 'form');
    });
    assert.deepEqual(await rowNames(page), ['Calendar OAuth', 'CRM bearer', 'Legacy basic', 'Shop keys']);
    const bearerRow = await row(page, 'CRM bearer').textContent();
    assert.match(bearerRow, /Bearer token/);
    assert.match(bearerRow, /v1/);
    assert.match(await row(page, 'Shop keys').textContent(), /X-Api-Key, X-Client/);
    const { body } = await api('GET', profilesPath());
    assert.equal(body.items.length, 4);
    for (const profile of body.items) ids[profile.name] = profile.id;
    assert.deepEqual((await profileNamed('Shop keys')).config.pairs.map((p) => p.key), ['X-Api-Key', 'X-Client']);
    assert.equal((await profileNamed('Calendar OAuth')).config.client_auth, 'basic');
    await screenshot(page, 'list');
  });

  await test('search and the type filter narrow the list', async () => {
    await page.fill('#search', 'oauth');
    await eventually(async () => (await rowNames(page)).join() === 'Calendar OAuth', 'search results');
    await page.fill('#search', '');
    await eventually(async () => (await rowNames(page)).length === 4, 'the full list');
    await page.selectOption('#type-filter', 'api_key');
    await eventually(async () => (await rowNames(page)).join() === 'Shop keys', 'the type filter');
    await page.fill('#search', 'nothing-like-this');
    await page.locator('#no-match').waitFor();
    await page.click('#clear-search');
    await eventually(async () => (await rowNames(page)).length === 4, 'the list after clearing');
    assert.equal(await page.inputValue('#search'), '');
  });

  await test('a validation error is shown at its field and announced', async () => {
    await page.click('#new-profile');
    await page.click('#save-profile');
    assert.match((await fieldError(page, '#f-name')).text, /Name is required/);
    await page.fill('#f-name', 'Bad keys');
    await page.check('#profile-form input[name="type"][value="api_key"]');
    await page.locator('#pairs-list .pair-key').nth(0).fill('X-Good');
    await page.locator('#pairs-list .pair-value').nth(0).fill('value-one');
    await page.click('#add-pair');
    await page.locator('#pairs-list .pair-key').nth(1).fill('X Bad');
    await page.locator('#pairs-list .pair-value').nth(1).fill('value-two');
    await page.click('#save-profile');
    const second = '#pairs-list .pair:nth-child(2) .pair-key';
    await eventually(async () => (await fieldError(page, second)).text, 'the server error at config.pairs[1].key');
    const error = await fieldError(page, second);
    assert.equal(error.invalid, 'true');
    assert.match(error.text, /Key 2 must be a valid HTTP header name/);
    assert.equal((await fieldError(page, '#pairs-list .pair:nth-child(1) .pair-key')).text, null);
    assert.equal(await page.getAttribute('#form-error', 'role'), 'alert');
    assert.match(await page.textContent('#form-error'), /Please correct this field/);
    assert.equal(await page.evaluate(() => document.activeElement.dataset.field), 'config.pairs[1].key');
    await screenshot(page, 'form-error');
    await page.keyboard.press('Escape');
    await page.locator('#profile-dialog').waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement.id), 'new-profile', 'focus is back');
    assert.equal((await api('GET', `${profilesPath()}?q=Bad`)).body.items.length, 0);
  });

  await test('editing a name keeps the stored secret', async () => {
    const before = await profileNamed('CRM bearer');
    assert.equal(before.version, 1);
    await row(page, 'CRM bearer').locator('[data-action="edit"]').click();
    await page.locator('#profile-dialog').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-name', 'focus moves into the dialog');
    const hint = page.locator('[data-type="bearer"] .mask');
    assert.equal(await hint.textContent(), `Stored · ${before.config.token}`);
    assert.ok(before.config.token.endsWith('1f2e'));
    assert.ok(await page.locator('#f-bearer-token').isHidden(), 'no secret input until Replace');
    await page.fill('#f-name', 'CRM bearer (prod)');
    await page.click('#save-profile');
    await page.locator('#profile-dialog').waitFor({ state: 'hidden' });
    await row(page, 'CRM bearer (prod)').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.dataset.action), 'edit', 'focus back on Edit');
    const after = (await api('GET', `${profilesPath()}/${ids['CRM bearer']}`)).body;
    assert.equal(after.version, 2);
    assert.equal(after.config.token, before.config.token);
    // The secret still works: the app sends it to a URL this script serves.
    target.seen.expectedAuthorization = `Bearer ${BEARER_SECRET}`;
    const probe = await api('POST', `${profilesPath()}/${ids['CRM bearer']}/test`, { url: `${target.url}/me` });
    assert.equal(probe.status, 200);
    assert.equal(probe.body.ok, true, JSON.stringify(probe.body));
    assert.equal(probe.body.status, 200);
  });

  await test('replacing a secret changes the hint and the credential', async () => {
    await row(page, 'CRM bearer (prod)').locator('[data-action="edit"]').click();
    await page.locator('#profile-dialog').waitFor();
    await page.click('[data-type="bearer"] .replace');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-bearer-token');
    await page.fill('#f-bearer-token', NEW_BEARER_SECRET);
    await page.click('#save-profile');
    await page.locator('#profile-dialog').waitFor({ state: 'hidden' });
    await assertNoSecretInPage(page);
    const after = (await api('GET', `${profilesPath()}/${ids['CRM bearer']}`)).body;
    assert.equal(after.version, 3);
    assert.equal(after.config.token, '••••9z8y');
    await row(page, 'CRM bearer (prod)').locator('[data-action="edit"]').click();
    await page.locator('#profile-dialog').waitFor();
    assert.equal(await page.locator('[data-type="bearer"] .mask').textContent(), 'Stored · ••••9z8y');
    await page.keyboard.press('Escape');
    target.seen.expectedAuthorization = `Bearer ${NEW_BEARER_SECRET}`;
    const probe = await api('POST', `${profilesPath()}/${ids['CRM bearer']}/test`, { url: `${target.url}/me` });
    assert.equal(probe.body.ok, true, JSON.stringify(probe.body));
  });

  await test('an API key pair is edited without retyping the other values', async () => {
    await row(page, 'Shop keys').locator('[data-action="edit"]').click();
    await page.locator('#profile-dialog').waitFor();
    assert.equal(await page.locator('#pairs-list .mask').count(), 2);
    await page.locator('#pairs-list .replace').nth(1).click();
    await page.locator('#pairs-list .pair-value').nth(1).fill(`${PAIR_SECRETS[1]}-new`);
    await page.click('#save-profile');
    await page.locator('#profile-dialog').waitFor({ state: 'hidden' });
    const after = (await api('GET', `${profilesPath()}/${ids['Shop keys']}`)).body;
    assert.equal(after.version, 2);
    assert.equal(after.config.pairs[0].value, '••••BBB1', 'the untouched value is kept');
    assert.equal(after.config.pairs[1].value, '••••-new');
  });

  await test('traffic limits are set, shown, kept, changed, refused at their field and removed', async () => {
    const name = 'Rate-limited CRM';
    const limitInputs = ['#f-limit-rate', '#f-limit-burst', '#f-limit-concurrency'];
    const values = () => Promise.all(limitInputs.map((s) => page.inputValue(s)));
    const stored = async () => (await api('GET', `${profilesPath()}/${ids[name]}`)).body;
    const limitsLine = () => row(page, name).locator('.profile-limits');
    await createThroughForm(page, name, 'bearer', async () => {
      await page.fill('#f-bearer-token', LIMITED_SECRET);
      assert.equal(await page.getAttribute('#limits-details', 'open'), null, 'collapsed while no limits are set');
      assert.equal(await page.textContent('#limits-state'), 'none');
      await page.click('#limits-details > summary');
      await page.fill('#f-limit-rate', '10');
      await page.fill('#f-limit-burst', '5');
      await page.fill('#f-limit-concurrency', '4');
      assert.equal(await page.textContent('#limits-state'), '10/s, burst 5, at most 4 at once');
      await page.locator('#limits-clear').scrollIntoViewIfNeeded();
      await screenshot(page, 'form-limits');
    });
    const post = v1Requests.findLast((r) => r.method === 'POST' && r.url.endsWith(profilesPath()));
    assert.deepEqual(JSON.parse(post.body).limits, { rate_per_s: 10, burst: 5, max_concurrency: 4 });
    ids[name] = (await profileNamed(name)).id;
    assert.deepEqual((await stored()).limits, { rate_per_s: 10, burst: 5, max_concurrency: 4 });
    assert.equal(await limitsLine().textContent(), 'Limits: 10/s, burst 5, at most 4 at once');
    assert.equal(await row(page, 'Shop keys').locator('.profile-limits').count(), 0, 'no line without limits');
    // A profile without limits sends none when edited.
    assert.ok(!('limits' in lastPatchBody()), 'the Shop keys edit sent no limits');

    // An edit that leaves them alone keeps them (and does not send them).
    await openEditOf(page, name);
    assert.equal(await page.getAttribute('#limits-details', 'open'), '', 'opened when limits are set');
    assert.deepEqual(await values(), ['10', '5', '4']);
    await saveAndClose(page);
    assert.ok(!('limits' in lastPatchBody()), 'unchanged limits are left out of the PATCH');
    let after = await stored();
    assert.deepEqual(after.limits, { rate_per_s: 10, burst: 5, max_concurrency: 4 });

    // A change replaces them whole: an emptied field is no longer set.
    await openEditOf(page, name);
    await page.fill('#f-limit-rate', '0.5');
    await page.fill('#f-limit-burst', '');
    assert.equal(await page.textContent('#limits-state'), '0.5/s, at most 4 at once');
    await saveAndClose(page);
    assert.deepEqual(lastPatchBody().limits, { rate_per_s: 0.5, max_concurrency: 4 });
    const changed = after.version;
    after = await stored();
    assert.ok(after.version > changed, 'a new version');
    assert.deepEqual(after.limits, { rate_per_s: 0.5, max_concurrency: 4 });
    await eventually(async () => (await limitsLine().textContent()) === 'Limits: 0.5/s, at most 4 at once', 'the list');
    await screenshot(page, 'list-limits');
    await row(page, name).locator('[data-action="details"]').click();
    await page.locator('#details-dialog').waitFor();
    assert.equal(await page.textContent('#details-limits'), '0.5/s, at most 4 at once');
    await screenshot(page, 'details-limits');
    await page.keyboard.press('Escape');
    await page.locator('#details-dialog').waitFor({ state: 'hidden' });

    // What is not a number is refused in the page, at its field, and nothing is sent.
    await openEditOf(page, name);
    const sent = v1Requests.length;
    await page.fill('#f-limit-concurrency', '');
    await page.locator('#f-limit-concurrency').pressSequentially('4e');
    await page.click('#save-profile');
    assert.match((await fieldError(page, '#f-limit-concurrency')).text, /^Concurrent requests must be a number/);
    assert.equal(v1Requests.length, sent, 'nothing was sent');
    await page.fill('#f-limit-concurrency', '4');

    // The API's 422 for a burst of 0 is shown at the burst input; nothing is stored.
    await page.fill('#f-limit-burst', '0');
    await page.click('#save-profile');
    await eventually(async () => (await fieldError(page, '#f-limit-burst')).text, 'the server error at limits.burst');
    const error = await fieldError(page, '#f-limit-burst');
    assert.equal(error.invalid, 'true');
    assert.match(error.text, /^Burst must be a whole number from 1 to 100000/);
    assert.equal((await fieldError(page, '#f-limit-rate')).text, null);
    assert.equal((await fieldError(page, '#f-limit-concurrency')).text, null, 'the earlier error is cleared');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-limit-burst', 'focus on the field');
    assert.match(await page.textContent('#form-error'), /Please correct this field/);
    await page.locator('#limits-clear').scrollIntoViewIfNeeded();
    await screenshot(page, 'form-limits-error');
    assert.equal((await stored()).version, after.version, 'nothing was stored');

    // Removing them (in the same dialog, after the error) sends null.
    await page.click('#limits-clear');
    assert.deepEqual(await values(), ['', '', '']);
    assert.equal(await page.textContent('#limits-state'), 'removed when you save');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-limit-rate');
    await saveAndClose(page);
    assert.equal(lastPatchBody().limits, null);
    const refused = after.version;
    after = await stored();
    assert.ok(after.version > refused, 'a new version');
    assert.equal(after.limits, null);
    await eventually(async () => (await limitsLine().count()) === 0, 'the limits line to go');
    await row(page, name).locator('[data-action="details"]').click();
    await page.locator('#details-dialog').waitFor();
    assert.equal(await page.textContent('#details-limits'), 'No limits');
    await page.keyboard.press('Escape');
    await page.locator('#details-dialog').waitFor({ state: 'hidden' });
    await openEditOf(page, name);
    assert.equal(await page.getAttribute('#limits-details', 'open'), null);
    assert.deepEqual(await values(), ['', '', '']);
    await closeProfileDialog(page);
    await assertNoSecretInPage(page);
  });

  // ------------------------------------------------------------ the signing and certificate types
  if (!KEYS) {
    console.log('skip - the signing and certificate types (AUTHRELAY_UI_KEYS is not set)');
  } else {
    const KEYS_WS = `${WS}-keys`;
    const SERVICE_ACCOUNT = {
      type: 'service_account',
      project_id: 'ui-test',
      private_key_id: `kid-${RUN}-0a1b2c3d4e5f`,
      private_key: KEYS.rsa_key,
      client_email: 'calendar-sync@ui-test.iam.gserviceaccount.com',
      client_id: '104857392017468201954',
      auth_uri: 'https://accounts.google.com/o/oauth2/auth',
      token_uri: `${target.url}/google-token`,
      auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
      client_x509_cert_url:
        'https://www.googleapis.com/robot/v1/metadata/x509/calendar-sync%40ui-test.iam.gserviceaccount.com',
      universe_domain: 'googleapis.com',
    };
    const keysProfile = (name) => profileNamed(name, KEYS_WS);

    await test('a Google service-account key fills the JWT bearer form; other JSON is refused at its field', async () => {
      await page.fill('#workspace', KEYS_WS);
      await page.keyboard.press('Enter');
      await page.locator('#empty-state').waitFor();
      await page.click('#new-profile');
      await page.locator('#profile-dialog').waitFor();
      await page.fill('#f-name', 'Google calendar');
      assert.ok(await isVisible(page, '#sa-import'), 'the import is offered before a type is chosen');
      await page.click('#sa-import summary');
      const userCredentials = { type: 'authorized_user', client_id: 'x', client_secret: 'y', refresh_token: 'z' };
      await page.setInputFiles('#sa-file',
        { name: 'user.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(userCredentials)) });
      await eventually(async () => (await fieldError(page, '#sa-file')).text, 'the error at the file');
      assert.match((await fieldError(page, '#sa-file')).text,
        /not a Google service-account key: its "type" is "authorized_user", not "service_account"/);
      assert.equal(await page.$eval('#sa-file', (input) => input.files.length), 0, 'the file is let go');
      assert.equal(await page.$$eval('input[name="type"]:checked', (r) => r.length), 0, 'no type is chosen by it');
      await page.fill('#sa-json', '{"type": "service_account", "private_key": ');
      await page.click('#sa-import-text');
      assert.match((await fieldError(page, '#sa-json')).text, /not a Google service-account key: it is not valid JSON/);
      assert.equal((await fieldError(page, '#sa-file')).text, null, 'the old error went');

      await page.fill('#sa-json', JSON.stringify(SERVICE_ACCOUNT, null, 2));
      await page.click('#sa-import-text');
      assert.equal(await page.inputValue('#sa-json'), '', 'the pasted JSON is cleared at once');
      assert.equal((await fieldError(page, '#sa-json')).text, null);
      assert.equal(await page.$eval('input[name="type"]:checked', (r) => r.value), 'oauth2_jwt_bearer');
      assert.deepEqual(await visibleTypeFieldsets(page), ['oauth2_jwt_bearer']);
      assert.equal(await page.inputValue('#f-jwt-endpoint'), SERVICE_ACCOUNT.token_uri);
      assert.equal(await page.inputValue('#f-jwt-issuer'), SERVICE_ACCOUNT.client_email);
      assert.equal(await page.inputValue('#f-sign-key'), KEYS.rsa_key);
      assert.equal(await page.inputValue('#f-sign-kid'), SERVICE_ACCOUNT.private_key_id);
      assert.match(await page.textContent('#sa-status'), /Imported the key of calendar-sync@ui-test/);
      assert.equal(await page.evaluate(() => document.activeElement.id), 'f-jwt-scope', 'on to what is left to fill');
      await screenshot(page, 'form-service-account');
      await page.fill('#f-jwt-scope', 'https://www.googleapis.com/auth/calendar.readonly');
      await assertFieldsLabelled(page);
      await saveAndClose(page);
      await row(page, 'Google calendar').waitFor();
      await assertNoSecretInPage(page);

      const stored = (await keysProfile('Google calendar')).config;
      assert.deepEqual(stored, {
        token_endpoint: SERVICE_ACCOUNT.token_uri,
        issuer: SERVICE_ACCOUNT.client_email,
        scope: 'https://www.googleapis.com/auth/calendar.readonly',
        private_key: { fingerprint_sha256: keyFingerprint(KEYS.rsa_key) },
        key_id: SERVICE_ACCOUNT.private_key_id,
      });
    });

    await test('an OAuth 2.0 client with private_key_jwt and token request settings is created and fetches a token', async () => {
      await createThroughForm(page, 'Partner OAuth', 'oauth2_client_credentials', async () => {
        await page.fill('#f-oauth-client-id', 'partner-client');
        await page.fill('#f-oauth-endpoint', `${target.url}/partner-token`);
        assert.ok(await isVisible(page, '#f-oauth-client-secret') && !(await isVisible(page, '#f-sign-key')),
          'basic: a secret, no key');
        await page.check('#profile-form input[name="client_auth"][value="tls_client_auth"]');
        assert.ok(!(await isVisible(page, '#f-oauth-client-secret')) && !(await isVisible(page, '#f-sign-key')));
        assert.ok(await isVisible(page, '#f-cc-cert'), 'tls_client_auth opens the client certificate');
        assert.match(await page.textContent('#cc-state'), /required/);
        await page.check('#profile-form input[name="client_auth"][value="private_key_jwt"]');
        assert.ok(!(await isVisible(page, '#f-oauth-client-secret')), 'private_key_jwt: no secret');
        assert.match(await page.textContent('#cc-state'), /optional/);
        await page.fill('#f-sign-key', KEYS.ec_key);
        await page.fill('#f-sign-kid', 'partner-k1');
        await page.selectOption('#f-sign-alg', 'ES256');
        await page.click('#token-advanced summary');
        const params = page.locator('[data-list="token_params"] .param');
        await page.click('[data-add="token_params"]');
        assert.equal(await page.evaluate(() => document.activeElement.dataset.field), 'config.token_params[0].key');
        await params.nth(0).locator('.param-key').fill('resource');
        await params.nth(0).locator('.param-value').fill('https://api.partner.example');
        await page.click('[data-add="token_params"]');
        await params.nth(1).locator('.param-key').fill('account_key');
        await params.nth(1).locator('.param-secret').check();
        assert.equal(await params.nth(1).locator('.param-value').getAttribute('type'), 'password',
          'a secret is typed hidden');
        await params.nth(1).locator('.param-value').fill(PARAM_SECRET);
        await page.click('[data-add="token_headers"]');
        await page.locator('[data-list="token_headers"] .param-key').fill('X-Tenant');
        await page.locator('[data-list="token_headers"] .param-value').fill('acme');
        await page.fill('#f-tr-access-token', 'data.token');
        await page.fill('#f-tr-expires-in', 'data.ttl');
        await page.fill('#f-send-header', 'X-Partner-Token');
        await screenshot(page, 'form-private-key-jwt');
      });
      const stored = (await keysProfile('Partner OAuth')).config;
      assert.deepEqual(stored, {
        client_id: 'partner-client',
        token_endpoint: `${target.url}/partner-token`,
        client_auth: 'private_key_jwt',
        private_key: { fingerprint_sha256: keyFingerprint(KEYS.ec_key) },
        key_id: 'partner-k1',
        signing_alg: 'ES256',
        token_params: [
          { key: 'resource', value: 'https://api.partner.example' },
          { key: 'account_key', value: `••••${PARAM_SECRET.slice(-4)}`, secret: true },
        ],
        token_headers: [{ key: 'X-Tenant', value: 'acme' }],
        token_response: { access_token: 'data.token', expires_in: 'data.ttl' },
        send_as: { header: 'X-Partner-Token', prefix: '' },
      });
      assert.match(await row(page, 'Partner OAuth').textContent(), /OAuth 2\.0 \(client credentials\)/);

      await row(page, 'Partner OAuth').locator('[data-action="test"]').click();
      await page.locator('#test-result.ok').waitFor();
      assert.match(await page.textContent('#test-result'), /Token fetched.*10 minutes \(600 s\)/s);
      const request = target.seen.partner.at(-1);
      assert.ok(request.jwt, 'the client assertion is signed with the stored key');
      assert.equal(request.jwt.header.kid, 'partner-k1');
      assert.equal(request.jwt.header.alg, 'ES256');
      assert.equal(request.jwt.claims.iss, 'partner-client');
      assert.equal(request.jwt.claims.sub, 'partner-client');
      assert.equal(request.form.account_key, PARAM_SECRET);
      assert.equal(request.form.resource, 'https://api.partner.example');
      assert.equal(request.tenant, 'acme');
      await assertNoSecretInPage(page);
      await page.keyboard.press('Escape');
    });

    await test('HMAC, AWS SigV4, mTLS and a bearer token with a client certificate are created through the form', async () => {
      await createThroughForm(page, 'GitHub webhook', 'hmac', async () => {
        await page.fill('#f-hmac-secret', HMAC_SECRET);
        assert.ok(!(await isVisible(page, '#f-hmac-header')), 'Standard Webhooks needs no header');
        await page.check('#profile-form input[name="hmac_scheme"][value="custom"]');
        await page.fill('#f-hmac-header', 'X-Hub-Signature-256');
        await page.selectOption('#f-hmac-algorithm', 'sha256');
        await page.selectOption('#f-hmac-encoding', 'hex');
        await page.fill('#f-hmac-prefix', 'sha256=');
        assert.match(await page.textContent('#f-hmac-template-hint'),
          /\{body\}.*\{timestamp\}.*\{method\}.*\{path\}.*\{query\}.*\{id\}/s);
      });
      await createThroughForm(page, 'Svix events', 'hmac', async () => {
        await page.fill('#f-hmac-secret', WEBHOOK_SECRET);
      });
      await createThroughForm(page, 'S3 uploads', 'aws_sigv4', async () => {
        await page.fill('#f-aws-key-id', 'AKIAIOSFODNN7EXAMPLE');
        await page.fill('#f-aws-secret', AWS_SECRET);
        await page.fill('#f-aws-session', AWS_SESSION);
        await page.fill('#f-aws-region', 'eu-west-1');
        await page.fill('#f-aws-service', 's3');
      });
      await createThroughForm(page, 'Bank mTLS', 'mtls', async () => {
        assert.ok(!(await isVisible(page, '#cc-details')), 'mtls has no extra client certificate');
        await page.fill('#f-mtls-cert', KEYS.expiring.certificate);
        await page.fill('#f-mtls-key', KEYS.expiring.private_key);
        await page.fill('#f-mtls-ca', KEYS.ca_certificate);
      });
      await createThroughForm(page, 'Partner bearer + cert', 'bearer', async () => {
        await page.fill('#f-bearer-token', CERT_BEARER_SECRET);
        assert.ok(!(await isVisible(page, '#f-cc-cert')), 'the client certificate section starts collapsed');
        await page.click('#cc-details summary');
        await page.fill('#f-cc-cert', KEYS.client.certificate);
        await page.fill('#f-cc-key', KEYS.client.private_key);
      });

      assert.deepEqual((await keysProfile('GitHub webhook')).config, {
        secret: `••••${HMAC_SECRET.slice(-4)}`, scheme: 'custom', header: 'X-Hub-Signature-256', algorithm: 'sha256',
        encoding: 'hex', prefix: 'sha256=',
      });
      assert.deepEqual((await keysProfile('Svix events')).config,
        { secret: `••••${WEBHOOK_SECRET.slice(-4)}`, scheme: 'standard_webhooks' });
      assert.deepEqual((await keysProfile('S3 uploads')).config, {
        access_key_id: 'AKIAIOSFODNN7EXAMPLE', secret_access_key: `••••${AWS_SECRET.slice(-4)}`,
        session_token: `••••${AWS_SESSION.slice(-4)}`, region: 'eu-west-1', service: 's3',
      });
      const expiring = certificateView(KEYS.expiring.certificate);
      const ca = certificateView(KEYS.ca_certificate);
      const mtls = (await keysProfile('Bank mTLS')).config;
      assert.deepEqual(Object.keys(mtls).sort(), ['ca_certificate', 'certificate', 'private_key']);
      assert.equal(mtls.certificate.subject, 'CN=ui-expiring.example');
      assert.equal(mtls.certificate.issuer, 'CN=authrelay UI test CA');
      assert.equal(mtls.certificate.fingerprint_sha256, expiring.fingerprint_sha256);
      assert.equal(new Date(mtls.certificate.not_after).getTime(), expiring.not_after.getTime());
      assert.deepEqual(mtls.private_key, { fingerprint_sha256: keyFingerprint(KEYS.expiring.private_key) });
      assert.equal(mtls.ca_certificate.subject, 'CN=authrelay UI test CA');
      assert.equal(mtls.ca_certificate.fingerprint_sha256, ca.fingerprint_sha256);
      const bearer = (await keysProfile('Partner bearer + cert')).config;
      assert.equal(bearer.token, `••••${CERT_BEARER_SECRET.slice(-4)}`);
      assert.equal(bearer.client_certificate.certificate.subject, 'CN=ui-client.example');
      assert.equal(bearer.client_certificate.certificate.fingerprint_sha256,
        certificateView(KEYS.client.certificate).fingerprint_sha256);
      assert.deepEqual(bearer.client_certificate.private_key,
        { fingerprint_sha256: keyFingerprint(KEYS.client.private_key) });
      assert.equal(bearer.client_certificate.ca_certificate, undefined);

      for (const [name, label] of [['Google calendar', 'OAuth 2.0 JWT bearer (service account)'],
        ['GitHub webhook', 'HMAC-signed (webhooks)'], ['S3 uploads', 'AWS Signature V4'],
        ['Bank mTLS', 'Client certificate (mTLS)']]) {
        assert.equal(await row(page, name).locator('.badge').textContent(), label, name);
      }
      assert.match(await row(page, 'Bank mTLS').locator('.profile-warning').textContent(),
        /^⚠ Certificate: expires in [4-6] days$/);
      assert.equal(await row(page, 'Partner bearer + cert').locator('.profile-warning').count(), 0);
      await screenshot(page, 'list-signed-and-certificates');
      await page.selectOption('#type-filter', 'mtls');
      await eventually(async () => (await rowNames(page)).join() === 'Bank mTLS', 'the mtls filter');
      await page.selectOption('#type-filter', '');
      await eventually(async () => (await rowNames(page)).length === 7, 'every profile again');
    });

    await test('the edit dialog shows certificates and key fingerprints, never a PEM, and keeps them unless replaced', async () => {
      await openEditOf(page, 'Bank mTLS');
      const expiring = certificateView(KEYS.expiring.certificate);
      const certificate = storedView(page, '#f-mtls-cert');
      const facts = await certificate.textContent();
      assert.match(facts, /Subject\s*CN=ui-expiring\.example/);
      assert.match(facts, /Issuer\s*CN=authrelay UI test CA/);
      assert.ok(facts.includes(`Expires${shortDate(expiring.not_after)}`), facts);
      assert.ok(facts.includes(expiring.fingerprint_sha256), facts);
      assert.ok(await certificate.locator('.expiry-warning').isVisible(), 'an expiry within 14 days is flagged');
      assert.match(await certificate.locator('.expiry-warning').textContent(), /^Expires in [4-6] days$/);
      assert.equal(await storedView(page, '#f-mtls-key').locator('.mask').textContent(),
        `Stored · key fingerprint ${keyFingerprint(KEYS.expiring.private_key)}`);
      const ca = storedView(page, '#f-mtls-ca');
      assert.match(await ca.textContent(), /Subject\s*CN=authrelay UI test CA/);
      assert.equal(await ca.locator('.expiry-warning').count(), 0, 'a CA valid for long is not flagged');
      await screenshot(page, 'edit-mtls');
      // One that expired after it was saved (the API refuses expired ones) is flagged the same way.
      const warnings = await page.evaluate(async () => {
        const { expiryWarning } = await import(new URL('stored-fields.js', location.href).href);
        const inAMonth = new Date(Date.now() + 30 * 86_400_000).toISOString();
        return [expiryWarning('2020-01-02T12:00:00Z'), expiryWarning(inAMonth)];
      });
      assert.deepEqual(warnings, ['Expired on Jan 2, 2020', null]);
      assert.ok(!(await isVisible(page, '#f-mtls-cert')) && !(await isVisible(page, '#f-mtls-key')),
        'no PEM field until Replace');
      await assertNoPemInPage(page);
      await assertFieldsLabelled(page);
      await page.fill('#f-name', 'Bank mTLS (prod)');
      await saveAndClose(page);
      assert.deepEqual(lastPatchBody().config, {}, 'nothing stored is sent back');
      const mtls = (await keysProfile('Bank mTLS (prod)')).config;
      assert.equal(mtls.certificate.fingerprint_sha256, expiring.fingerprint_sha256);
      assert.deepEqual(mtls.private_key, { fingerprint_sha256: keyFingerprint(KEYS.expiring.private_key) });
      assert.equal(mtls.ca_certificate.fingerprint_sha256, certificateView(KEYS.ca_certificate).fingerprint_sha256);

      // The JWT bearer profile: the key is kept and still signs (checked by the token endpoint).
      await openEditOf(page, 'Google calendar');
      assert.equal(await storedView(page, '#f-sign-key').locator('.mask').textContent(),
        `Stored · key fingerprint ${keyFingerprint(KEYS.rsa_key)}`);
      assert.equal(await page.inputValue('#f-sign-kid'), SERVICE_ACCOUNT.private_key_id);
      await assertNoPemInPage(page);
      await page.fill('#f-jwt-scope', 'https://www.googleapis.com/auth/calendar');
      await saveAndClose(page);
      assert.equal(lastPatchBody().config.private_key, undefined, 'the unreplaced key is left out');
      await row(page, 'Google calendar').locator('[data-action="test"]').click();
      await page.locator('#test-result.ok').waitFor();
      const google = target.seen.google.at(-1).jwt;
      assert.ok(google, 'the assertion is signed with the imported key');
      assert.equal(google.header.kid, SERVICE_ACCOUNT.private_key_id);
      assert.equal(google.claims.iss, SERVICE_ACCOUNT.client_email);
      assert.equal(google.claims.aud, SERVICE_ACCOUNT.token_uri);
      assert.equal(google.claims.scope, 'https://www.googleapis.com/auth/calendar');
      await page.keyboard.press('Escape');

      // Token request settings: the secret value is kept, shown masked.
      await openEditOf(page, 'Partner OAuth');
      assert.ok(await page.locator('#token-advanced').evaluate((d) => d.open), 'settings in use are shown');
      const secretRow = page.locator('[data-list="token_params"] .param').nth(1);
      assert.equal(await secretRow.locator('.mask').textContent(), `Stored · ••••${PARAM_SECRET.slice(-4)}`);
      assert.equal(await page.inputValue('[data-list="token_params"] .param >> nth=0 >> .param-value'),
        'https://api.partner.example');
      assert.equal(await page.inputValue('#f-send-header'), 'X-Partner-Token');
      assert.ok(!(await isVisible(page, '#f-oauth-client-secret')));
      await page.fill('#f-oauth-client-id', 'partner-client');
      await saveAndClose(page);
      assert.deepEqual(lastPatchBody().config.token_params[1], { key: 'account_key', secret: true });
      const tested = await api('POST', `${profilesPath(KEYS_WS)}/${(await keysProfile('Partner OAuth')).id}/test`, {});
      assert.equal(tested.body.ok, true, JSON.stringify(tested.body));
      assert.equal(target.seen.partner.at(-1).form.account_key, PARAM_SECRET, 'the kept secret is still sent');

      // A removed session token and a removed client certificate go; what was not touched stays.
      await openEditOf(page, 'S3 uploads');
      await page.click('[data-secret]:has(#f-aws-session) .remove-stored');
      assert.match(await page.textContent('[data-secret]:has(#f-aws-session) .removed'), /Removed when you save/);
      await saveAndClose(page);
      const s3 = (await keysProfile('S3 uploads')).config;
      assert.equal(s3.session_token, undefined);
      assert.equal(s3.secret_access_key, `••••${AWS_SECRET.slice(-4)}`);

      await openEditOf(page, 'Partner bearer + cert');
      assert.ok(await isVisible(page, '#cc-fields'), 'a stored client certificate is shown');
      const client = storedView(page, '#f-cc-cert');
      assert.match(await client.textContent(), /Subject\s*CN=ui-client\.example.*Issuer\s*CN=authrelay UI test CA/s);
      assert.equal(await client.locator('.expiry-warning').count(), 0);
      assert.equal(await storedView(page, '#f-cc-key').locator('.mask').textContent(),
        `Stored · key fingerprint ${keyFingerprint(KEYS.client.private_key)}`);
      assert.match(await page.textContent('#cc-state'), /stored · expires/);
      await screenshot(page, 'edit-client-certificate');
      await assertNoPemInPage(page);
      await page.click('#cc-remove');
      assert.ok(await isVisible(page, '#cc-removed'));
      await saveAndClose(page);
      assert.equal(lastPatchBody().config.client_certificate, null);
      const bearer = (await keysProfile('Partner bearer + cert')).config;
      assert.equal(bearer.client_certificate, undefined);
      assert.equal(bearer.token, `••••${CERT_BEARER_SECRET.slice(-4)}`);
      await assertNoSecretInPage(page);
    });

    await test('the API\'s 422s for keys, templates and token request entries are shown at their fields', async () => {
      // A key that does not belong to its certificate.
      await page.click('#new-profile');
      await page.fill('#f-name', 'Mismatched certificate');
      await page.check('#profile-form input[name="type"][value="bearer"]');
      await page.fill('#f-bearer-token', CERT_BEARER_SECRET);
      await page.click('#cc-details summary');
      await page.fill('#f-cc-cert', KEYS.client.certificate);
      await page.fill('#f-cc-key', KEYS.stranger_key);
      await page.click('#save-profile');
      await eventually(async () => (await fieldError(page, '#f-cc-key')).text, 'the error at the certificate key');
      const keyError = await fieldError(page, '#f-cc-key');
      assert.equal(keyError.invalid, 'true');
      assert.match(keyError.text, /Private key \(PEM\) does not belong to the certificate/);
      assert.equal((await fieldError(page, '#f-cc-cert')).text, null);
      assert.equal(await page.evaluate(() => document.activeElement.id), 'f-cc-key');
      await screenshot(page, 'form-key-error');
      await closeProfileDialog(page);
      await assertNoSecretInPage(page);

      // A signature template with a placeholder that does not exist; a key file pasted but not imported.
      await page.click('#new-profile');
      await page.fill('#f-name', 'Bad template');
      await page.click('#sa-import summary');
      await page.fill('#sa-json', JSON.stringify(SERVICE_ACCOUNT));
      await page.check('#profile-form input[name="type"][value="hmac"]');
      await page.fill('#f-hmac-secret', HMAC_SECRET);
      await page.check('#profile-form input[name="hmac_scheme"][value="custom"]');
      await page.fill('#f-hmac-header', 'X-Signature');
      await page.fill('#f-hmac-template', 'v1:{bdy}');
      await page.click('#save-profile');
      await eventually(async () => (await fieldError(page, '#f-hmac-template')).text, 'the error at the template');
      assert.match((await fieldError(page, '#f-hmac-template')).text,
        /Signed text uses `\{bdy\}`; the placeholders are/);
      await closeProfileDialog(page);
      await assertNoSecretInPage(page); // The pasted key file too.

      // Entries of the token request, reported by index, in a collapsed section.
      await page.click('#new-profile');
      await page.fill('#f-name', 'Bad token request');
      await page.check('#profile-form input[name="type"][value="oauth2_client_credentials"]');
      await page.fill('#f-oauth-client-id', 'c');
      await page.fill('#f-oauth-client-secret', CLIENT_SECRET);
      await page.fill('#f-oauth-endpoint', 'https://idp.example/token');
      await page.click('#token-advanced summary');
      await page.click('[data-add="token_params"]');
      await page.locator('[data-list="token_params"] .param-key').fill('grant_type');
      await page.locator('[data-list="token_params"] .param-value').fill('password');
      const headers = page.locator('[data-list="token_headers"] .param');
      await page.click('[data-add="token_headers"]');
      await headers.nth(0).locator('.param-key').fill('X-Ok');
      await headers.nth(0).locator('.param-value').fill('fine');
      await page.click('[data-add="token_headers"]');
      await headers.nth(1).locator('.param-key').fill('X-Api-Key');
      await headers.nth(1).locator('.param-secret').check();
      await headers.nth(1).locator('.param-value').fill('••••1f2e'); // Copied from a masked read.
      await page.click('#token-advanced summary'); // Collapsed again: the errors must open it.
      await page.click('#save-profile');
      const paramKey = '[data-list="token_params"] .param-key';
      const headerValue = '[data-list="token_headers"] .param:nth-child(2) .param-value';
      await eventually(async () => (await fieldError(page, headerValue)).text, 'the error at token_headers[1].value');
      assert.match((await fieldError(page, paramKey)).text,
        /Form field 1 name `grant_type` is set by authrelay itself/);
      assert.match((await fieldError(page, headerValue)).text, /Header 2 value looks like a masked value/);
      assert.ok(await isVisible(page, headerValue), 'the section was opened');
      assert.match(await page.textContent('#form-error'), /Please correct these 2 fields/);
      await screenshot(page, 'form-token-request-errors');
      await closeProfileDialog(page);
      await assertNoSecretInPage(page);
      const fields = '#profile-form input:not([type=radio]):not([type=checkbox]), #profile-form textarea';
      assert.deepEqual(await page.$$eval(fields, (controls) => controls.filter((c) => c.value !== '').map((c) => c.id)),
        [], 'every field is empty');
      assert.equal((await api('GET', profilesPath(KEYS_WS))).body.items.length, 7, 'nothing refused was stored');

      await page.fill('#workspace', WS);
      await page.keyboard.press('Enter');
      await row(page, 'CRM bearer (prod)').waitFor();
    });
  }

  await test('the OAuth Test button shows success, expiry and scope, never the token', async () => {
    await row(page, 'Calendar OAuth').locator('[data-action="test"]').click();
    const result = page.locator('#test-result.ok');
    await result.waitFor();
    const text = await result.textContent();
    assert.match(text, /Token fetched/);
    assert.match(text, /1 hour \(3600 s\)/);
    assert.match(text, /Granted scope\s*read/);
    assert.match(text, /never shown/);
    assert.equal(target.seen.tokenRequests.at(-1).secret, CLIENT_SECRET, 'the stored client secret was used');
    await assertNoSecretInPage(page);
    await screenshot(page, 'test');
    await page.keyboard.press('Escape');
    await page.locator('#test-dialog').waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement.dataset.action), 'test', 'focus back on Test');
  });

  await test('a bearer profile can call a URL from the Test dialog', async () => {
    target.seen.expectedAuthorization = `Bearer ${NEW_BEARER_SECRET}`;
    await row(page, 'CRM bearer (prod)').locator('[data-action="test"]').click();
    await page.locator('#test-dialog').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'test-url');
    await page.fill('#test-url', `${target.url}/me`);
    await page.keyboard.press('Enter');
    await page.locator('#test-result.ok').waitFor();
    assert.match(await page.textContent('#test-result'), /answered HTTP 200/);
    await page.keyboard.press('Escape');
  });

  await test('delete is refused with the usage summary while a reference exists, then allowed', async () => {
    const oauthId = ids['Calendar OAuth'];
    const refs = [
      ['during_call_action', 'book-slot', 'Book a slot'],
      ['flow_node', 'node-17', 'Check calendar'],
    ];
    for (const [kind, refId, name] of refs) {
      const put = await api('PUT', `/v1/workspaces/${WS}/references/${kind}/${refId}`, { profile_id: oauthId, name });
      assert.equal(put.status, 201);
    }
    await row(page, 'Calendar OAuth').locator('[data-action="delete"]').click();
    const dialog = page.locator('#delete-dialog');
    await dialog.waitFor();
    await page.locator('#usage').waitFor();
    const usage = await page.textContent('#usage');
    assert.match(usage, /During-Call actions \(1\)\s*Book a slot/);
    assert.match(usage, /Flow nodes \(1\)\s*Check calendar/);
    assert.doesNotMatch(usage, /Pre-Call/);
    assert.match(await page.textContent('#delete-title'), /is in use/);
    assert.equal(await dialog.locator('button', { hasText: /^Delete$/ }).filter({ visible: true }).count(), 0);
    assert.ok(await page.locator('#delete-confirm').isHidden(), 'no way to delete');
    await screenshot(page, 'usage');

    for (const [kind, refId] of refs) {
      assert.equal((await api('DELETE', `/v1/workspaces/${WS}/references/${kind}/${refId}`)).status, 204);
    }
    await page.click('#usage-recheck');
    await page.locator('#delete-confirm').waitFor();
    assert.match(await page.textContent('#delete-title'), /Delete “Calendar OAuth”\?/);
    await page.click('#delete-confirm');
    await dialog.waitFor({ state: 'hidden' });
    await eventually(async () => !(await rowNames(page)).includes('Calendar OAuth'), 'the row to go');
    assert.equal((await api('GET', `${profilesPath()}/${oauthId}`)).status, 404);
    assert.match(await page.textContent('#toast'), /deleted/);
  });

  await test('an unused profile is deleted after confirmation', async () => {
    await row(page, 'Legacy basic').locator('[data-action="delete"]').click();
    await page.locator('#delete-dialog').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'delete-cancel', 'focus on the safe choice');
    await page.keyboard.press('Escape');
    await page.locator('#delete-dialog').waitFor({ state: 'hidden' });
    assert.ok((await rowNames(page)).includes('Legacy basic'), 'cancel keeps it');
    await row(page, 'Legacy basic').locator('[data-action="delete"]').click();
    await page.click('#delete-confirm');
    await eventually(async () => !(await rowNames(page)).includes('Legacy basic'), 'the row to go');
  });

  await test('a profile is created with the keyboard only', async () => {
    await page.evaluate(() => document.activeElement?.blur());
    let found = false;
    for (let i = 0; i < 40 && !found; i += 1) {
      await page.keyboard.press('Tab');
      found = await page.evaluate(() => document.activeElement?.id === 'new-profile');
    }
    assert.ok(found, 'Tab reaches New profile');
    await page.keyboard.press('Enter');
    await page.locator('#profile-dialog').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-name', 'focus moves into the dialog');
    await page.keyboard.type('Keyboard basic');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.name), 'type', 'Tab reaches the type choice');
    await page.keyboard.press('ArrowDown'); // api_key
    await page.keyboard.press('ArrowDown'); // basic
    assert.deepEqual(await visibleTypeFieldsets(page), ['basic']);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-basic-username');
    await page.keyboard.type('kb-user');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-basic-password');
    await page.keyboard.type(BASIC_SECRET);
    await page.keyboard.press('Enter');
    await page.locator('#profile-dialog').waitFor({ state: 'hidden' });
    await row(page, 'Keyboard basic').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'new-profile', 'focus returns');
    assert.equal((await profileNamed('Keyboard basic')).config.username, 'kb-user');
    await assertNoSecretInPage(page);
  });

  await test('pages of 20 and the workspace picker (remembered for the tab)', async () => {
    const other = `${WS}-paging`;
    for (let i = 1; i <= 23; i += 1) {
      const created = await api('POST', profilesPath(other), {
        name: `Paged ${String(i).padStart(2, '0')}`, type: 'bearer', config: { token: `paged-token-${i}-${RUN}` },
      });
      assert.equal(created.status, 201);
    }
    await page.fill('#workspace', other);
    await page.keyboard.press('Enter');
    await eventually(async () => (await rowNames(page))[0] === 'Paged 01', 'the other workspace');
    assert.equal((await rowNames(page)).length, 20);
    assert.ok(await page.locator('#prev-page').isDisabled());
    await page.click('#next-page');
    await eventually(async () => (await rowNames(page)).join() === 'Paged 21,Paged 22,Paged 23', 'page 2');
    assert.ok(await page.locator('#next-page').isDisabled());
    await page.click('#prev-page');
    await eventually(async () => (await rowNames(page))[0] === 'Paged 01', 'page 1 again');
    await page.reload();
    await eventually(async () => (await rowNames(page))[0] === 'Paged 01', 'still signed in after a reload');
    assert.equal(await page.inputValue('#workspace'), other);
  });

  await test('a token that stops working sends the tab back to sign-in with a message', async () => {
    await page.evaluate(() => sessionStorage.setItem('authrelay.adminToken', 'rotated-away'));
    await page.reload();
    await page.locator('#signin-view').waitFor();
    assert.match(await page.textContent('#signin-error'), /refused/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('authrelay.adminToken')), null);
    await page.fill('#signin-token', TOKEN);
    await page.click('#signin-form button[type="submit"]');
    await eventually(async () => (await rowNames(page))[0] === 'Paged 01', 'the list after signing in again');
  });

  await test('signing out forgets the token', async () => {
    await page.click('#sign-out');
    await page.locator('#signin-view').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('authrelay.adminToken')), null);
  });

  if (!HEALTH_WS) {
    console.log('skip - the health views (AUTHRELAY_UI_HEALTH_WS is not set)');
  } else {
    await test('each profile shows a health dot and a line saying what is wrong', async () => {
      await page.fill('#signin-token', TOKEN);
      await page.fill('#signin-workspace', HEALTH_WS);
      await page.click('#signin-form button[type="submit"]');
      await eventually(async () => (await rowNames(page)).length === 4, 'the health workspace');
      assert.deepEqual(await rowNames(page), ['Flaky webhook', 'Healthy CRM', 'Idle', 'Refused key']);
      const health = async (name) => ({
        dot: await row(page, name).locator('.health-dot').getAttribute('class'),
        line: await row(page, name).locator('.health-line').textContent(),
      });
      const refused = await health('Refused key');
      assert.match(refused.dot, /\bdeauthorized\b/);
      assert.match(refused.line, /^Deauthorized since \d\d:\d\d — 401 from 127\.0\.0\.1$/);
      const flaky = await health('Flaky webhook');
      assert.match(flaky.dot, /\bfailing\b/);
      assert.match(flaky.line, /^Failing since \d\d:\d\d — 503 from 127\.0\.0\.1$/);
      const healthy = await health('Healthy CRM');
      assert.match(healthy.dot, /\bok\b/);
      assert.match(healthy.line, /^OK · last used /);
      assert.equal((await health('Idle')).line, 'Not used yet');
      assert.equal(await row(page, 'Idle').locator('.health-dot').getAttribute('aria-hidden'), 'true',
        'the dot is decoration: the line says it');
      if (SHOTS) await eventually(async () => (await page.textContent('#toast')) === '', 'the sign-out notice to go');
      await screenshot(page, 'health');
    });

    await test('the broken filter lists failing and deauthorized profiles only', async () => {
      await page.selectOption('#state-filter', 'failing,deauthorized');
      await eventually(async () => (await rowNames(page)).join() === 'Flaky webhook,Refused key', 'broken profiles');
      assert.ok(v1Requests.at(-1).url.includes('state=failing%2Cdeauthorized'), v1Requests.at(-1).url);
      assert.match(await page.textContent('#list-status'), /2 matching profiles/);
      await page.selectOption('#state-filter', 'unused');
      await eventually(async () => (await rowNames(page)).join() === 'Idle', 'unused profiles');
      await page.selectOption('#state-filter', '');
      await eventually(async () => (await rowNames(page)).length === 4, 'every profile again');
    });

    await test('a profile\'s details show its health and its history', async () => {
      const id = (await profileNamed('Healthy CRM', HEALTH_WS)).id;
      const tested = await api('POST', `${profilesPath(HEALTH_WS)}/${id}/test`, {});
      assert.equal(tested.status, 200);
      await row(page, 'Healthy CRM').locator('[data-action="details"]').click();
      const dialog = page.locator('#details-dialog');
      await dialog.waitFor();
      assert.equal(await page.evaluate(() => document.activeElement.id), 'details-close');
      const health = await page.textContent('#details-health');
      assert.match(health, /State\s*OK · last used/);
      assert.match(health, /Last 24 hours\s*2 succeeded · 0 failed/);
      const history = await page.locator('#history-list li .history-what').allTextContents();
      assert.deepEqual(history, ['Tested: passed', 'Used by During-Call action “Book a slot”',
        'Created (name, type, config.token)']);
      assert.match(await page.textContent('#history-list'), /by test-admin/);
      assert.ok(await page.locator('#history-more').isHidden(), 'one page holds it all');
      await screenshot(page, 'details');
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'hidden' });
      assert.equal(await page.evaluate(() => document.activeElement.dataset.action), 'details', 'focus back on Details');

      await row(page, 'Refused key').locator('[data-action="details"]').click();
      await dialog.waitFor();
      const refused = await page.textContent('#details-health');
      assert.match(refused, /Deauthorized since/);
      assert.match(refused, /Last failure.*401 from 127\.0\.0\.1 \(http_status 401\)/);
      assert.match(refused, /0 succeeded · 3 failed/);
      await page.keyboard.press('Escape');
    });

    await test('editing or deleting a profile in use warns first', async () => {
      await row(page, 'Healthy CRM').locator('[data-action="edit"]').click();
      await page.locator('#profile-dialog').waitFor();
      const warning = page.locator('#edit-warning');
      assert.ok(await warning.isVisible(), 'the edit dialog warns');
      assert.match(await warning.textContent(),
        /in use: 1 action or flow node use it \(Book a slot\), and it ran 2 jobs in the last 24 hours/);
      await page.keyboard.press('Escape');
      await row(page, 'Idle').locator('[data-action="edit"]').click();
      await page.locator('#profile-dialog').waitFor();
      assert.ok(await page.locator('#edit-warning').isHidden(), 'an unused profile edits without a warning');
      await page.keyboard.press('Escape');

      // Not referenced, but named by jobs lately: deleting is allowed, after a warning.
      await row(page, 'Flaky webhook').locator('[data-action="delete"]').click();
      await page.locator('#delete-dialog').waitFor();
      assert.match(await page.textContent('#delete-warning'), /Jobs used this profile .* \(1 job in the last 24 hours\)/);
      assert.ok(await page.locator('#delete-confirm').isVisible());
      await page.keyboard.press('Escape');
      await row(page, 'Idle').locator('[data-action="delete"]').click();
      await page.locator('#delete-dialog').waitFor();
      assert.ok(await page.locator('#delete-warning').isHidden(), 'an unused profile deletes without a warning');
      await page.keyboard.press('Escape');
      await assertFieldsLabelled(page);
    });
  }

  await test('every API call carried the bearer token, and nothing left the origin', async () => {
    const refused = v1Requests.filter((r) => r.authorization !== `Bearer ${TOKEN}`);
    assert.deepEqual(refused.map((r) => r.authorization), ['Bearer not-the-admin-token', 'Bearer rotated-away']);
    assert.ok(v1Requests.length > 20);
    assert.deepEqual(foreignRequests, [], 'no request to another origin');
    assert.deepEqual(pageProblems, [], 'no script error or CSP violation in the console');
  });
} finally {
  await browser.close();
  target.server.close();
}

const passed = results.filter((r) => r.ok).length;
const failed = results.filter((r) => r.ok === false).length;
const skipped = results.filter((r) => r.skipped).length;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed || skipped ? 1 : 0);
