import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { getFile, keepFile, releaseFile } from '../shared/files/file-store.js';
import { isFileId } from '../shared/ids.js';
import { PROJECT_NAME } from '../shared/config-env.js';
import { DEFAULT_PROJECT } from '../shared/keys.js';
import {
  addSchedule,
  checkScheduleBounds,
  getSchedule,
  getSchedules,
  listSchedules,
  removeSchedule,
  ScheduleError,
  scheduleId,
  scheduleSpecSchema,
} from '../shared/files/schedules.js';
import { sees } from '../shared/scope.js';
import type { ApiDeps } from '../http/api-deps.js';
import { ApiError } from '../http/api-errors.js';
import { parseInput, typed } from '../http/zod-edge.js';

const createBody = z.strictObject({
  name: z.string(),
  cron: z.string().optional(),
  every_ms: z.number().int().optional(),
  tz: z.string().optional(),
  input_file_id: z.string().min(1),
  models: z.array(z.string()).optional(),
  fresh_users: z.boolean().optional(),
  max_cost_usd: z.number().optional(),
  min_pass: z.number().optional(),
});
const nameParams = z.object({ name: z.string().min(1).max(64) });
const projectQuery = z.object({ project: z.string().regex(PROJECT_NAME).optional() });

/** Scheduled suite runs over HTTP: the same schedules as `chatq schedule`, from an uploaded file, within the token's project. */
export async function schedulesRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { redis, keys, schedules } = deps;
  const noSchedule = (name: string) => new ApiError(404, `No schedule ${name}.`, 'not_found', 'name');
  const api = typed(app);

  app.get('/v1/schedules', async (req) => ({
    object: 'list',
    data: await listSchedules(redis, keys, schedules, req.principal.scope),
  }));

  api.post('/v1/schedules', { schema: { body: createBody } }, async (req) => {
    const { input_file_id, ...rest } = req.body;
    const file = isFileId(input_file_id) ? await getFile(redis, keys, input_file_id) : null;
    if (!file || !sees(req.principal.scope, file.project))
      throw new ApiError(404, `No file ${input_file_id}.`, 'not_found', 'input_file_id');
    const spec = parseInput(scheduleSpecSchema, {
      ...rest,
      file_id: file.id,
      source: file.filename,
      project: file.project,
    });
    try {
      checkScheduleBounds(spec, deps.config.schedules);
      // The suite must outlive the upload's expiry: it lives as long as a schedule runs it.
      await keepFile(redis, keys, file.id);
      const { next } = await addSchedule(redis, keys, schedules, spec, deps.config.schedules);
      return { ...spec, next, skipped_runs: 0 };
    } catch (err) {
      if (!(err instanceof ScheduleError)) throw err;
      // A schedule refused keeps no hold on its file (unless another schedule runs it).
      if (!(await getSchedules(redis, keys)).some((s) => s.file_id === file.id))
        await releaseFile(redis, keys, file.id, deps.config.resultTtlS);
      throw new ApiError(400, err.message, 'invalid_schedule');
    }
  });

  // A project's token names its own schedules; an admin names another project's with ?project=.
  api.delete('/v1/schedules/:name', { schema: { params: nameParams, querystring: projectQuery } }, async (req) => {
    const { name } = req.params;
    const { project } = req.query;
    const id = scheduleId(req.principal.scope.project ?? project ?? DEFAULT_PROJECT, name);
    const spec = await getSchedule(redis, keys, id);
    if (!spec || !sees(req.principal.scope, spec.project)) throw noSchedule(name);
    if (!(await removeSchedule(redis, keys, schedules, id, deps.config.resultTtlS))) throw noSchedule(name);
    return { name, deleted: true };
  });
}
