// Who is calling. Resolved by the passport strategy from the bearer token (or cookie);
// the database sees the same facts as JWT claims in request.jwt.claims.

export type Principal =
  | {
      kind: 'user';
      userId: string;
      email: string;
      /** the user's personal organization, used as the context of user-level (non-org) routes */
      personalOrgId: string;
      sessionId?: string;
      /** when the access token expires (its `exp`, seconds since the epoch): a stream opened with it ends then */
      expiresAt?: number;
    }
  | { kind: 'service'; name: string }
  /**
   * An API key (`Authorization: Bearer ozk_live_<id>_<secret>`). Unverified when the guard builds it: the
   * database verifies the key (public.begin_key_request) in the request's tenant transaction and decides its
   * organization and scopes; only org routes (/v1/orgs/:orgId/...) accept it.
   */
  | { kind: 'apiKey'; keyId: string; secretHash: string }
  | { kind: 'anonymous' };

export const ORG_ROLES = ['owner', 'admin', 'accountant', 'member', 'viewer'] as const;
export type OrgRole = (typeof ORG_ROLES)[number];
/** What auth_role() returns: a membership role, or 'service' for a service acting for the organization. */
export type RequestRole = OrgRole | 'service' | 'analyst';

export const ADMIN_ROLES: RequestRole[] = ['owner', 'admin', 'service'];
export const BOOKKEEPER_ROLES: RequestRole[] = ['owner', 'admin', 'accountant', 'service'];

/** The claims the database reads through auth.jwt(), auth.uid() and auth_org_id(). */
export function claimsFor(principal: Principal, orgId: string | null, workspaceId?: string): Record<string, unknown> {
  const base: Record<string, unknown> = orgId ? { org_id: orgId } : {};
  if (workspaceId) base.workspace_id = workspaceId;
  switch (principal.kind) {
    case 'user':
      return { ...base, sub: principal.userId, email: principal.email, role: 'authenticated', session_id: principal.sessionId };
    case 'service':
      return { ...base, role: 'service_role', service: principal.name };
    case 'apiKey':
      // what begin_key_request sets after verifying the key (the API never sets these claims itself)
      return { ...base, role: 'authenticated', api_key_id: principal.keyId };
    case 'anonymous':
      return { ...base, role: 'anon' };
  }
}

export function actorOf(principal: Principal): { actorId: string | null; principalType: 'user' | 'service' | 'anonymous' } {
  switch (principal.kind) {
    case 'user':
      return { actorId: principal.userId, principalType: 'user' };
    case 'service':
      return { actorId: `service:${principal.name}`, principalType: 'service' };
    case 'apiKey':
      // the audit policy accepts this actor only for the key the database verified
      return { actorId: `api_key:${principal.keyId}`, principalType: 'service' };
    case 'anonymous':
      return { actorId: null, principalType: 'anonymous' };
  }
}
