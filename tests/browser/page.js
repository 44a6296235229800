// Served at /page.js by the Rust tests' page server (tests/api/browser/mod.rs): what every test
// page needs to call Tessera with fetch and hand its findings to run-pages.mjs.
//   tessera.api      Tessera's base URL (the page's `?api=` parameter)
//   tessera.params   the page's query parameters
//   tessera.call     fetch that never throws: {status, type, headers, body} or {error}
//   tessera.run(fn)  runs an async fn and publishes what it returns (or the error it throws)
//   tessera.submitForm(path, fields, into)  posts a form to Tessera in a hidden iframe or, with
//                    into = 'popup', in a new window (a top-level navigation); resolves with
//                    'loaded' once the answer is in (the page cannot read it: another origin)
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
  function submitForm(path, fields, into = 'iframe') {
    const target = `form-${Math.random().toString(36).slice(2)}`;
    return new Promise((resolve) => {
      let popup = null;
      if (into === 'popup') {
        popup = window.open('about:blank', target);
        if (!popup) {
          resolve('popup blocked');
          return;
        }
      } else {
        const frame = document.createElement('iframe');
        frame.name = target;
        frame.style.display = 'none';
        document.body.appendChild(frame);
        // The first load of another origin's document (or of the error page a refused frame
        // shows) leaves the frame's document unreadable.
        frame.addEventListener('load', () => {
          if (frame.contentDocument === null) resolve('loaded');
        });
      }
      const form = document.createElement('form');
      form.method = 'POST';
      form.action = api + path;
      form.target = target;
      for (const [name, value] of Object.entries(fields)) {
        const input = document.createElement('input');
        input.type = 'hidden';
        input.name = name;
        input.value = value;
        form.appendChild(input);
      }
      document.body.appendChild(form);
      form.submit();
      if (popup) {
        const started = Date.now();
        const poll = setInterval(() => {
          let elsewhere = false;
          try {
            void popup.document.body;
          } catch (_) {
            elsewhere = true; // the popup shows another origin's answer now
          }
          if (elsewhere || Date.now() - started > 10000) {
            clearInterval(poll);
            popup.close();
            resolve(elsewhere ? 'loaded' : 'timeout');
          }
        }, 50);
      }
    });
  }
  async function run(fn) {
    try {
      window.tesseraResult = (await fn()) ?? null;
    } catch (e) {
      window.tesseraResult = { thrown: `${e.name}: ${e.message}` };
    }
  }
  return { api, params, call, json, run, submitForm };
})();
