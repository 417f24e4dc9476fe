import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

/** A new signing secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64. */
export function generateSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** The webhook-id header of a message: stable across its attempts and replays, so receivers can deduplicate. */
export const webhookId = (messageId: string): string => `msg_${messageId.replace(/-/g, '')}`;

/**
 * The Standard Webhooks headers of one attempt: the signature of `${id}.${timestamp}.${body}` with every
 * secret that signs now (during a rotation's overlap, the new and the previous one, space separated).
 */
export function signedHeaders(messageId: string, body: string, secrets: string[], at: Date): Record<string, string> {
  const id = webhookId(messageId);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': secrets.map((s) => new Webhook(s).sign(id, at, body)).join(' '),
  };
}
