// End-to-end test of eddy's web UI in a real headless browser (Debian's chromium,
// driven by playwright-core; no Playwright-downloaded browsers).
//
//   EDDY_URL=http://127.0.0.1:8081 EDDY_JOB=<running job id> node tests/ui/browser.mjs
//
// Environment:
//   EDDY_URL          the daemon's base URL (required)
//   EDDY_JOB          the id of a RUNNING job with a print: sink (required); the test stops it
//   EDDY_SCREENSHOT   when set, a PNG of the job page goes there, and next to it
//                     <name>-list.png, <name>-preview.png, <name>-finished.png
//                     (<name>-failure.png when a step fails)
//   CHROMIUM          the browser (default /usr/bin/chromium)
//   EDDY_UI_TIMEOUT   the deadline of each step in milliseconds (default 30000)
//
// Steps: load `/`, see the job in the list, open its page, see the DAG (at least one
// vertex box) and a vertex's records-out number change between two reads, open the
// preview page and see rows, go back, click Stop, see the state become FINISHED and the
// savepoint's location. Every wait is on a condition with a deadline. Exit code 0 on
// success; 1 with the failed step's message otherwise (2: bad environment). A page
// error (an uncaught exception in app.js) or a 5xx answer fails the test too.

import { existsSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error('browser test: cannot load playwright-core (' + e.message + '); run `npm ci --prefix tests/ui` first');
  process.exit(2);
}

const base = (process.env.EDDY_URL || '').replace(/\/+$/, '');
const jobId = process.env.EDDY_JOB || '';
const shot = process.env.EDDY_SCREENSHOT || '';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const timeout = Number(process.env.EDDY_UI_TIMEOUT || 30000);

if (!base || !jobId) {
  console.error('browser test: set EDDY_URL (the daemon, e.g. http://127.0.0.1:8081) and EDDY_JOB (a running job id)');
  process.exit(2);
}
if (!existsSync(executablePath)) {
  console.error(`browser test: no browser at ${executablePath}: install Debian's chromium (apt-get install -y chromium) or set CHROMIUM`);
  process.exit(2);
}

function shotPath(suffix) {
  if (!shot) return null;
  if (!suffix) return shot;
  const ext = path.extname(shot) || '.png';
  return shot.slice(0, shot.length - path.extname(shot).length) + '-' + suffix + ext;
}

