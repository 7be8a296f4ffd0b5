#!/usr/bin/env node
// Installed `earshot` command: runs the TypeScript CLI through tsx, so the CLI and the
// browser share the same source files with no separate build step.
import { register } from 'tsx/esm/api';

register();
await import('./earshot.ts');
