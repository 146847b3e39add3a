/**
 * The rules of the house (`npm run lint`, part of `npm test`). Layers, from the bottom:
 *   shared/     what every process uses (Redis and its scripts, keys, config, batches, usage, prices, formats)
 *   producer/ worker/ webhooks/ simulator/   the processes' own parts, on shared/
 *   http/       what the API and the dashboard share (request context, auth, sessions, errors, edge parsing)
 *   api/ dashboard/   the two HTTP surfaces, on http/ and below; neither imports the other
 *   server/     the HTTP server's composition root: puts api/ and dashboard/ together
 *   cli/        the commands, on everything; cli.ts is the entry point
 */
const layer = (name) => `^src/${name}/`;
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'Modules import in one direction.', from: {}, to: { circular: true } },
    {
      name: 'shared-imports-nothing-above',
      severity: 'error',
      comment: 'shared/ is the bottom layer.',
      from: { path: layer('shared') },
      to: { path: '^src/(producer|worker|webhooks|simulator|http|api|dashboard|server|cli)/' },
    },
    {
      name: 'processes-do-not-import-http-or-cli',
      severity: 'error',
      comment: 'The producer, the worker, the webhooks and the simulator sit below the HTTP surfaces and the CLI.',
      from: { path: '^src/(producer|worker|webhooks|simulator)/' },
      to: { path: '^src/(http|api|dashboard|server|cli)/' },
    },
    { name: 'http-is-below-the-surfaces', severity: 'error', from: { path: layer('http') }, to: { path: '^src/(api|dashboard|server|cli)/' } },
    { name: 'api-does-not-import-dashboard', severity: 'error', from: { path: layer('api') }, to: { path: '^src/(dashboard|server|cli)/' } },
    { name: 'dashboard-does-not-import-api', severity: 'error', from: { path: layer('dashboard') }, to: { path: '^src/(api|server|cli)/' } },
    { name: 'server-is-below-the-cli', severity: 'error', from: { path: layer('server') }, to: { path: layer('cli') } },
    { name: 'no-orphans', severity: 'error', comment: 'A module nothing imports is dead code.', from: { orphan: true, pathNot: ['^src/cli\\.ts$', '\\.d\\.ts$', '^src/dashboard/assets/'] }, to: {} },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    exclude: { path: '\\.lua$|\\.json$' },
  },
};
