import { describe, expect, it } from 'vitest';
import { useApi, useWorld } from './helpers/in-process-worker.js';

const TOKEN = 'schema-token';

/** The routes' zod schemas (the type provider): the first problem of an input named, and the OpenAPI document. */
describe('route schemas', () => {
  const w = useWorld();
  const a = useApi(w, { CHATQ_API_TOKENS: TOKEN });
  const call = (path: string, init: RequestInit & { token?: string | null } = {}) => {
    const headers = new Headers(init.headers);
    if (init.token !== null) headers.set('authorization', `Bearer ${init.token ?? TOKEN}`);
    return fetch(`${a.api.url}${path}`, { ...init, headers });
  };
  const post = (path: string, body?: unknown) =>
    call(path, {
      method: 'POST',
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
  const errorOf = async (res: Response) => ({ status: res.status, ...(await res.json()).error });

  it("answers a route's bad params, query or body with a 400 that names the field", async () => {
    expect(await errorOf(await call('/v1/batches?limit=0'))).toMatchObject({
      status: 400,
      code: 'invalid_request',
      param: 'limit',
      message: expect.stringMatching(/^limit: /),
    });
    expect(await errorOf(await call('/v1/users/not-a-uuid/requests'))).toMatchObject({
      status: 400,
      param: 'userid',
      message: 'userid: expected a UUID v4',
    });
    // No body at all reads as {}: the first required field is named, as with an empty object.
    for (const body of [undefined, {}])
      expect(await errorOf(await post('/v1/batches', body))).toMatchObject({ status: 400, param: 'input_file_id' });
    expect(
      await errorOf(await post('/v1/batches', { input_file_id: 'file-x', endpoint: '/v1/embeddings' })),
    ).toMatchObject({ status: 400, param: 'endpoint', message: 'endpoint: only /v1/chat/completions is supported' });
    // A body of these fields and no others.
    expect(await errorOf(await post('/v1/batches/batch_x/retry', { statuses: ['failed'] }))).toMatchObject({
      status: 400,
      type: 'invalid_request_error',
    });
    // A body whose fields may all be left out needs none: the batch is looked up (and not found).
    expect(await errorOf(await post('/v1/batches/batch_x/retry'))).toMatchObject({ status: 404, param: 'id' });
    // Authentication comes first: a bad input from someone without a token is a 401.
    expect((await call('/v1/batches?limit=0', { token: null })).status).toBe(401);
  });

  it('words a dashboard page input the same, as a page', async () => {
    const res = await call('/batches/batch_x?page=-1');
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await res.text()).toMatch(/page: /);
  });

  it('serves the OpenAPI document of the /v1 routes, made from their schemas', async () => {
    expect((await call('/v1/openapi.json', { token: null })).status).toBe(401);
    const res = await call('/v1/openapi.json');
    expect(res.status).toBe(200);
    const doc = await res.json();
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.components.securitySchemes.bearer).toEqual({ type: 'http', scheme: 'bearer' });
    const create = doc.paths['/v1/batches'].post.requestBody.content['application/json'].schema;
    expect(create.required).toEqual(expect.arrayContaining(['input_file_id', 'endpoint']));
    expect(create.properties.endpoint).toMatchObject({ enum: ['/v1/chat/completions'] });
    expect(create.additionalProperties).toBe(false);
    const list = doc.paths['/v1/batches'].get.parameters;
    expect(list).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'limit', in: 'query', schema: expect.objectContaining({ maximum: 100 }) }),
      ]),
    );
    expect(doc.paths['/v1/batches/{id}'].get.parameters).toEqual([
      expect.objectContaining({ name: 'id', in: 'path', required: true }),
    ]);
    for (const path of ['/v1/files', '/v1/files/{id}/content', '/v1/usage', '/v1/requests/{id}', '/v1/schedules'])
      expect(doc.paths).toHaveProperty([path]);
    // The API's routes only: no dashboard page, board, health or metrics.
    const paths = Object.keys(doc.paths);
    expect(paths.length).toBeGreaterThan(10);
    expect(paths.filter((p) => !p.startsWith('/v1/'))).toEqual([]);
  });
});
