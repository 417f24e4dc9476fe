import { Inject, Injectable } from '@nestjs/common';
import { createClient, type SupabaseClient, type SupabaseClientOptions } from '@supabase/supabase-js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { TokensDto } from './auth.dto.js';

/**
 * supabase-js builds a realtime client eagerly and throws on Node < 22, which has no global
 * WebSocket. The bridge is for REST / RPC / storage calls; realtime fails only if someone uses it.
 */
class RealtimeUnavailable {
  constructor() {
    throw new Error('AuthBridge clients do not support realtime on this Node.js (no global WebSocket)');
  }
}
const REALTIME = typeof globalThis.WebSocket === 'undefined'
  ? { realtime: { transport: RealtimeUnavailable as unknown as NonNullable<NonNullable<SupabaseClientOptions<'public'>['realtime']>['transport']> } }
  : {};

/**
 * Talks to a Supabase project as the signed-in user. Our access token carries Supabase's claims
 * and is signed with the project's JWT secret, so PostgREST (and RLS there) accepts it as is.
 */
@Injectable()
export class AuthBridge {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  createAuthenticatedClient(session: TokensDto | string): SupabaseClient {
    const token = typeof session === 'string' ? session : session.accessToken;
    // supabase-js requires a key; the apikey header only matters to a real project's gateway
    const key = this.config.auth.supabaseAnonKey ?? 'anon-key-not-configured';
    return createClient(this.config.auth.supabaseUrl, key, {
      global: { headers: { Authorization: `Bearer ${token}` } },
      // server side: one client per request, nothing stored, no refresh timer keeping the process alive
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      ...REALTIME,
    });
  }
}
