import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseInput, parseLine } from '../../src/producer/parse-input.js';

const opts = { source: 'hostile.jsonl' };
const chat = (fields: Record<string, unknown>) =>
  JSON.stringify({ user: 'u', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], ...fields });
const errorOf = (text: string, o: Parameters<typeof parseLine>[2] = opts) => {
  const parsed = parseLine(text, 7, o);
  if (!parsed || parsed.ok) throw new Error(`expected a bad line, got ${JSON.stringify(parsed)}`);
  return parsed.error;
};

describe('per-line limits, checked at parse time', () => {
  it('max_tokens must be an integer within range (1e19 would poison the token limiter)', () => {
    for (const bad of [1e19, 1.5, -1, 0, '100']) {
      const e = errorOf(chat({ max_tokens: bad }));
      expect(e).toMatchObject({ line: 7, field: 'max_tokens' });
      expect(e.message).toMatch(/integer between 1 and 1048576/);
    }
    expect(errorOf(chat({ max_completion_tokens: 1e19 })).field).toBe('max_completion_tokens');
    const batchLine = JSON.stringify({
      custom_id: 'b',
      method: 'POST',
      url: '/v1/chat/completions',
      body: { model: 'm', user: 'u', max_tokens: 1e19, messages: [{ role: 'user', content: 'x' }] },
    });
    expect(errorOf(batchLine).field).toBe('body.max_tokens');
    const script = JSON.stringify({ user: 'u', model: 'm', turns: ['a'], max_tokens: 1e19 });
    expect(errorOf(script).field).toBe('max_tokens');
    expect(parseLine(chat({ max_tokens: 4096 }), 1, opts)).toMatchObject({ ok: true });
  });

  it('a line nested deeper than the bound is a bad line, not a stack overflow later', () => {
    const deep = `{"user":"u","model":"m","messages":[{"role":"user","content":${'['.repeat(100_000)}${']'.repeat(100_000)}}]}`;
    const e = errorOf(deep);
    expect(e.message).toMatch(/nested deeper than 64 levels/);
    // Brackets inside strings do not count.
    expect(parseLine(chat({ messages: [{ role: 'user', content: '['.repeat(5_000) }] }), 1, opts)).toMatchObject({
      ok: true,
    });
  });

  it('too many messages, too many turns, over-long ids and model names are bad lines with their field', () => {
    const many = Array.from({ length: 1_001 }, () => ({ role: 'user', content: 'x' }));
    expect(errorOf(chat({ messages: many }))).toMatchObject({ field: 'messages' });
    expect(errorOf(JSON.stringify({ user: 'u', model: 'm', turns: Array(1_001).fill('x') }))).toMatchObject({
      field: 'turns',
    });
    expect(errorOf(chat({ custom_id: 'x'.repeat(513) }))).toMatchObject({ field: 'custom_id' });
    expect(errorOf(chat({ model: 'gpt\u001b]0;owned\u0007' }))).toMatchObject({ field: 'model' });
    expect(errorOf(chat({ user: 'u'.repeat(1_025) }))).toMatchObject({ field: 'user' });
  });

  it('a line over the size bound is reported with its size, and the lines after it still parse', async () => {
    const big = chat({ custom_id: 'big', messages: [{ role: 'user', content: 'x'.repeat(3 * 1024 * 1024) }] });
    const text = [chat({ custom_id: 'a' }), big, chat({ custom_id: 'c' })].join('\n');
    const out = [];
    for await (const p of parseInput(Readable.from([text]), opts)) out.push(p);
    expect(out.map((p) => (p.ok ? p.drafts[0]!.customId : `bad:${p.error.line}`))).toEqual(['a', 'bad:2', 'c']);
    const bad = out[1]!;
    expect(!bad.ok && bad.error.message).toMatch(/line is 3\.00 MiB; the limit is 2 MiB/);
  });

  it('a field of the wrong type says what it got, not "missing"', () => {
    expect(errorOf(chat({ user: 42 }))).toMatchObject({
      field: 'user',
      message: expect.stringMatching(/expected a string, got number/),
    });
    expect(errorOf(JSON.stringify({ user: 'u', model: 'm', messages: 'hello' }))).toMatchObject({
      field: 'messages',
      message: expect.not.stringMatching(/missing/),
    });
    expect(errorOf(JSON.stringify({ user: 'u', messages: [{ role: 'user', content: 'x' }] }))).toMatchObject({
      field: 'model',
      message: expect.stringMatching(/missing/),
    });
  });

  it('expectations run in linear time: RE2 patterns only, no JSON Schema patterns', () => {
    expect(errorOf(chat({ expect: { regex: '(a)\\1' } }))).toMatchObject({
      field: 'expect.regex',
      message: expect.stringMatching(/RE2/),
    });
    expect(errorOf(chat({ expect: { regex: '(?=a)b' } })).field).toBe('expect.regex');
    expect(errorOf(chat({ expect: { json: { type: 'string', pattern: '(a+)+$' } } })).message).toMatch(
      /"pattern".*not supported/,
    );
    expect(parseLine(chat({ expect: { regex: '(a+)+$' } }), 1, opts)).toMatchObject({ ok: true });
    expect(parseLine(chat({ expect: { regex: '/^hello/i' } }), 1, opts)).toMatchObject({ ok: true });
  });

  it('a judge prompt template names each placeholder once: its filled prompt grows with the reply once, not 1,500 times', () => {
    const judged = (prompt: string) => chat({ expect: { judge: { answer: 'Ada', prompt } } });
    const e = errorOf(judged('{{reply}} '.repeat(1_500)));
    expect(e).toMatchObject({ line: 7, field: 'expect.judge.prompt' });
    expect(e.message).toMatch(/\{\{reply\}\} once/);
    expect(errorOf(judged('Was it {{answer}}? {{answer}}! {{reply}}')).field).toBe('expect.judge.prompt');
    expect(errorOf(judged('no placeholder for the reply')).field).toBe('expect.judge.prompt');
    expect(parseLine(judged('Q: {{question}} A: {{answer}} R: {{reply}}'), 1, opts)).toMatchObject({ ok: true });
  });
});
