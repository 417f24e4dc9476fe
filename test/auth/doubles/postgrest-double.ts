import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * TEST DOUBLE of a Supabase project's HTTP API: PostgREST (/rest/v1/...) answers every request with
 * an empty JSON array; Auth's GET /auth/v1/user answers the user named by the bearer token's `sub`
 * from `authUsers` (as GoTrue does: 403 when the token's user does not exist), and GET /auth/v1/settings
 * the project's public settings as GoTrue's Settings handler shapes them (`mailer_autoconfirm` from
 * `settings.mailerAutoconfirm`; `settings.status` other than 200 answers an error instead). It records method,
 * URL and headers of every request, so a test can see exactly what was sent. It verifies no signature.
 */
export interface PostgrestDouble {
  url: string;
  requests: { method: string; url: string; headers: IncomingHttpHeaders }[];
  /** auth.users as the project knows them, by id: `email_confirmed_at` null while unconfirmed */
  authUsers: Map<string, { email: string; email_confirmed_at: string | null }>;
  /** GoTrue's `[auth.email] enable_confirmations = false` is `mailerAutoconfirm: true`; the default confirms by mail */
  settings: { mailerAutoconfirm: boolean; status: number };
  close(): Promise<void>;
}

function subOf(authorization: string | undefined): string | undefined {
  const token = authorization?.replace(/^Bearer /, '') ?? '';
  try {
    return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()).sub;
  } catch {
    return undefined;
  }
}

export async function startPostgrestDouble(): Promise<PostgrestDouble> {
  const requests: PostgrestDouble['requests'] = [];
  const authUsers: PostgrestDouble['authUsers'] = new Map();
  const settings: PostgrestDouble['settings'] = { mailerAutoconfirm: false, status: 200 };
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    const json = (status: number, body: unknown) =>
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
    if (req.method === 'GET' && req.url === '/auth/v1/user') {
      const id = subOf(req.headers.authorization);
      const user = id ? authUsers.get(id) : undefined;
      if (!user) return json(403, { code: 403, error_code: 'user_not_found', msg: 'User from sub claim in JWT does not exist' });
      return json(200, {
        id, aud: 'authenticated', role: 'authenticated', email: user.email, email_confirmed_at: user.email_confirmed_at,
        phone: '', app_metadata: { provider: 'email', providers: ['email'] }, user_metadata: {}, identities: [], is_anonymous: false,
      });
    }
    if (req.method === 'GET' && req.url === '/auth/v1/settings') {
      if (settings.status !== 200) return json(settings.status, { message: 'An invalid response was received from the upstream server' });
      return json(200, {
        external: { anonymous_users: false, email: true, phone: false, google: false, github: false },
        disable_signup: false, mailer_autoconfirm: settings.mailerAutoconfirm, phone_autoconfirm: false, sms_provider: '', saml_enabled: false,
      });
    }
    json(200, []);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    authUsers,
    settings,
    close: () => new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}
