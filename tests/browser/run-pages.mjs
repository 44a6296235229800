// Visits each URL given on the command line, in order, in one headless Chromium (Debian's
// /usr/bin/chromium, or $TESSERA_CHROMIUM) driven by playwright-core, and prints one JSON object
// on stdout: {"pages": [{"url", "result", "console", "errors", "failed_requests"}, ...]}.
// A page says it is done by setting `window.tesseraResult` (page.js's `tessera.run` does it).
// The pages share one browser context, so cookies set by one page are sent by the next, as for
// a person moving between pages. Used by tests/api/browser/ (see mod.rs there).
import { chromium } from 'playwright-core';

const executablePath = process.env.TESSERA_CHROMIUM || '/usr/bin/chromium';
const pageTimeout = Number(process.env.TESSERA_BROWSER_PAGE_TIMEOUT_MS || 20000);
const urls = process.argv.slice(2);
if (urls.length === 0) {
  console.error('usage: node run-pages.mjs URL...');
  process.exit(2);
}
// Whatever happens, the process ends: a hung browser must not hang the Rust test.
setTimeout(() => {
  console.error('run-pages.mjs: gave up after the overall timeout');
  process.exit(3);
}, 30000 + pageTimeout * urls.length).unref();

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root (CI) needs --no-sandbox; the rest keeps Chromium from calling out of this closed network.
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const pages = [];
try {
  const context = await browser.newContext();
  for (const url of urls) {
    const page = await context.newPage();
    const visit = { url, result: null, console: [], errors: [], failed_requests: [] };
    page.on('console', (m) => visit.console.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => visit.errors.push(String(e)));
    page.on('requestfailed', (r) =>
      visit.failed_requests.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`),
    );
    try {
      await page.goto(url);
      await page.waitForFunction(() => window.tesseraResult !== undefined, null, {
        timeout: pageTimeout,
      });
      visit.result = await page.evaluate(() => window.tesseraResult);
    } catch (e) {
      visit.errors.push(`run-pages.mjs: ${e}`);
    }
    pages.push(visit);
    await page.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify({ pages }) + '\n');
