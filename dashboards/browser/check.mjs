// Open a Superset dashboard in headless Debian Chromium the way a person does, and report what
// every chart shows. Used by pipelines/tests/test_dashboards_live.py; runnable by hand:
//
//   node dashboards/browser/check.mjs --url http://127.0.0.1:58088 --password-file .state/dashboards/admin_password \
//        --dashboard lakehouse-overview --screenshot .state/dashboards/lakehouse-overview.png
//
// It logs in through the login form, opens the dashboard, waits until no chart is loading, then
// measures each chart: drawn pixels of a canvas chart (ECharts), the big number's text, a table's
// rows, and any error or "no data" state. It keeps the page open for --watch seconds to count
// the chart data requests the dashboard's auto-refresh sends. Prints one JSON object on stdout.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    user: { type: 'string', default: 'admin' },
    'password-file': { type: 'string' },
    dashboard: { type: 'string' },
    screenshot: { type: 'string' },
    timeout: { type: 'string', default: '120' },
    watch: { type: 'string', default: '25' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
  },
});
for (const k of ['url', 'password-file', 'dashboard', 'screenshot']) {
  if (!opt[k]) { console.error(`error: --${k} is required`); process.exit(2); }
}
const timeoutMs = Number(opt.timeout) * 1000;
const password = readFileSync(opt['password-file'], 'utf8').trim();

// The flags this machine needs: no sandbox as root, and no background connections (there is no
// network beyond the package registries).
const browser = await chromium.launch({
  executablePath: opt.chromium,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const report = { url: null, charts: [], pageErrors: [], failedRequests: [], dataRequests: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1300 } });
  page.setDefaultTimeout(timeoutMs);
  page.on('pageerror', (e) => report.pageErrors.push(String(e).slice(0, 300)));
  const started = Date.now();
  page.on('response', (r) => {
    if (r.url().includes('/api/v1/chart/data')) report.dataRequests.push({ at: Date.now() - started, status: r.status() });
    else if (r.status() >= 500) report.failedRequests.push({ url: r.url(), status: r.status() });
  });

  const mark = (name) => { report.seconds[name] = (Date.now() - started) / 1000; };
  report.seconds = {};
  await page.goto(`${opt.url}/login/`);
  await page.fill('[data-test="username-input"]', opt.user);
  await page.fill('[data-test="password-input"]', password);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('[data-test="login-button"]')]);

  mark('loggedIn');
  await page.goto(`${opt.url}/superset/dashboard/${opt.dashboard}/`);
  report.url = page.url();
  await page.waitForSelector('[data-test-chart-id]');
  mark('dashboardShown');
  // every chart done: no loading indicator left and something (or an error) drawn in each
  await page.waitForFunction(() => {
    const charts = [...document.querySelectorAll('[data-test-chart-id]')];
    return charts.length > 0 && document.querySelectorAll('[data-test="loading-indicator"], .loading').length === 0
      && charts.every((c) => c.querySelector('canvas, table, .header-line, [role="alert"], .ant-empty, [data-test="empty-state"]'));
  });
  mark('chartsDrawn');
  await page.waitForTimeout(1500); // ECharts animates its first draw

  report.charts = await page.$$eval('[data-test-chart-id]', (els) => els.map((el) => {
    const text = el.innerText.replace(/\s+/g, ' ').trim();
    const canvases = [...el.querySelectorAll('canvas')];
    let drawn = 0;
    for (const c of canvases) {
      const ctx = c.getContext('2d');
      if (!ctx || !c.width || !c.height) continue;
      const px = ctx.getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < px.length; i += 16) { // every 4th pixel: coloured, not white, not transparent
        const [r, g, b, a] = [px[i], px[i + 1], px[i + 2], px[i + 3]];
        if (a > 0 && !(r > 235 && g > 235 && b > 235) && Math.max(r, g, b) - Math.min(r, g, b) > 40) drawn += 1;
      }
    }
    const header = el.querySelector('.header-line');
    const box = el.getBoundingClientRect();
    return {
      id: el.getAttribute('data-test-chart-id'),
      name: el.getAttribute('data-test-chart-name'),
      viz: el.getAttribute('data-test-viz-type'),
      width: Math.round(box.width),
      height: Math.round(box.height),
      canvasPixels: drawn,
      bigNumber: header ? header.innerText.trim() : null,
      tableRows: el.querySelectorAll('table tbody tr').length,
      alerts: [...el.querySelectorAll('[role="alert"], .ant-alert-error, .ant-empty, [data-test="empty-state"]')]
        .map((a) => a.innerText.replace(/\s+/g, ' ').trim()).filter(Boolean),
      noData: /no (results|data)\b|unexpected error|error loading/i.test(text),
      text: text.slice(0, 200),
    };
  }));
  await page.screenshot({ path: opt.screenshot, fullPage: true });

  const firstRound = report.dataRequests.length;
  await page.waitForTimeout(Number(opt.watch) * 1000); // the auto-refresh asks for the data again
  report.refreshRequests = report.dataRequests.length - firstRound;
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
