import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.venv/', 'test-results/', 'playwright-report/', '**/*.svelte'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.browser, ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-eval': 'error',
      'no-new-func': 'error',
      // zod compiles parsers with `new Function` unless configured: models/zod.ts does that (CSP).
      'no-restricted-imports': ['error', { paths: [{ name: 'zod', message: "Import z from models/zod.ts: it turns off zod's eval-based JIT, which the Content-Security-Policy forbids." }] }],
    },
  },
  { files: ['models/zod.ts'], rules: { 'no-restricted-imports': 'off' } },
);
