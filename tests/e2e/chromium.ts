import type { Page } from '@playwright/test';

/** Debian Chromium and its flags, for every browser test (vitest.config.ts, playwright.config.ts, specs that add their own). */
export const CHROMIUM = '/usr/bin/chromium';

export const chromiumFlags = [
  '--headless',
  '--no-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--enable-unsafe-webgpu',
];

/** A fake microphone that plays `wav` (looped) to every getUserMedia capture, allowed without a prompt. */
export function fakeMicFlags(wav: string): string[] {
  return ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${wav}`];
}

/** Fails the test on any uncaught page error; the UI must turn failures into banners. */
export function watchPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return errors;
}
