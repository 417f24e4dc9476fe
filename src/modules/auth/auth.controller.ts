import { Body, Controller, Delete, Get, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Inject } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Public } from '../../platform/auth/public.decorator.js';
import { Tx, UserRoute } from '../../platform/http/tenant.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import { IdParam } from '../../platform/http/id-param.js';
import { AuthService, type ClientInfo } from './auth.service.js';
import { AppTokenDto, AppTokenRequestDto, ExchangeDto, LoginDto, RefreshDto, RegisterDto, SessionDto, TokensDto } from './auth.dto.js';
import { ACCESS_COOKIE } from './jwt.strategy.js';

export const REFRESH_COOKIE = 'omnizen_refresh';

const TOKENS_EXAMPLE = {
  accessToken: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI5ZDNjMWYwZSJ9.c2lnbmF0dXJl',
  tokenType: 'Bearer',
  expiresIn: 900,
  refreshToken: 'rt_3q2+7w9ZfA1xK8mP0sL4vB6nH5jT2cQe',
  user: { id: '9d3c1f0e-4b6a-4f2d-8e7c-6a5b4c3d2e1f', email: 'ada@example.com', name: 'Ada Lovelace', image: null, accountType: 'personal' },
  personalOrgId: '1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6',
};

export function clientInfo(req: FastifyRequest): ClientInfo {
  return { ip: req.ip, userAgent: req.headers['user-agent']?.slice(0, 400), requestId: req.id };
}

/** Sets httpOnly, sameSite=lax cookies when AUTH_COOKIES is on (secure outside development). */
export function setAuthCookies(config: AppConfig, res: FastifyReply, tokens: TokensDto): void {
  if (!config.auth.cookies) return;
  const base = { httpOnly: true, secure: config.auth.cookieSecure, sameSite: 'lax' as const };
  // maxAge in seconds
  res.setCookie(ACCESS_COOKIE, tokens.accessToken, { ...base, path: '/', maxAge: tokens.expiresIn });
  res.setCookie(REFRESH_COOKIE, tokens.refreshToken, { ...base, path: '/v1/auth', maxAge: config.auth.refreshTokenTtlDays * 86_400 });
}

@ApiTags('auth')
@Controller('v1/auth')
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Public()
  @Post('register')
  @ApiOperation({ operationId: 'register', summary: 'Create an account with email and password (also creates a personal organization)' })
  @ApiCreatedResponse({ type: TokensDto, example: TOKENS_EXAMPLE })
  @ApiErrors(400, 409)
  async register(@Body() dto: RegisterDto, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<TokensDto> {
    const tokens = await this.auth.register(dto, clientInfo(req));
    setAuthCookies(this.config, res, tokens);
    return tokens;
  }

  @Public()
  @Post('login')
  @HttpCode(200)
  @ApiOperation({ operationId: 'logIn', summary: 'Log in with email and password; failed attempts are limited per account and per IP' })
  @ApiOkResponse({ type: TokensDto, example: TOKENS_EXAMPLE })
  @ApiErrors(400, 401, 429)
  async login(@Body() dto: LoginDto, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<TokensDto> {
    const tokens = await this.auth.login(dto.email, dto.password, clientInfo(req));
    setAuthCookies(this.config, res, tokens);
    return tokens;
  }

  @Public()
  @Post('refresh')
  @HttpCode(200)
  @ApiOperation({ operationId: 'refreshTokens', summary: 'Rotate a refresh token; reusing an old one revokes the whole session' })
  @ApiOkResponse({ type: TokensDto })
  @ApiErrors(400, 401)
  async refresh(@Body() dto: RefreshDto, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<TokensDto> {
    const token = dto.refreshToken ?? req.cookies?.[REFRESH_COOKIE];
    if (!token) throw AppError.badRequest('auth.refresh_token_missing', 'refreshToken is required');
    const tokens = await this.auth.refresh(token, clientInfo(req));
    setAuthCookies(this.config, res, tokens);
    return tokens;
  }

  @Public()
  @Post('exchange')
  @HttpCode(200)
  @ApiOperation({ operationId: 'exchangeToken', summary: 'Exchange a Hub / NextAuth session JWT or a Supabase access token for our tokens (creates or updates the user)' })
  @ApiOkResponse({ type: TokensDto })
  @ApiErrors(400, 401, 409)
  async exchange(@Body() dto: ExchangeDto, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<TokensDto> {
    const tokens = await this.auth.exchange(dto.token, dto.provider, clientInfo(req));
    setAuthCookies(this.config, res, tokens);
    return tokens;
  }
}

@ApiTags('auth')
@UserRoute()
@Controller('v1/auth')
export class SessionsController {
  constructor(private readonly auth: AuthService) {}

  @Post('logout')
  @HttpCode(204)
  @ApiOperation({ operationId: 'logOut', summary: 'Log out: revoke the session of this access token' })
  @ApiNoContentResponse()
  async logout(@Tx() tx: TenantTx, @Res({ passthrough: true }) res: FastifyReply): Promise<void> {
    await this.auth.logout(tx);
    res.clearCookie(ACCESS_COOKIE, { path: '/' });
    res.clearCookie(REFRESH_COOKIE, { path: '/v1/auth' });
  }

  @Post('app-token')
  @HttpCode(201)
  @ApiOperation({ operationId: 'createAppToken', summary: 'A short-lived token for opening an app (Hub → app handshake); its appCode claim names the app' })
  @ApiCreatedResponse({ type: AppTokenDto })
  @ApiErrors(400)
  appToken(@Tx() tx: TenantTx, @Body() dto: AppTokenRequestDto): Promise<AppTokenDto> {
    return this.auth.appToken(tx, dto.appCode);
  }

  @Get('sessions')
  @ApiOperation({ operationId: 'listSessions', summary: 'The signed-in user\'s active sessions' })
  @ApiOkResponse({ type: [SessionDto] })
  sessions(@Tx() tx: TenantTx): Promise<SessionDto[]> {
    return this.auth.listSessions(tx);
  }

  @Delete('sessions/:sessionId')
  @HttpCode(204)
  @ApiOperation({ operationId: 'revokeSession', summary: 'Revoke one of the signed-in user\'s sessions' })
  @ApiNoContentResponse()
  @ApiErrors(404)
  revoke(@Tx() tx: TenantTx, @IdParam('sessionId', 'session') sessionId: string): Promise<void> {
    return this.auth.revokeSession(tx, sessionId);
  }
}
