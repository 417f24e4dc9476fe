import { claimsFor } from '../src/platform/auth/principal.js';

/**
 * The request.jwt.claims the API sets for the holder of `accessToken` acting in `orgId` (claimsFor, as
 * DatabaseService.tenant does), so a floor's begin_request does the same work as the API's — the
 * session check included.
 */
export function tenantClaims(accessToken: string, orgId: string): string {
  const t = JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url').toString());
  return JSON.stringify(claimsFor({ kind: 'user', userId: t.sub, email: t.email, personalOrgId: t.personal_org_id, sessionId: t.session_id }, orgId));
}
