import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig, type Connect, type Plugin } from 'vite';
import { DOCUMENT_CSP, ISOLATION_HEADERS, cspForPath, staticHostHeaders } from './tools/csp.ts';

const repoRoot = dirname(fileURLToPath(import.meta.url));

/**
 * Cross-origin isolation, so the WASM backend can use threads (SharedArrayBuffer).
 * `require-corp` does not block the Hugging Face downloads: the worker fetches them in
 * CORS mode and the hub (and the CDN it redirects to) answer with
 * `Access-Control-Allow-Origin: *`, which satisfies COEP without a CORP header.
 */
const isolationHeaders = ISOLATION_HEADERS;

/**
 * Files the site serves that live elsewhere in the repo: the random-weight demo model.
 * Served from the repo in dev, emitted into the build: never copied by hand. (The built-in
 * clip pairs are ordinary public files: app/public/presets/, made by tools/presets.)
 */
const DEMO_ASSETS: Record<string, string> = {
  'models/demo/config.json': 'tests/fixtures/micro/config.json',
  'models/demo/model.safetensors': 'tests/fixtures/micro/model.safetensors',
  // Its ONNX export (tools/reference/make_onnx.py), for "Check this model".
  'models/demo/onnx/encoder_model.onnx': 'tests/fixtures/micro/onnx/encoder_model.onnx',
  'models/demo/onnx/decoder_model.onnx': 'tests/fixtures/micro/onnx/decoder_model.onnx',
};

const CONTENT_TYPES: Record<string, string> = {
  '.json': 'application/json',
  '.safetensors': 'application/octet-stream',
  '.onnx': 'application/octet-stream',
  '.wav': 'audio/wav',
};

function demoAssets(): Plugin {
  const sourceOf = (url: string | undefined): string | null | undefined => {
    if (!url) return undefined;
    const path = decodeURIComponent(url.split(/[?#]/)[0]).replace(/^\/+/, '');
    if (path in DEMO_ASSETS) return join(repoRoot, DEMO_ASSETS[path]);
    // Anything else under these folders (tokenizer.json, …) is a plain 404, never index.html.
    return path.startsWith('models/demo/') ? null : undefined;
  };
  const middleware: Connect.NextHandleFunction = (req, res, next) => {
    const source = sourceOf(req.url);
    if (source === undefined) return next();
    if (source === null || !existsSync(source)) {
      res.statusCode = 404;
      res.setHeader('Content-Type', 'text/plain');
      res.end(source === null ? 'Not found' : `Demo asset missing: ${source}. Generate it with tools/reference/make_fixtures.py.`);
      return;
    }
    res.setHeader('Content-Type', CONTENT_TYPES[source.slice(source.lastIndexOf('.'))] ?? 'application/octet-stream');
    res.setHeader('Content-Length', String(statSync(source).size));
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    res.end(readFileSync(source));
  };
  return {
    name: 'earshot-demo-assets',
    configureServer(server) {
      server.middlewares.use(middleware);
    },
    configurePreviewServer(server) {
      // The built files are served by preview itself; this only turns misses into 404s.
      server.middlewares.use((req, res, next) => {
        const source = sourceOf(req.url);
        if (source !== null) return next();
        res.statusCode = 404;
        res.end('Not found');
      });
    },
    generateBundle() {
      for (const [fileName, from] of Object.entries(DEMO_ASSETS)) {
        const source = join(repoRoot, from);
        if (!existsSync(source)) {
          this.warn(`demo asset ${from} is missing, so the built site has no ${fileName}; generate it with tools/reference/make_fixtures.py`);
          continue;
        }
        this.emitFile({ type: 'asset', fileName, source: readFileSync(source) });
      }
    },
  };
}

/**
 * The Content-Security-Policy (tools/csp.ts): a header from `vite preview` on every response (the
 * page's policy on pages, the workers' on scripts: a <meta> policy does not reach a worker), a
 * <meta> tag in the built index.html, and dist/_headers for static hosts. The dev server sends
 * none: Vite's HMR client and dev-time inline scripts would need a looser policy.
 */
function securityHeaders(): Plugin[] {
  return [
    {
      name: 'earshot-csp-build',
      apply: 'build',
      // Right after <meta charset>: a <meta> policy governs only what comes after it.
      transformIndexHtml(html) {
        const charset = /<meta charset="utf-8" \/>/;
        if (!charset.test(html) || /["&<>]/.test(DOCUMENT_CSP)) throw new Error('index.html: cannot place the Content-Security-Policy <meta> tag');
        return html.replace(charset, (m) => `${m}\n    <meta http-equiv="Content-Security-Policy" content="${DOCUMENT_CSP}" />`);
      },
      generateBundle() {
        this.emitFile({ type: 'asset', fileName: '_headers', source: staticHostHeaders() });
      },
    },
    {
      name: 'earshot-csp-preview',
      configurePreviewServer(server) {
        server.middlewares.use((req, res, next) => {
          res.setHeader('Content-Security-Policy', cspForPath(req.url ?? '/'));
          next();
        });
      },
    },
  ];
}

export default defineConfig({
  root: resolve(repoRoot, 'app'),
  // Relative asset URLs: the built site works from any static server and any sub-path.
  base: './',
  // No svelte.config.js: Svelte 5 compiles <script lang="ts"> itself, no preprocessors needed.
  plugins: [svelte({ configFile: false }), demoAssets(), securityHeaders()],
  build: {
    outDir: resolve(repoRoot, 'dist'),
    emptyOutDir: true,
    target: 'es2022',
    // plotly.js (~4.6 MB) is its own chunk, loaded when the first chart draws.
    chunkSizeWarningLimit: 5000,
  },
  worker: {
    format: 'es',
    // Not minified: tfjs' threaded WASM backend starts its pthread workers from the source
    // text of a function (Function.prototype.toString), which breaks when a minifier renames
    // the variables that function closes over ("ReferenceError: e is not defined").
    rolldownOptions: { output: { minify: false } },
  },
  server: {
    headers: isolationHeaders,
    // app/ is the root, but it imports workers/, models/ and node_modules/ beside it.
    fs: { allow: [repoRoot] },
  },
  preview: { headers: isolationHeaders },
});
