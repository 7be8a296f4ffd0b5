/**
 * The site's Content-Security-Policy, defined once. vite.config.ts sends it from `vite preview`,
 * writes it into the built index.html as a <meta> tag and into dist/_headers for static hosts;
 * tests/e2e/csp.spec.ts checks that the app runs under it with no violation and that it blocks.
 *
 * Scripts come only from this site, and no string becomes code (no 'unsafe-eval': no `eval`, no
 * `new Function`). The network reaches only this site and the Hugging Face hub. There are two
 * policies because a CSP header on a script only matters when that script starts a worker:
 *
 * - DOCUMENT_CSP, for index.html (header and <meta>).
 * - WORKER_CSP, for the scripts (the engine worker). It adds `blob:` to script-src and worker-src:
 *   tfjs-backend-wasm's threaded build (picked in a cross-origin-isolated page) starts each
 *   pthread worker from a Blob URL of its worker source and has it `importScripts` a Blob of the
 *   Emscripten factory (tf-backend-wasm's `locateFile` / `mainScriptUrlOrBlob`); those Blobs are
 *   made by the library itself, from its own code, inside the worker. Blob workers inherit the
 *   engine worker's policy, so they get the same connect-src and no eval either. Without blob: in
 *   either directive the WASM backend never starts (tried: the csp.spec WASM test then times out).
 *
 * The dev server sends no CSP: Vite's HMR client and its inline module preloads need more.
 */

/**
 * Where model files come from. The app fetches https://huggingface.co/<repo>/resolve/<rev>/<file>
 * (workers/sources.ts); the hub answers small files itself and redirects large (LFS / Xet) ones
 * to its CDNs, and CSP checks every hop of a redirect. Those hosts are, per the hub's docs
 * ("downloading behind a proxy or firewall"): cas-bridge.xethub.hf.co, us.aws.cdn.hf.co,
 * us.gcp.cdn.hf.co, cdn-lfs(-us-1|-eu-1).hf.co and the legacy cdn-lfs(-us-1|-eu-1).huggingface.co.
 * Hugging Face moves them from time to time, hence the two wildcards (both domains are the hub's).
 */
export const HUB_HOSTS = ['https://huggingface.co', 'https://*.huggingface.co', 'https://*.hf.co'] as const;

type Directives = Record<string, readonly string[]>;

const page: Directives = {
  'default-src': ["'none'"],
  // 'wasm-unsafe-eval' lets WebAssembly compile (tfjs-backend-wasm, onnxruntime-web; without it
  // the WASM backend never starts); it allows nothing for JavaScript. Never 'unsafe-eval'.
  'script-src': ["'self'", "'wasm-unsafe-eval'"],
  // Inline styles (never inline scripts): plotly.js sets style="" attributes on its SVG and inserts
  // its own <style> rules at run time; without 'unsafe-inline' the charts draw unstyled and Chromium
  // reports style-src-attr and style-src-elem violations from plotly.min.js. Styles cannot run
  // code, and with img-src/font-src/connect-src closed to other hosts a style has nowhere to send
  // anything.
  'style-src': ["'self'", "'unsafe-inline'"],
  // data: for the favicon and plotly's heatmap images; blob: for plotly's PNG export, which draws
  // the chart's SVG as an image from a Blob URL (without it the download never comes).
  'img-src': ["'self'", 'data:', 'blob:'],
  // Clips play from Blob URLs; the built-in pairs' WAVs come from this site.
  'media-src': ["'self'", 'blob:'],
  'font-src': ["'self'"],
  'connect-src': ["'self'", ...HUB_HOSTS],
  // The engine worker (and the recorder's AudioWorklet, which script-src covers).
  'worker-src': ["'self'"],
  'object-src': ["'none'"],
  'base-uri': ["'self'"],
  'form-action': ["'none'"],
};

const worker: Directives = {
  ...page,
  'script-src': [...page['script-src'], 'blob:'],
  'worker-src': [...page['worker-src'], 'blob:'],
};

function serialize(d: Directives): string {
  return Object.entries(d)
    .map(([name, values]) => `${name} ${values.join(' ')}`)
    .join('; ');
}

/** The policy of the page (index.html): the HTTP header and the <meta> tag. */
export const DOCUMENT_CSP = serialize(page);
/** The policy of the scripts, which matters for the engine worker and the workers it starts. */
export const WORKER_CSP = serialize(worker);

/** Cross-origin isolation, so the WASM backend can use threads (SharedArrayBuffer). */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
} as const;

/** Which policy a response at this URL path gets: scripts the worker one, everything else the page's. */
export function cspForPath(path: string): string {
  return /\.m?js$/.test(path.split(/[?#]/)[0]) ? WORKER_CSP : DOCUMENT_CSP;
}

/**
 * dist/_headers (the format of Netlify and Cloudflare Pages). Both join the values when two rules
 * set the same header, which for CSP means both policies are enforced; so the page's policy goes
 * on the page's paths only and the scripts' on /assets/*, with no overlap.
 */
export function staticHostHeaders(): string {
  const block = (path: string, headers: Record<string, string>) =>
    [path, ...Object.entries(headers).map(([k, v]) => `  ${k}: ${v}`)].join('\n');
  return [
    '# Security headers for static hosts that read _headers (Netlify, Cloudflare Pages). Made by vite build from tools/csp.ts.',
    block('/*', ISOLATION_HEADERS),
    block('/', { 'Content-Security-Policy': DOCUMENT_CSP }),
    block('/index.html', { 'Content-Security-Policy': DOCUMENT_CSP }),
    block('/assets/*', { 'Content-Security-Policy': WORKER_CSP }),
    '',
  ].join('\n\n');
}
