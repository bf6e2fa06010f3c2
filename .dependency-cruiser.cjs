// The boundaries of src/, checked by `npm run check` (depcruise). STYLE.md: the folders follow a message
// through the system, and a stage imports domain/, errors.ts, config.ts and other stages' types (ports),
// never another stage's code; main.ts, the composition root, wires them and may import anything.

/**
 * The stage folders of src/ (STYLE.md's layout). Shared by all: domain/, the files at the root of src/, and
 * clickhouse/, the one home of the ClickHouse protocol (client, SQL literals), which the stages that read and
 * write ClickHouse (sink/, progress/, migrate/) use as they use the drivers.
 */
const STAGES = [
  'api',
  'planner',
  'stream',
  'actor',
  'consent',
  'channel',
  'sink',
  'progress',
  'ws',
  'store',
  'import',
  'migrate',
  'metrics',
];
const STAGE = `^src/(${STAGES.join('|')})/`;

/**
 * Runtime imports across stages that were there when the rule came, in code being refactored by its
 * owners. Temporary: each entry allows exactly one edge, so any new one fails; delete an entry with the
 * import it names.
 */
const TEMPORARY_EXCEPTIONS = [
  // The spool drainer's worker thread builds its own inbox reader: it is the composition root of its own
  // thread, to be handed its adapters as main.ts is.
  { from: 'src/sink/spool-worker.ts', to: 'src/progress/inbox-reader.ts' },
];

const exact = (path) => `^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
const excepted = [...new Set(TEMPORARY_EXCEPTIONS.map((e) => e.from))];

/** A stage's runtime import of another stage; `$1` is the importing stage, which may import itself. */
const crossStage = (from, allowed = []) => ({
  name: 'stage-imports-stage',
  comment: 'a stage imports domain/, errors.ts, config.ts, and other stages only as `import type` (ports); main.ts wires them',
  severity: 'error',
  from,
  to: { path: STAGE, pathNot: ['^src/$1/', ...allowed.map(exact)], dependencyTypesNot: ['type-only'] },
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'no import cycles in src/, type-only ones included: a cycle hides which module is the lower layer',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'ws-not-api',
      comment: 'the WebSocket API and the HTTP API are two adapters: what both need lives in domain/ or comes from main.ts',
      severity: 'error',
      from: { path: '^src/ws/' },
      to: { path: '^src/api/' },
    },
    {
      name: 'cli-loads-server-lazily',
      comment:
        "the command line's client commands start without the server's code: src/cli imports main.ts, config and the stages only with import() (its server commands) or as types; ws/frame.ts's decoder and domain/ are pure",
      severity: 'error',
      from: { path: '^src/cli/' },
      to: {
        path: `^src/(main\\.ts|config\\.ts|config/|${STAGES.filter((s) => s !== 'ws').join('|')})`,
        dependencyTypesNot: ['type-only', 'dynamic-import'],
      },
    },
    {
      name: 'cli-ws-frame-only',
      comment: 'of the WebSocket stage, the command line uses only the frame codec (no uWS)',
      severity: 'error',
      from: { path: '^src/cli/' },
      to: { path: '^src/ws/', pathNot: '^src/ws/frame\\.ts$', dependencyTypesNot: ['type-only'] },
    },
    crossStage({ path: STAGE, pathNot: excepted.map(exact) }),
    ...excepted.map((file) =>
      crossStage(
        // the stage folder captured, as in STAGE, for the rule's `$1`
        { path: exact(file).replace(/^\^src\/([^/]+)\//, '^src/($1)/') },
        TEMPORARY_EXCEPTIONS.filter((e) => e.from === file).map((e) => e.to),
      ),
    ),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // `import type` is seen (and told apart) only before compilation.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs'] },
  },
};
