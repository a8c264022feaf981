// OHIF in Cognito mode against cognito-local: the login through the hosted-UI form,
// the study list as the logged-in user, optionally an upload through OHIF's upload
// dialog (STOW-RS), optionally the logout.
//
// Input (argv[2], JSON):
//   url, cognito          the viewer's origin, cognito-local's base URL
//   username, password    who logs in
//   waitForStudies        StudyInstanceUIDs the study list must show (from QIDO) before going on
//   upload                optional: files to give the upload dialog's file input
//   listAfterUpload       optional: StudyInstanceUIDs the list must show after the upload
//   logout                optional: {clientId, logoutUrls}; cognito-local has neither /logout
//                         nor /oauth2/revoke, so both are answered here as Cognito does:
//                         /logout checks client_id and logout_uri against the app client
//                         and redirects to logout_uri; /oauth2/revoke answers 200.
//   artifacts, prefix     where the screenshots go
// Prints one JSON line of findings.
import { args, launch, shot, dismissOverlays } from './lib.mjs';

const a = args();
const out = { steps: [], navigations: [], qido: [], stow: [], dicomweb: [] };
const b = await launch(a);
const { page, context } = b;
const viewerOrigin = new URL(a.url).origin;
const cognitoOrigin = new URL(a.cognito).origin;

page.on('framenavigated', (frame) => {
  if (frame === page.mainFrame()) out.navigations.push(frame.url());
});
page.on('response', async (res) => {
  const url = new URL(res.url());
  if (url.origin !== viewerOrigin || !url.pathname.startsWith('/dicomweb/')) return;
  const req = res.request();
  const auth = req.headers()['authorization'] || null;
  out.dicomweb.push({ method: req.method(), path: url.pathname, status: res.status(), auth: auth ? auth.split(' ')[0] : null });
  if (req.method() === 'GET' && url.pathname === '/dicomweb/studies' && res.status() === 200) {
    try {
      const body = await res.json();
      out.qido.push({ at: Date.now(), studies: body.map((s) => s['0020000D']?.Value?.[0]), token: auth });
    } catch { /* not JSON */ }
  }
  if (req.method() === 'POST' && url.pathname === '/dicomweb/studies') {
    let text = '';
    try { text = (await res.text()).slice(0, 300); } catch { /* no body */ }
    out.stow.push({ status: res.status(), body: text });
  }
});

// The Cognito endpoints cognito-local lacks, answered as the real hosted UI does.
if (a.logout) {
  out.revocations = [];
  out.logoutRequests = [];
  await context.route(`${cognitoOrigin}/oauth2/revoke`, async (route) => {
    const req = route.request();
    if (req.method() === 'OPTIONS') {
      return route.fulfill({ status: 204, headers: { 'access-control-allow-origin': '*', 'access-control-allow-headers': '*', 'access-control-allow-methods': 'POST' } });
    }
    out.revocations.push(Object.fromEntries(new URLSearchParams(req.postData() || '')));
    return route.fulfill({ status: 200, body: '', headers: { 'access-control-allow-origin': '*' } });
  });
  await context.route(`${cognitoOrigin}/logout**`, async (route) => {
    const url = new URL(route.request().url());
    const query = Object.fromEntries(url.searchParams);
    out.logoutRequests.push({ path: url.pathname, query });
    if (query.client_id !== a.logout.clientId || !a.logout.logoutUrls.includes(query.logout_uri)) {
      return route.fulfill({ status: 400, contentType: 'text/plain', body: 'invalid client_id or logout_uri' });
    }
    return route.fulfill({ status: 302, headers: { location: query.logout_uri } });
  });
}

async function poll(fn, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const value = await fn();
    if (value) return value;
    await page.waitForTimeout(250);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function loginForm() {
  await page.waitForSelector('input[name="username"]', { timeout: 45000 });
  return page.url();
}

async function login() {
  out.loginPage = await loginForm();
  await shot(page, a.artifacts, `${a.prefix}1-login-form`);
  await page.fill('input[name="username"]', a.username);
  await page.fill('input[name="password"]', a.password);
  await Promise.all([
    page.waitForURL((u) => u.origin === viewerOrigin, { timeout: 30000 }),
    page.locator('button[type="submit"]').click(),
  ]);
}

// The list shows every one of `uids` (a QIDO answer held them all) and has rendered rows.
async function waitForList(uids, ms) {
  const since = Date.now();
  await poll(async () => out.qido.some((q) => q.at >= since - 60000 && uids.every((u) => q.studies.includes(u))), ms, `QIDO listing ${uids}`);
  return poll(async () => {
    const text = await page.locator('body').innerText();
    // With studies, the pager ("1-1 of 1") shows that the rows are drawn.
    return text.includes('Study List') && (!uids.length || /\d+-\d+ of \d+/.test(text)) ? text : null;
  }, ms, 'the study list');
}

try {
  await page.goto(a.url + '/');
  await login();
  out.steps.push('login');

  out.listText = (await waitForList(a.waitForStudies || [], 60000)).slice(0, 3000);
  await page.waitForTimeout(500);
  await shot(page, a.artifacts, `${a.prefix}2-study-list`);
  out.steps.push('list');

  if (a.upload) {
    await dismissOverlays(page);
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    const input = page.locator('input[type="file"]:not([webkitdirectory])').first();
    await input.waitFor({ state: 'attached', timeout: 15000 });
    await input.setInputFiles(a.upload);
    const done = await poll(async () => {
      const text = await page.locator('[role="dialog"]').first().innerText().catch(() => '');
      return /Completed/.test(text) && text.includes(`${a.upload.length} files completed`) ? text : null;
    }, 120000, 'the upload dialog to finish');
    out.uploadText = done.slice(0, 2000);
    await shot(page, a.artifacts, `${a.prefix}3-upload`);
    out.steps.push('upload');
    await page.getByRole('button', { name: 'Close', exact: true }).first().click();
    if (a.listAfterUpload) {
      // OHIF queries the list again when the dialog closes; reload it otherwise.
      try {
        out.listAfterUploadText = (await waitForList(a.listAfterUpload, 10000)).slice(0, 3000);
      } catch {
        await page.goto(a.url + '/');
        if (await page.locator('input[name="username"]').count().catch(() => 0) || new URL(page.url()).origin === cognitoOrigin) await login();
        out.listAfterUploadText = (await waitForList(a.listAfterUpload, 60000)).slice(0, 3000);
        out.listReloaded = true;
      }
      await page.waitForTimeout(500);
      await shot(page, a.artifacts, `${a.prefix}4-list-after-upload`);
      out.steps.push('listAfterUpload');
    }
  }

  if (a.logout) {
    await dismissOverlays(page);
    await page.getByRole('button', { name: 'Open settings' }).click();
    await page.getByText('Logout', { exact: true }).click();
    // Back from the (emulated) hosted-UI logout, OHIF has no user: it sends the browser
    // to the login form again.
    out.afterLogout = await loginForm();
    await shot(page, a.artifacts, `${a.prefix}5-after-logout`);
    out.steps.push('logout');
  }
} catch (error) {
  out.error = String(error && error.stack || error).slice(0, 2000);
  out.url = page.url();
  out.failureText = (await page.locator('body').innerText().catch(() => '')).slice(0, 2000);
  out.log = b.log.slice(-40);
  await shot(page, a.artifacts, `${a.prefix}failure`).catch(() => {});
} finally {
  await b.close();
}
console.log(JSON.stringify(out));
