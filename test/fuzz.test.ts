import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseInput, parseLine } from '../src/producer/parse-input.js';
import { startApiService, type ApiService } from '../src/cli/api-service.js';
import { testLogger } from './helpers/test-env.js';
import { useWorld } from './helpers/in-process-worker.js';
import { rng } from './helpers/seeded-random.js';

const SEEDS = [
  { custom_id: 'a', user: 'u', model: 'm', messages: [{ role: 'user', content: 'hello' }], temperature: 0.2 },
  {
    custom_id: 'b',
    method: 'POST',
    url: '/v1/chat/completions',
    body: {
      model: 'm',
      userid: '9b2f7c1e-4a6d-4e8b-9c3a-1d2e3f4a5b6c',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }] }],
    },
  },
  {
    script_id: 's',
    user: 'u',
    model: 'm',
    history: 'full',
    turns: ['one', { content: 'two', expect: { contains: 'x', regex: '/a+/i' } }],
  },
];
const JUNK = [
  '',
  '{',
  '}',
  '[',
  ']',
  '"',
  ':',
  ',',
  'null',
  '-1',
  '1e309',
  '\u0000',
  '\ud800',
  '"userid"',
  '"turns"',
  '{}',
  '[]',
  'true',
  '"\\u0000"',
  '9'.repeat(400),
];

function mutate(text: string, r: () => number): string {
  const at = Math.floor(r() * (text.length + 1));
  switch (Math.floor(r() * 7)) {
    case 0:
      return text.slice(0, at);
    case 1:
      return text.slice(0, at) + text.slice(at + 1 + Math.floor(r() * 10));
    case 2:
      return text.slice(0, at) + JUNK[Math.floor(r() * JUNK.length)] + text.slice(at);
    case 3:
      return text.slice(0, at) + String.fromCharCode(Math.floor(r() * 0xffff)) + text.slice(at + 1);
    case 4:
      return text.replace(/"(\w+)":/, `"${JUNK[Math.floor(r() * JUNK.length)]}":`);
    case 5:
      return `${'['.repeat(Math.floor(r() * 3000))}${text}`;
    default:
      return text.replace(/"[^"]*"/g, (m) => (r() < 0.2 ? JSON.stringify(r() < 0.5 ? 42 : { deep: [null] }) : m));
  }
}

