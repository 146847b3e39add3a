import { describe, expect, it } from 'vitest';
import { useApi, useWorld } from '../helpers/in-process-worker.js';
import { waitFor } from '../helpers/test-env.js';

const TOKEN = 'tok-guess-right-one';
const basic = (token: string) => `Basic ${Buffer.from(`x:${token}`).toString('base64')}`;

describe('guessing tokens', () => {
  const w = useWorld();
  const a = useApi(w, { CHATQ_API_TOKENS: TOKEN, CHATQ_TRUST_PROXY: '127.0.0.1' });
  const from = (address: string, authorization: string, path = '/') =>
    fetch(`${a.api.url}${path}`, {
      headers: { authorization, 'x-forwarded-for': address, accept: 'application/json' },
    });

  /** 300 wrong guesses from one address, 50 at a time: how they were answered. */
  const burst = async (guess: (i: number) => Promise<Response>) => {
    const statuses: number[] = [];
    for (let wave = 0; wave < 6; wave++)
      statuses.push(
        ...(await Promise.all(Array.from({ length: 50 }, (_, i) => guess(wave * 50 + i)))).map((r) => r.status),
      );
    return statuses;
  };

  for (const [kind, auth, path] of [
    ['Basic', basic, '/'],
    ['Bearer', (t: string) => `Bearer ${t}`, '/v1/batches'],
  ] as const) {
    it(`${kind} failures from one address are slowed to a trickle; the right token is never locked out`, async () => {
      // The right token, from another address, goes through all along the burst.
      const beside = from('10.9.9.2', auth(TOKEN), path);
      const statuses = await burst((i) => from('10.9.9.1', auth(`wrong-${i}-${TOKEN}`), path));
      expect((await beside).status).toBe(200);
      expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
      // Most guesses were refused unchecked (429): they learned nothing.
      expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(200);
      // Once the held answers are out, the right token works from the same address.
      await waitFor(
        'the right token from the guessing address',
        async () => (await from('10.9.9.1', auth(TOKEN), path)).status === 200,
      );
    });
  }

  it('the login form: the right token signs in from an address that guessed before', async () => {
    const tryToken = (token: string) =>
      fetch(`${a.api.url}/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': '10.9.9.3' },
        body: `token=${token}`,
        redirect: 'manual',
      });
    const guesses = [];
    for (let i = 0; i < 30; i++) guesses.push((await tryToken(`guess-${i}`)).status);
    expect(guesses.every((s) => s === 401 || s === 429)).toBe(true);
    await waitFor('the right token signing in', async () => (await tryToken(TOKEN)).status === 303);
  });
});