const tid = (id) => `[data-testid="${id}"]`;
let step = 'start';
const t0 = Date.now();
function ok(message) {
  console.log(`ok ${((Date.now() - t0) / 1000).toFixed(1)}s: ${message}`);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const pageErrors = [];
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 1000 } });
  page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // A server error answering the UI fails the test; other refusals are shown.
  page.on('response', (r) => {
    if (r.status() >= 500) pageErrors.push(`${r.request().method()} ${r.url()} answered ${r.status()}`);
    else if (r.status() >= 400) console.error(`note: ${r.request().method()} ${r.url()} answered ${r.status()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') console.error('browser console: ' + m.text());
  });

  step = 'load the job list';
  const res = await page.goto(base + '/', { waitUntil: 'load' });
  if (!res || !res.ok()) throw new Error(`GET / answered ${res ? res.status() : 'nothing'}`);
  await page.locator(tid('job-row-' + jobId)).waitFor({ state: 'visible' });
  const listState = (await page.locator(tid('job-state-' + jobId)).textContent()).trim();
  ok(`job ${jobId} is in the list (${listState})`);
  if (shot) await page.screenshot({ path: shotPath('list'), fullPage: true });

  step = 'open the job page';
  await page.locator(tid('job-link-' + jobId)).click();
  await page.waitForFunction((id) => location.hash === '#/jobs/' + id, jobId, { timeout });
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === 'RUNNING',
    tid('job-state'), { timeout });
  ok('the job page shows the job RUNNING');

  step = 'see the DAG';
  await page.locator(`${tid('dag')} g.vertex`).first().waitFor({ state: 'visible' });
  const vertices = await page.$$eval(`${tid('dag')} g.vertex`, (gs) => gs.map((g) => ({
    id: g.getAttribute('data-vertex'),
    name: g.querySelector('.v-name')?.textContent,
    out: g.querySelector('[data-testid$="-out-rate"]')?.textContent,
  })));
  const edges = await page.$$eval(`${tid('dag')} g.edge text`, (ts) => ts.map((t) => t.textContent));
  ok(`the DAG has ${vertices.length} vertex box(es): ${vertices.map((v) => `${v.id} "${v.name}" out ${v.out}`).join('; ')}; edges: ${edges.join(', ') || 'none'}`);

  step = "see a vertex's records-out change";
  const readOut = () => page.$$eval('[data-testid^="vertex-"][data-testid$="-records-out"]',
    (cells) => Object.fromEntries(cells.map((c) => [c.getAttribute('data-testid'), Number(c.getAttribute('data-value'))])));
  await page.waitForFunction(() => document.querySelectorAll('[data-testid$="-records-out"][data-value]').length > 0,
    null, { timeout });
  const first = await readOut();
  const handle = await page.waitForFunction((before) => {
    for (const c of document.querySelectorAll('[data-testid^="vertex-"][data-testid$="-records-out"]')) {
      const id = c.getAttribute('data-testid');
      const now = Number(c.getAttribute('data-value'));
      if (id in before && Number.isFinite(now) && now !== before[id] && now > 0) return { id, before: before[id], now, text: c.textContent };
    }
    return null;
  }, first, { timeout, polling: 200 });
  const change = await handle.jsonValue();
  ok(`${change.id} went from ${change.before} to ${change.now} (shows "${change.text}")`);
  // The live parts of the page: the rate in the box, the charts, the checkpoint table.
  await page.locator(`${tid('throughput-chart')} svg path.series`).first().waitFor({ state: 'attached' });
  await page.locator(tid('checkpoints-table')).waitFor({ state: 'attached' });
  await page.locator(tid('exceptions-restarts')).waitFor({ state: 'attached' });
  ok('throughput chart drawn, checkpoints and exceptions shown');

  step = 'see latency markers per vertex and the latency chart';
  // The job runs with --latency-tracking-interval: the sink vertex (it has an input)
  // reports the markers' travel time from the source; the source vertex reports none.
  const latHandle = await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll('[data-testid^="vertex-"][data-testid$="-latency"]')];
    const measured = cells.filter((c) => c.hasAttribute('data-p99'));
    if (measured.length === 0) return null;
    return { measured: measured.map((c) => c.getAttribute('data-testid') + ' ' + c.textContent),
      unmeasured: cells.filter((c) => !c.hasAttribute('data-p99')).map((c) => c.getAttribute('data-testid')) };
  }, null, { timeout, polling: 200 });
  const lat = await latHandle.jsonValue();
  if (lat.unmeasured.length === 0) throw new Error('every vertex shows a latency, the source vertex should not');
  await page.locator(`${tid('latency-chart')} svg path.series`).first().waitFor({ state: 'attached', timeout });
  const latencyText = (await page.locator(tid('latency-latest')).textContent()).trim();
  if (!latencyText.includes('latency markers')) throw new Error(`latency not from markers: "${latencyText}"`);
  ok(`latency per vertex: ${lat.measured.join('; ')}; none at ${lat.unmeasured.join(', ')}; chart drawn; "${latencyText}"`);
  if (shot) await page.screenshot({ path: shotPath(''), fullPage: true });

  step = 'open the preview page';
  await page.locator(tid('link-preview')).click();
  await page.waitForFunction((id) => location.hash === '#/jobs/' + id + '/preview', jobId, { timeout });
  await page.locator(`${tid('preview-table')} tbody tr`).first().waitFor({ state: 'visible' });
  const rows = await page.locator(`${tid('preview-table')} tbody tr`).count();
  const columns = await page.$$eval(`${tid('preview-table')} thead th`, (ths) => ths.map((t) => t.textContent));
  const numericCols = await page.$$eval(`${tid('preview-columns')} input`, (is) => is.map((i) => i.getAttribute('data-testid').replace('preview-col-', '')));
  ok(`the preview shows ${rows} row(s), columns ${columns.join(', ')}; charted: ${numericCols.join(', ') || 'none'}`);
  if (shot) await page.screenshot({ path: shotPath('preview'), fullPage: true });

  step = 'go back to the job page';
  await page.goBack();
  await page.waitForFunction((id) => location.hash === '#/jobs/' + id, jobId, { timeout });
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === 'RUNNING',
    tid('job-state'), { timeout });
  await page.locator(tid('btn-stop')).waitFor({ state: 'visible' });
  await page.waitForFunction((sel) => !document.querySelector(sel)?.disabled, tid('btn-stop'), { timeout });
  ok('back on the job page, Stop enabled');

  step = 'stop the job';
  await page.locator(tid('btn-stop')).click();
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === 'FINISHED',
    tid('job-state'), { timeout: timeout * 2, polling: 200 });
  ok('the job state became FINISHED');
  await page.waitForFunction((sel) => (document.querySelector(sel)?.textContent || '').trim().length > 0,
    tid('savepoint-location'), { timeout, polling: 200 });
  const spLocation = (await page.locator(tid('savepoint-location')).textContent()).trim();
  ok(`the savepoint location is shown: ${spLocation}`);
  if (shot) await page.screenshot({ path: shotPath('finished'), fullPage: true });

  if (pageErrors.length) {
    step = 'no errors in the page';
    throw new Error(pageErrors.join('\n'));
  }
  await browser.close();
  console.log('browser test passed');
  process.exit(0);
} catch (e) {
  console.error(`browser test FAILED at step "${step}": ${e.message.split('\n').slice(0, 6).join('\n')}`);
  if (pageErrors.length) console.error('page errors:\n' + pageErrors.join('\n'));
  if (page && shot) {
    try {
      await page.screenshot({ path: shotPath('failure'), fullPage: true });
      console.error('screenshot of the failure: ' + shotPath('failure'));
    } catch (_) {
      /* the page may be gone */
    }
  }
  await browser.close().catch(() => {});
  process.exit(1);
}
