// More of the UI than browser.mjs covers, against the mock (mock_server.py started with
// `--auth-token s3cret`; its seeded jobs include a FAILED one): the bearer-token prompt
// (a wrong token asks again), a refused submission's message, a submission that opens
// the new job's page, the latency chart of a Nexmark job, a savepoint that leaves the
// job RUNNING, Cancel, an unknown job id, a failed job's failure and exceptions, and
// that markup in server strings stays text.
//
//   EDDY_URL=http://127.0.0.1:PORT EDDY_TOKEN=s3cret node tests/ui/mock-extras.mjs
//
// tests/ui/against-mock.sh runs it. Exit code 0 on success.

import process from 'node:process';
import { chromium } from 'playwright-core';

const base = (process.env.EDDY_URL || '').replace(/\/+$/, '');
const token = process.env.EDDY_TOKEN || 's3cret';
const timeout = Number(process.env.EDDY_UI_TIMEOUT || 15000);
if (!base) {
  console.error('mock extras: set EDDY_URL');
  process.exit(2);
}
const tid = (x) => `[data-testid="${x}"]`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const errors = [];
let step = 'start';
try {
  const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
  page.setDefaultTimeout(timeout);
  page.on('pageerror', (e) => errors.push(e.message));
  // Waits until the element's text equals `want.equals`, includes `want.includes`, or
  // (with neither) is not empty.
  const waitText = (sel, want = {}) => page.waitForFunction(([s, w]) => {
    const t = document.querySelector(s)?.textContent.trim() ?? '';
    if (w.equals !== undefined) return t === w.equals;
    if (w.includes !== undefined) return t.includes(w.includes);
    return t.length > 0;
  }, [sel, want], { timeout });

  step = 'token prompt';
  await page.goto(base + '/');
  await page.fill(tid('submit-job'), 'nosuch');
  await page.fill(tid('submit-args'), '--x\n');
  await page.click(tid('submit-button'));
  await page.locator(tid('token-dialog')).waitFor();
  await page.fill(tid('token-input'), 'wrong');
  await page.click(tid('token-ok'));
  await page.locator(tid('token-dialog')).waitFor();
  await page.fill(tid('token-input'), token);
  await page.click(tid('token-ok'));
  await waitText(tid('submit-result'), { includes: 'unknown job' });
  console.log('ok: the token prompt asked twice; the refusal shows: ' + await page.textContent(tid('submit-result')));

  step = 'submit a job';
  await page.fill(tid('submit-job'), 'nexmark');
  await page.fill(tid('submit-args'), 'run\n--query\nq3\n--rate\n30000\n');
  await page.click(tid('submit-button'));
  await page.waitForFunction(() => /^#\/jobs\/[0-9a-f]+$/.test(location.hash), null, { timeout });
  const id = await page.evaluate(() => location.hash.split('/')[2]);
  await waitText(tid('job-state'), { equals: 'RUNNING' });
  await page.locator(`${tid('latency-chart')} svg path.series`).first().waitFor({ state: 'attached' });
  const boxes = await page.locator(`${tid('dag')} g.vertex`).count();
  console.log(`ok: submitted ${id}, its page shows ${boxes} vertices and a latency chart`);

  step = 'savepoint';
  await page.click(tid('btn-savepoint'));
  await waitText(tid('savepoint-location'));
  await waitText(tid('job-state'), { equals: 'RUNNING' });
  console.log('ok: savepoint at ' + await page.textContent(tid('savepoint-location')) + ', the job still RUNNING');

  step = 'cancel';
  await page.click(tid('btn-cancel'));
  await waitText(tid('job-state'), { equals: 'CANCELED' });
  if (!(await page.isDisabled(tid('btn-stop'))) || !(await page.isDisabled(tid('btn-cancel')))) {
    throw new Error('Stop/Cancel stay enabled on a CANCELED job');
  }
  console.log('ok: cancelled, the buttons are disabled');

  step = 'unknown job';
  await page.goto(base + '/#/jobs/doesnotexist');
  await page.locator(tid('job-missing')).waitFor({ state: 'visible' });
  console.log('ok: an unknown job says: ' + await page.textContent(tid('job-missing')));

  step = 'failed job';
  const jobs = await (await fetch(base + '/jobs')).json();
  const failed = jobs.jobs.find((j) => j.state === 'FAILED');
  if (!failed) throw new Error('the mock has no FAILED job (started with --no-seed?)');
  await page.goto(base + '/#/jobs/' + failed.id);
  await page.locator(tid('job-failure')).waitFor({ state: 'visible' });
  await page.locator(tid('root-exception')).waitFor();
  console.log('ok: a failed job shows its failure and root exception');

  step = 'markup stays text';
  const copy = jobs.jobs.find((j) => j.name === 'copy');
  await page.goto(base + '/#/jobs/' + copy.id + '/preview');
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="preview-table"] td')]
    .some((td) => td.textContent.includes('<b>')), null, { timeout });
  if (await page.locator(`${tid('preview-table')} b`).count()) throw new Error('a <b> from the server became markup');
  console.log('ok: "<b>" from the server shows as text');

  if (errors.length) {
    step = 'no page errors';
    throw new Error(errors.join('\n'));
  }
  await browser.close();
  console.log('mock extras passed');
  process.exit(0);
} catch (e) {
  console.error(`mock extras FAILED at "${step}": ${e.message.split('\n').slice(0, 6).join('\n')}`);
  await browser.close().catch(() => {});
  process.exit(1);
}
