// Served at /page.js by the Rust tests' page server (tests/api/browser/mod.rs): what every test
// page needs to call Tessera with fetch and hand its findings to run-pages.mjs.
//   tessera.api      Tessera's base URL (the page's `?api=` parameter)
//   tessera.params   the page's query parameters
//   tessera.call     fetch that never throws: {status, type, headers, body} or {error}
//   tessera.run(fn)  runs an async fn and publishes what it returns (or the error it throws)
window.tessera = (() => {
  const params = new URLSearchParams(location.search);
  const api = params.get('api');
  async function call(path, init = {}) {
    try {
      const response = await fetch(api + path, init);
      const text = await response.text();
      let body = text;
      try {
        body = text === '' ? null : JSON.parse(text);
      } catch (_) {
        // not JSON: keep the text
      }
      return {
        status: response.status,
        type: response.type,
        // Only what CORS lets the page see: safelisted and exposed headers.
        headers: Object.fromEntries(response.headers),
        body,
      };
    } catch (e) {
      return { error: `${e.name}: ${e.message}` };
    }
  }
  function json(method, body, headers = {}) {
    return {
      method,
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
    };
  }
  async function run(fn) {
    try {
      window.tesseraResult = (await fn()) ?? null;
    } catch (e) {
      window.tesseraResult = { thrown: `${e.name}: ${e.message}` };
    }
  }
  return { api, params, call, json, run };
})();
