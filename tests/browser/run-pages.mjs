// Visits each URL given on the command line, in order, in one headless Chromium (Debian's
// /usr/bin/chromium, or $TESSERA_CHROMIUM) driven by playwright-core, and prints one JSON object
// on stdout: {"pages": [{"url", "result", "console", "errors", "failed_requests"}, ...]}.
// A page says it is done by setting `window.tesseraResult` (page.js's `tessera.run` does it).
// The pages share one browser context, so cookies set by one page are sent by the next, as for
// a person moving between pages. Used by tests/api/browser/ (see mod.rs there).
// Each visit also lists its "exchanges": every request any page, frame or popup of the context
// made meanwhile that got an answer, as {method, url, status, origin, cookies} where `cookies`
// names the cookies the browser sent with it (never their values); both are null when Chromium
// did not report the headers it sent. CORS preflights are not listed.
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
  let exchanges = [];
  let pending = [];
  context.on('response', (response) => {
    const record = exchanges;
    pending.push(
      (async () => {
        const request = response.request();
        const headers = await request.allHeaders().catch(() => ({}));
        const cookies = (headers.cookie || '')
          .split(';')
          .map((pair) => pair.split('=')[0].trim())
          .filter((name) => name !== '');
        record.push({
          method: request.method(),
          url: request.url(),
          status: response.status(),
          // Chromium does not always report the headers it really sent (e.g. for a no-cors
          // fetch); without them (no `host`), origin and cookies are unknown: null.
          origin: 'host' in headers ? (headers.origin ?? null) : null,
          cookies: 'host' in headers ? cookies : null,
        });
      })(),
    );
  });
  for (const url of urls) {
    const page = await context.newPage();
    exchanges = [];
    pending = [];
    const visit = { url, result: null, console: [], errors: [], failed_requests: [], exchanges };
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
    await Promise.all(pending);
    pages.push(visit);
    await page.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify({ pages }) + '\n');
