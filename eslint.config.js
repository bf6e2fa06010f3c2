// Lint: typescript-eslint's recommended rules, plus the ones that catch lost messages (an un-awaited
// XACK or insert) and stray `any` leaking out of drivers. Type-aware, through the TS project service.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'dist/**',
      '.herald/**',
      'bench/results/**',
      'scripts/patch-uws.mjs',
      'src/sink/spool-worker-boot.mjs',
      'eslint.config.js',
    ],
  },
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // The dashboard (plain browser JavaScript) and the dependency-cruiser config are outside the TS
    // project: linted without type information.
    files: ['src/dashboard/**/*.js', '.dependency-cruiser.cjs', 'scripts/build.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
