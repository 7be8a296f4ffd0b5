/**
 * zod, configured for the site's Content-Security-Policy (tools/csp.ts): `jitless` keeps zod from
 * compiling object parsers with `new Function`, and from probing whether it may (a probe a strict
 * CSP reports as a violation even though zod catches the error). Import `z` from here, not from
 * 'zod': the setting must be made before the first schema is built, and this module is evaluated
 * before any module that imports it.
 */
import { z } from 'zod';

z.config({ jitless: true });

export { z };
