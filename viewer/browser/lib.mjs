// Shared pieces of the browser scripts: Debian chromium through playwright-core (no
// browser download), a fresh profile, and OHIF helpers.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const FLAGS = [
  '--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--disable-quic',
];

export function args() {
  return JSON.parse(process.argv[2] || '{}');
}

export async function launch(options) {
  const profile = mkdtempSync(path.join(tmpdir(), 'l3net-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: options.chromium || '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    viewport: { width: 1400, height: 900 },
  });
  const page = context.pages()[0] || (await context.newPage());
  const log = [];
  page.on('console', (msg) => log.push(`[${msg.type()}] ${msg.text()}`.slice(0, 500)));
  page.on('pageerror', (err) => log.push(`[pageerror] ${err.message}`.slice(0, 500)));
  const requests = [];
  page.on('request', (req) => requests.push({ url: req.url(), auth: req.headers()['authorization'] || null }));
  const responses = [];
  page.on('response', (res) => responses.push({ url: res.url(), status: res.status() }));
  return {
    context, page, log, requests, responses,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function shot(page, artifacts, name) {
  mkdirSync(artifacts, { recursive: true });
  const file = path.join(artifacts, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

// Close OHIF's first-run tour and any banner/dialog in the way of clicking.
export async function dismissOverlays(page) {
  for (const label of ['Skip all', 'Skip', 'Close', 'Got it', 'Dismiss']) {
    const button = page.getByRole('button', { name: label, exact: true });
    try {
      if (await button.first().isVisible({ timeout: 200 })) await button.first().click({ timeout: 1000 });
    } catch { /* not there */ }
  }
  await page.keyboard.press('Escape').catch(() => {});
}

// Statistics of what is on screen in the viewport (a screenshot of it, decoded in the
// page): mean grey, non-black fraction, distinct colours, the fractions of clearly
// red and clearly yellow pixels (the consolidation and ground-glass overlays), and of
// tinted pixels, clearly not grey (a CT alone is grey; any SEG overlay tints it).
export async function canvasStats(page, selector = '[data-cy="viewport-pane"]') {
  const pane = page.locator(selector).first();
  if (!(await pane.count())) return null;
  let png;
  try { png = await pane.screenshot({ timeout: 5000 }); } catch { return null; }
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = 'data:image/png;base64,' + b64;
    await img.decode();
    const copy = document.createElement('canvas');
    copy.width = img.width; copy.height = img.height;
    const ctx = copy.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const { data } = ctx.getImageData(0, 0, copy.width, copy.height);
    let sum = 0, nonBlack = 0, reddish = 0, yellowish = 0, tinted = 0;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4) {
      const r = data[i], g = data[i + 1], b = data[i + 2];
      sum += (r + g + b) / 3;
      if (r + g + b > 30) nonBlack++;
      if (r > 100 && g < 0.6 * r && b < 0.6 * r) reddish++;
      if (r > 100 && g > 90 && b < 0.6 * Math.min(r, g) && Math.abs(r - g) < 0.35 * r) yellowish++;
      if (Math.max(r, g, b) - Math.min(r, g, b) > 40) tinted++;
      if (i % 64 === 0) colours.add((r << 16) | (g << 8) | b);
    }
    const n = data.length / 4;
    return { width: copy.width, height: copy.height, mean: sum / n, nonBlack: nonBlack / n,
             reddish: reddish / n, yellowish: yellowish / n, tinted: tinted / n, colours: colours.size };
  }, png.toString('base64'));
}
