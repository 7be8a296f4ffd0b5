/**
 * A stand-in for the Hugging Face hub (this machine is offline), routed in a browser context:
 * the hub's URLs (`https://huggingface.co/<repo>/resolve/main/<file>`), the listed files of each
 * repo read from a local folder, everything else a 404; and the CORS header that lets a
 * cross-origin-isolated (COEP require-corp) page read them. The real hub redirects the weights
 * to a CDN that sends the same header; Playwright does not route the second hop of a redirect
 * made from a worker, so the stand-in answers directly.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { BrowserContext, Route } from '@playwright/test';

export interface StandInHub {
  /** Every path asked for, in order (URL pathnames). */
  served: string[];
  /** Requests held unanswered because their file was in `hold` when they arrived. */
  held: Route[];
  /** Files (`<repo>/<file>`) whose requests are held, to see progress and cancel it; clear it to let them through. */
  hold: Set<string>;
}

/** `repos`: repo id → the folder its files are read from and the files it has (paths inside the repo). */
export async function standInHub(context: BrowserContext, repos: Record<string, { dir: string; files: string[] }>, hold: string[] = []): Promise<StandInHub> {
  const hub: StandInHub = { served: [], held: [], hold: new Set(hold) };
  const cors = { 'access-control-allow-origin': '*' };
  await context.route('https://huggingface.co/**', async (route) => {
    const path = new URL(route.request().url()).pathname;
    hub.served.push(path);
    const [, repo, file] = /^\/(.+?\/.+?)\/resolve\/main\/(.+)$/.exec(path) ?? [];
    const known = repo !== undefined && repos[repo]?.files.includes(file);
    if (known && hub.hold.has(`${repo}/${file}`)) {
      hub.held.push(route);
      return;
    }
    if (!known) return route.fulfill({ status: 404, headers: cors, body: 'Entry not found' });
    const body = await readFile(resolve(repos[repo].dir, file));
    const type = file.endsWith('.json') ? 'application/json' : 'application/octet-stream';
    await route.fulfill({ status: 200, headers: { ...cors, 'content-type': type, 'content-length': String(body.length) }, body });
  });
  return hub;
}
