// Open a DAG run's page in the Airflow UI in headless Debian Chromium, the way a person does, wait
// until its grid is drawn, save a screenshot and report what the grid shows (one JSON object on
// stdout). Used by pipelines/tests/test_dags_live.py; runnable by hand against `make airflow`:
//
//   node dags/browser/grid.mjs --url http://127.0.0.1:8080/dags/lakehouse_pipeline/runs/<run_id> \
//        --screenshot .state/screenshots/lakehouse_pipeline_grid.png
//
// playwright-core is the one pinned for the dashboard check (dashboards/browser, `make
// setup-dashboard-browser`), so there is one browser driver to install and audit.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(new URL('../../dashboards/browser/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    screenshot: { type: 'string' },
    timeout: { type: 'string', default: '120' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
  },
});
for (const k of ['url', 'screenshot']) {
  if (!opt[k]) { console.error(`error: --${k} is required`); process.exit(2); }
}

// no sandbox as root, and no background connections (no network beyond the package registries)
const browser = await chromium.launch({
  executablePath: opt.chromium,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const report = { url: null, tasks: [], grid: null, pageErrors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1100 } });
  page.setDefaultTimeout(Number(opt.timeout) * 1000);
  page.on('pageerror', (e) => report.pageErrors.push(String(e).slice(0, 300)));
  // the local Airflow lets every user in as admin: the UI fetches its token by itself
  await page.goto(opt.url);
  await page.waitForSelector('[data-task-id]');
  await page.waitForLoadState('networkidle');
  await page.waitForTimeout(1500); // the grid's bars fade in
  report.url = page.url();
  report.tasks = await page.$$eval('[data-task-id]', (els) => els.map((e) => e.getAttribute('data-task-id')));
  // the grid: from the left edge of the task names down their rows, across to the run's bars
  report.grid = await page.$$eval('[data-task-id]', (els) => {
    const boxes = els.map((e) => e.getBoundingClientRect());
    return {
      top: Math.min(...boxes.map((b) => b.top)),
      bottom: Math.max(...boxes.map((b) => b.bottom)),
      left: 0,
      right: Math.max(...boxes.map((b) => b.right)),
    };
  });
  await page.screenshot({ path: opt.screenshot });
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
