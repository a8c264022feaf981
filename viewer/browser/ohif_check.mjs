// Drives OHIF served by l3net: the study list, the CT, the SEG overlay, the SR.
// Input (argv[2], JSON): url, study, studyDate, seg/sr series descriptions,
// segmentLabels, measuredValues (texts OHIF must show for the SR), artifacts, prefix,
// optional login {username, password}, autoSeg (also open the SEG hanging protocol),
// segShownBy ("tint": the SEG counts as shown once the lungs are tinted; 1 % of the
// viewport more than the bare CT, since a protocol may open on an apical slice).
// Prints one JSON line of findings; screenshots
// go to artifacts/.
import { args, launch, shot, dismissOverlays, canvasStats } from './lib.mjs';

const a = args();
const out = { steps: [], timings: {} };
const b = await launch(a);
const { page } = b;
const deadline = (ms) => Date.now() + ms;

async function poll(fn, ms, what) {
  const end = deadline(ms);
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await page.waitForTimeout(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// OHIF asks before hydrating a SEG or SR ("Do you want to open this Segmentation?"):
// answer yes.
async function confirmPrompts() {
  for (const name of ['Yes', 'LOAD', 'Load']) {
    const button = page.getByRole('button', { name, exact: true });
    try {
      if (await button.first().isVisible({ timeout: 100 })) await button.first().click({ timeout: 1000 });
    } catch { /* not there */ }
  }
}

// Fraction of clearly coloured (not grey) pixels in the viewport (canvasStats).
async function tintedFraction() {
  const stats = await canvasStats(page);
  return stats ? stats.tinted : 0;
}

async function login() {
  if (!a.login) return;
  // The hosted UI (cognito-local's login form): user name, password, submit.
  await page.waitForSelector('input[name="username"], input#username', { timeout: 30000 });
  out.loginPage = page.url();
  await page.fill('input[name="username"], input#username', a.login.username);
  await page.fill('input[name="password"], input#password', a.login.password);
  await Promise.all([
    page.waitForURL((u) => u.origin === new URL(a.url).origin, { timeout: 30000 }),
    page.locator('button[type="submit"], input[type="submit"]').first().click(),
  ]);
}

try {
  // 1. The study list.
  await page.goto(a.url + '/');
  await login();
  const row = await poll(async () => {
    const text = await page.locator('body').innerText();
    return text.includes(a.studyDate) ? text : null;
  }, 60000, 'the study in the study list');
  out.listText = row.slice(0, 3000);
  out.steps.push('list');
  await shot(page, a.artifacts, `${a.prefix || ''}1-study-list`);

  // 2. The CT.
  const t0 = Date.now();
  // OHIF's default layout, as the study list opens it (a bare link would be sent on to
  // the SEG layout by the server).
  await page.goto(`${a.url}/viewer?StudyInstanceUIDs=${a.study}&hangingprotocolId=default`);
  if (a.login && !page.url().startsWith(a.url)) await login();
  out.ct = await poll(async () => {
    const stats = await canvasStats(page);
    return stats && stats.nonBlack > 0.2 && stats.colours > 20 ? stats : null;
  }, 60000, 'the CT image');
  out.timings.firstImageMs = Date.now() - t0;
  await dismissOverlays(page);
  await page.waitForTimeout(300);
  out.ct.tinted = await tintedFraction();
  out.steps.push('ct');
  await shot(page, a.artifacts, `${a.prefix || ''}2-ct`);

  // 3. The SEG overlay: open the SEG series from the study browser; the segmentation
  // panel names its segments. Clicking a segment there centres the viewport on it, so
  // the small opacity segments (a few slices) come into view.
  const t1 = Date.now();
  await page.getByText(a.segDescription).first().dblclick();
  out.seg = {};
  const panel = page.locator('[data-cy="panelSegmentation-btn"]').first();
  let panelOpened = false;
  out.seg.labels = await poll(async () => {
    await confirmPrompts();
    if (!panelOpened && (await panel.count())) {
      await dismissOverlays(page);
      await panel.click().catch(() => {});
      panelOpened = true;
    }
    const text = await page.locator('body').innerText();
    const labels = a.segmentLabels.filter((l) => text.includes(l));
    return labels.length === a.segmentLabels.length ? labels : null;
  }, 30000, 'the segment names in the segmentation panel');
  out.timings.segListedMs = Date.now() - t1;
  await dismissOverlays(page);
  for (const label of a.jumpToSegments || [a.segmentLabels[a.segmentLabels.length - 1]]) {
    await page.getByText(label, { exact: true }).last().click();
    await page.waitForTimeout(300);
  }
  // segShownBy "tint" (the benchmark, on a whole study whose opacity segments need not
  // share a slice): the lung overlay drawn is enough; otherwise both opacity colours.
  out.seg.stats = await poll(async () => {
    const stats = await canvasStats(page);
    if (a.segShownBy === 'tint') return (await tintedFraction()) > (out.ct.tinted || 0) + 0.01 ? stats : null;
    return stats && stats.reddish > 0.0001 && stats.yellowish > 0.0001 ? stats : null;
  }, 30000, 'the SEG overlay colours');
  out.timings.segDisplayedMs = Date.now() - t1;
  await page.waitForTimeout(300);
  out.seg.panelText = (await page.locator('body').innerText()).slice(0, 3000);
  out.steps.push('seg');
  await shot(page, a.artifacts, `${a.prefix || ''}3-seg`);

  // 4. The SR: open it. OHIF draws one finding's outline at a time with its values;
  // the viewport's "next" chevron steps through the findings.
  await page.getByText(a.srDescription).first().dblclick();
  const seen = new Set();
  let text = '';
  const next = page.locator('[data-cy="viewport-action-arrows-right"] svg');
  for (let step = 0; step < (a.srFindings || 8) && seen.size < a.measuredValues.length; step++) {
    try {
      await poll(async () => {
        await confirmPrompts();
        text = await page.locator('body').innerText();
        if (text.includes('Something went wrong')) throw new Error('OHIF: ' + text.slice(0, 500));
        const found = a.measuredValues.filter((v) => text.includes(v));
        const fresh = found.filter((v) => !seen.has(v));
        return fresh.length ? found : null;
      }, step === 0 ? 30000 : 4000, 'SR values');
    } catch (error) {
      if (String(error).includes('OHIF:')) throw error;
    }
    for (const v of a.measuredValues) if (text.includes(v)) seen.add(v);
    await page.waitForTimeout(300);
    await shot(page, a.artifacts, `${a.prefix || ''}4-sr${step ? '-' + step : ''}`);
    if (await next.count()) await next.last().click().catch(() => {});
  }
  out.sr = { values: [...seen], text: text.slice(0, 3000) };
  if (seen.size < a.measuredValues.length) {
    throw new Error(`SR values missing: ${a.measuredValues.filter((v) => !seen.has(v)).join(' | ')}`);
  }
  out.steps.push('sr');

  // 5. Without clicks: a plain link to the study (/viewer?StudyInstanceUIDs=..) is sent on
  // by the server with hangingprotocolId=@ohif/seg, which hangs the SEG on its CT, and
  // app-config's disableConfirmationPrompts skips the "load?" step.
  if (a.autoSeg) {
    const t2 = Date.now();
    await page.goto(`${a.url}/viewer?StudyInstanceUIDs=${a.study}`);
    out.auto = { url: page.url() };
    if (a.login && !page.url().startsWith(a.url)) await login();
    // The overlay is drawn with no click at all (the panel is opened only to read names).
    out.auto.tinted = await poll(async () => {
      const tinted = await tintedFraction();
      return tinted > (out.ct.tinted || 0) + 0.01 ? tinted : null;
    }, 60000, 'the SEG overlay, hung by the protocol');
    out.timings.autoSegMs = Date.now() - t2;
    await dismissOverlays(page);
    const autoPanel = page.locator('[data-cy="panelSegmentation-btn"]').first();
    if (await autoPanel.count()) await autoPanel.click().catch(() => {});
    out.auto.labels = await poll(async () => {
      const text = await page.locator('body').innerText();
      if (text.includes('Something went wrong')) throw new Error('OHIF: ' + text.slice(0, 500));
      const labels = a.segmentLabels.filter((l) => text.includes(l));
      return labels.length === a.segmentLabels.length ? labels : null;
    }, 60000, 'the segments, opened by the hanging protocol');
    await page.waitForTimeout(500);
    out.auto.loadButtons = await page.getByRole('button', { name: 'LOAD', exact: true }).count();
    out.auto.stats = await canvasStats(page);
    out.steps.push('auto-seg');
    await shot(page, a.artifacts, `${a.prefix || ''}5-seg-without-clicks`);
  }
} catch (error) {
  out.error = String(error && error.stack || error);
  await shot(page, a.artifacts, `${a.prefix || ''}failure`).catch(() => {});
  out.failureText = (await page.locator('body').innerText().catch(() => '')).slice(0, 3000);
}
out.dicomwebRequests = b.requests.filter((r) => r.url.includes('/dicomweb/')).length;
out.dicomwebWithoutBearer = b.requests.filter((r) => r.url.includes('/dicomweb/') && !(r.auth || '').startsWith('Bearer ')).length;
out.dicomwebErrors = b.responses.filter((r) => r.url.includes('/dicomweb/') && r.status >= 400);
out.console = b.log.filter((l) => /error|fail/i.test(l)).slice(-20);
await b.close();
console.log(JSON.stringify(out));
