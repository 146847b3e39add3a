/**
 * The rules of the house (`npm run lint`, part of `npm test`). Layers, from the bottom:
 *   shared/     what every process uses, in layers of its own, from the bottom:
 *     shared/graders/  the published benchmarks' prompts and scorers (LongMemEval, LoCoMo, Mem0) and chatq's judge: on
 *                      nothing else of chatq's
 *     shared/*.ts      the basics: config, keys, the request record and its statuses, ids, logging, formats, bounds
 *     shared/redis/    connections, Lua scripts and their generated preludes, the BullMQ queue, pause control
 *     shared/usage/    prices and the usage fold;  shared/files/  uploaded files and schedules
 *     shared/batches/  a batch's lifecycle: import records, reads, output, cancel, failure, retry, shards
 *     shared/reports/  usage and evaluation reports
 *   producer/ worker/ webhooks/ simulator/   the processes' own parts, on shared/
 *     worker/ in rooms, from the bottom: upstream/ (the client and its errors), capacity/ (limits, the gate, leases),
 *       store/ (the request's transitions and their Lua), each on nothing else of the worker's; run/ (one request's
 *       run) on those three; maintenance/ (reconciler, retention) on store/ and capacity/; the pool and health on top
 *     producer/: an import one way down: submit-batch (the way) on import-leases, import-run and import-end, those on
 *       parse-input, which with its formats (line-schemas, benchmark-input) imports none of the import's steps
 *   http/       what the API and the dashboard share (request context, auth, sessions, errors, edge parsing)
 *   api/ dashboard/   the two HTTP surfaces, on http/ and below; neither imports the other
 *   server/     the HTTP server's composition root: puts api/ and dashboard/ together
 *   library/    chatq as a library (index.ts is the package entry): submit, wait, results, workers, on the processes' parts
 *   cli/        the commands, on everything (those the library has are its calls); cli.ts is the entry point
 */
const layer = (name) => `^src/${name}/`;
/** A layer rule: modules matching `from` must not import modules matching `to` (`$1`: the group `from` matched). */
const below = (name, from, to, toNot) => ({
  name,
  severity: 'error',
  from: { path: from },
  to: { path: to, ...(toNot ? { pathNot: toNot } : {}) },
});
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'Modules import in one direction.', from: {}, to: { circular: true } },
    below('shared-imports-nothing-above', layer('shared'), '^src/(producer|worker|webhooks|simulator|http|api|dashboard|server|cli)/'),
    below('shared-basics-import-no-shared-folder', '^src/shared/[^/]+$', '^src/shared/[^/]+/', '^src/shared/graders/'),
    below('shared-graders-stand-alone', layer('shared/graders'), '^src/', '^src/shared/graders/'),
    below('shared-redis-on-the-basics', layer('shared/redis'), '^src/shared/(usage|files|batches|reports)/'),
    below('shared-usage-and-files-below-batches', '^src/shared/(usage|files)/', '^src/shared/(usage|files|batches|reports)/', '^src/shared/$1/'),
    below('shared-batches-below-reports', layer('shared/batches'), '^src/shared/reports/'),
    below('worker-bottom-rooms-stand-alone', '^src/worker/(upstream|capacity|store)/', '^src/worker/', '^src/worker/$1/'),
    below('worker-run-below-maintenance-and-the-pool', '^src/worker/run/', '^src/worker/(maintenance/|[^/]+$)'),
    below('worker-maintenance-on-store-and-capacity', '^src/worker/maintenance/', '^src/worker/(run/|upstream/|[^/]+$)'),
    // The import goes one way down: submit-batch (the way) on import-leases, import-run and import-end; those on
    // parse-input, which with its formats (line-schemas, benchmark-input) imports none of the import's steps.
    below('import-steps-below-the-way', '^src/producer/(import-(leases|run|end|errors|trace)|parse-input|line-schemas|benchmark-input|benchmarks/)', '^src/producer/submit-batch\\.ts$'),
    below('parsing-below-the-import-steps', '^src/producer/(parse-input|line-schemas|benchmark-input|benchmarks/)', '^src/producer/import-(leases|run|end|errors|trace)'),
    below('processes-do-not-import-http-or-cli', '^src/(producer|worker|webhooks|simulator)/', '^src/(http|api|dashboard|server|cli)/'),
    below('http-is-below-the-surfaces', layer('http'), '^src/(api|dashboard|server|cli)/'),
    below('api-does-not-import-dashboard', layer('api'), '^src/(dashboard|server|cli)/'),
    below('dashboard-does-not-import-api', layer('dashboard'), '^src/(api|server|cli)/'),
    below('server-is-below-the-cli', layer('server'), layer('cli')),
    below('library-is-below-the-surfaces', layer('library'), '^src/(http|api|dashboard|server|cli)/'),
    {
      name: 'worker-loads-no-http-surface',
      severity: 'error',
      comment: 'A `chatq worker` process loads neither the HTTP API, the dashboard nor the simulator (their modules are memory it would hold for nothing).',
      from: { path: '^src/cli/worker-command\\.ts$' },
      to: { path: '^src/(http|api|dashboard|server|simulator)/', reachable: true },
    },
    {
      name: 'tokenizer-loads-on-first-use',
      severity: 'error',
      comment: 'gpt-tokenizer (~20 MB of heap) is loaded by shared/token-estimate.ts when it first counts; no module imports it.',
      from: { pathNot: '^src/shared/token-estimate\\.ts$' },
      to: { path: 'gpt-tokenizer' },
    },
    { name: 'no-orphans', severity: 'error', comment: 'A module nothing imports is dead code.', from: { orphan: true, pathNot: ['^src/cli\\.ts$', '^src/index\\.ts$', '\\.d\\.ts$', '^src/dashboard/assets/'] }, to: {} },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    exclude: { path: '\\.lua$|\\.json$' },
  },
};