describe('fuzzing', () => {
  it('parses thousands of mutated lines without a crash or hang; every bad line is named', async () => {
    const r = rng(20261126);
    const texts: string[] = [];
    for (let i = 0; i < 6000; i++) {
      let t = JSON.stringify(SEEDS[i % SEEDS.length]);
      for (let k = 1 + Math.floor(r() * 3); k > 0; k--) t = mutate(t, r);
      texts.push(t.replace(/[\r\n]/g, ' '));
    }
    let good = 0;
    let bad = 0;
    texts.forEach((t, i) => {
      const parsed = parseLine(t, i + 1, { source: 'fuzz.jsonl' });
      if (parsed === null) return;
      if (parsed.ok) {
        good += 1;
        for (const d of parsed.drafts) expect(d.userid).toMatch(/^[0-9a-f-]{36}$/);
      } else {
        bad += 1;
        expect(parsed.error.line).toBe(i + 1);
        expect(parsed.error.message.length).toBeGreaterThan(0);
      }
    });
    expect(bad).toBeGreaterThan(1000);
    expect(good).toBeGreaterThan(0);
    // The same through the streaming reader: one result per non-blank line, in order.
    const seen: number[] = [];
    for await (const p of parseInput(Readable.from([texts.join('\n')]), { source: 'fuzz.jsonl' }))
      seen.push(p.ok ? p.line : p.error.line);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen.length).toBe(texts.filter((t) => t.trim() !== '').length);
  });

  describe('the API', () => {
    const w = useWorld();
    let api: ApiService;
    beforeEach(async () => {
      api = await startApiService(w.env.config({ CHATQ_API_TOKENS: 'fuzz' }), testLogger(), 0);
    });
    afterEach(async () => {
      await api.close();
    });

    it('answers malformed bodies on every endpoint with 4xx, never 5xx', async () => {
      const r = rng(7);
      const bodies = [
        ...JUNK,
        ...Array.from({ length: 150 }, () =>
          mutate(
            JSON.stringify({
              input_file_id: 'file-x',
              endpoint: '/v1/chat/completions',
              completion_window: '24h',
              metadata: { a: 'b' },
            }),
            r,
          ),
        ),
      ];
      const auth = { authorization: 'Bearer fuzz' };
      const statuses: number[] = [];
      for (const body of bodies) {
        for (const [method, path, type] of [
          ['POST', '/v1/batches', 'application/json'],
          ['POST', '/v1/batches/batch_x/cancel', 'application/json'],
          ['POST', '/v1/schedules', 'application/json'],
          ['POST', '/v1/files', 'multipart/form-data; boundary=zzz'],
          ['POST', '/v1/files', 'text/plain'],
        ] as const) {
          const res = await fetch(`${api.url}${path}`, {
            method,
            headers: { ...auth, 'content-type': type },
            body: type.startsWith('multipart')
              ? `--zzz\r\nContent-Disposition: form-data; name="file"; filename="f.jsonl"\r\n\r\n${body}\r\n--zzz--\r\n`
              : body,
          });
          statuses.push(res.status);
          await res.arrayBuffer();
        }
      }
      for (const path of [
        '/v1/batches?limit=abc',
        '/v1/batches?after=%00',
        '/v1/files/%2e%2e%2f',
        '/v1/users/%ff/requests',
        '/v1/usage?from=yesterday&group_by=day',
        `/v1/requests/${'x'.repeat(5000)}`,
      ]) {
        const res = await fetch(`${api.url}${path}`, { headers: auth });
        statuses.push(res.status);
        await res.arrayBuffer();
      }
      expect(statuses.filter((s) => s >= 500)).toEqual([]);
      expect(statuses.every((s) => s >= 400 && s < 500)).toBe(true);
    });

    it('answers random multipart bodies and random ids with 4xx (or 2xx), never 5xx', async () => {
      const r = rng(11);
      const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
      const junk = (n: number) =>
        Array.from({ length: n }, () => String.fromCharCode(Math.floor(r() * 0x2fff))).join('');
      // Header values must be Latin-1 to be sent at all.
      const ascii = (n: number) =>
        Array.from({ length: n }, () => String.fromCharCode(0x20 + Math.floor(r() * 0x5f))).join('');
      const auth = { authorization: 'Bearer fuzz' };
      const statuses: { status: number; what: string }[] = [];
      for (let i = 0; i < 150; i++) {
        const boundary = pick(['zz', 'x'.repeat(70), ascii(5), '']);
        const parts = Array.from({ length: Math.floor(r() * 4) }, () => {
          const name = pick(['file', 'purpose', 'file', junk(3), '']);
          const filename = pick(['', '; filename="a.jsonl"', `; filename="${junk(4)}"`, '; filename=']);
          const body = pick([
            'batch',
            mutate(JSON.stringify(SEEDS[0]), r),
            `${JSON.stringify(SEEDS[1])}\n${junk(20)}`,
            '{"a":1}\n'.repeat(Math.floor(r() * 50)),
            junk(200),
          ]);
          return `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${filename}\r\n${pick(['', 'Content-Type: application/jsonl\r\n', `${junk(6)}\r\n`])}\r\n${body}\r\n`;
        });
        const end = pick([`--${boundary}--\r\n`, '', `--${boundary}`, junk(10)]);
        const type = pick([
          `multipart/form-data; boundary=${boundary}`,
          'multipart/form-data',
          `multipart/form-data; boundary="${boundary}"`,
          'multipart/mixed; boundary=zz',
        ]);
        const res = await fetch(`${api.url}/v1/files`, {
          method: 'POST',
          headers: { ...auth, 'content-type': type },
          body: parts.join('') + end,
        });
        statuses.push({ status: res.status, what: `multipart #${i}` });
        await res.arrayBuffer();
      }
      const ids = [
        ':lines',
        '%00',
        '..%2f..%2f',
        'file-x:lines',
        'batch_0:reqs',
        '%F0%9F%92%A9',
        'x'.repeat(300),
        'a'.repeat(5_000),
        '%',
        '*',
        '{chatq}',
        'batch_000000000000000000000000-1:body',
      ];
      for (let i = 0; i < 40; i++) ids.push(encodeURIComponent(junk(1 + Math.floor(r() * 30))));
      for (const id of ids) {
        for (const [method, path] of [
          ['GET', `/v1/files/${id}`],
          ['GET', `/v1/files/${id}/content`],
          ['DELETE', `/v1/files/${id}`],
          ['GET', `/v1/batches/${id}`],
          ['POST', `/v1/batches/${id}/cancel`],
          ['GET', `/v1/requests/${id}`],
          ['GET', `/v1/users/${id}/requests`],
          ['DELETE', `/v1/schedules/${id}`],
          ['GET', `/v1/batches?after=${id}`],
          ['GET', `/v1/usage?group_by=user&batch=${id}`],
          // The dashboard's pages, with the same ids in every place they take one.
          ['GET', `/batches/${id}`],
          ['GET', `/batches/${id}?page=${id}`],
          ['POST', `/batches/${id}/cancel`],
          ['GET', `/batches/${id}/output.jsonl`],
          ['GET', `/users/${id}?project=${id}`],
          ['GET', `/evals/${id}`],
          ['GET', `/compare?a=${id}&b=${id}`],
          ['GET', `/?status=${id}&q=${id}&page=${id}`],
          ['GET', `/costs?from=${id}`],
          ['GET', `/ui/events?batches=${id}`],
          ['GET', `/login?next=${id}`],
        ] as const) {
          const res = await fetch(`${api.url}${path}`, { method, headers: auth });
          statuses.push({ status: res.status, what: `${method} ${path.slice(0, 80)}` });
          await res.arrayBuffer();
        }
      }
      expect(statuses.filter((s) => s.status >= 500)).toEqual([]);
      expect(statuses.length).toBeGreaterThan(500);
    });
  });
});
