import { createHmac } from 'node:crypto';

/**
 * Standard Webhooks (what OpenAI's webhooks use and the openai SDK's `client.webhooks.unwrap()` verifies): the
 * signature is base64 HMAC-SHA256 of "id.timestamp.body", keyed with the base64-decoded secret after "whsec_" (a
 * secret without that prefix is used as its UTF-8 bytes).
 */
export function signEvent(secret: string, id: string, timestampS: number, body: string): Record<string, string> {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
  const signature = createHmac('sha256', key).update(`${id}.${timestampS}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': String(timestampS), 'webhook-signature': `v1,${signature}` };
}
