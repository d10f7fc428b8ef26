import js from '@eslint/js'
import { createNodeResolver, importX } from 'eslint-plugin-import-x'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      '**/.next/**',
      '**/dist/**',
      '**/next-env.d.ts',
      '.kiln/**',
      'kiln-out/**',
      '.scratch/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        fetch: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        NodeJS: 'readonly',
      },
    },
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.tsx', '.js', '.mjs'] })],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts', '.tsx'] },
      'import-x/extensions': ['.ts', '.tsx', '.js', '.mjs'],
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
      // Configuration is read in one place per program (env.ts, bin.ts) and passed down, so
      // every other part can be run and tested with the values it is given.
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'read the environment in env.ts or bin.ts and pass the values in',
        },
      ],
      // A package is used through its exports (its index), never through its files.
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@kiln/*/src', '@kiln/*/src/**'],
              message: 'import the package by its name (@kiln/x), not its source files',
            },
            {
              group: ['**/packages/*/src', '**/packages/*/src/**'],
              message: 'import the package by its name (@kiln/x), not its source files by path',
            },
          ],
        },
      ],
      // Type-only imports make no cycle at run time.
      'import-x/no-cycle': ['error', { ignoreExternal: true, allowUnsafeDynamicCyclicDependency: false }],
    },
  },
  {
    // Where the environment is the input: entry points, setup scripts, benches (their knobs), tests.
    files: [
      '**/env.ts',
      '**/bin.ts',
      'scripts/**',
      'bench/**',
      '**/test/**',
      'test/**',
      '**/*.test.ts',
      '**/*.test.tsx',
      '*.config.{js,ts,mjs}',
    ],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // The CLI's entry (run) and its defaults (defaultGlobals) take the environment as a
    // parameter defaulting to process.env: the CLI's env.ts in all but name, and tests pass their own.
    files: ['apps/client-cli/src/main.ts', 'apps/client-cli/src/context.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
)
