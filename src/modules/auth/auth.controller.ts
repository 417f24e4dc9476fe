import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Req, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Public } from '../../platform/auth/public.decorator.js';
import type { Principal } from '../../platform/auth/principal.js';
import { CurrentPrincipal, Tx, UserRoute } from '../../platform/http/tenant.js';
import { ApiErrors, ErrorResponse } from '../../platform/http/openapi.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { IdParam } from '../../platform/http/id-param.js';
import { AuthService, REGISTRATION_ACCEPTED, type ClientInfo } from './auth.service.js';
import {
  AppSessionDto, AppTokenDto, AppTokenRedeemDto, AppTokenRequestDto, EmailVerifiedDto, ExchangeDto, IdentityDto, LinkIdentityDto, LoginDto, RefreshDto,
  RegisterDto, RegistrationAcceptedDto, SessionDto, TokensDto, UnlinkIdentityDto, VerifyEmailDto,
} from './auth.dto.js';
import { ACCESS_COOKIE } from './jwt.strategy.js';
import { EXCHANGE_PROVIDERS } from './external-token.js';
import { AuthErrors } from './auth.errors.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import '../../platform/errors/platform.errors.js'; // registers PlatformErrors
import {
  AccountMailService, EMAIL_CHANGE_REQUESTED, EMAIL_CHANGE_REQUESTS_PER_HOUR, EMAIL_VERIFICATION_MAILS_PER_HOUR, PASSWORD_RESET_MAILS_PER_HOUR, RESET_REQUESTED,
} from './account-mail.service.js';
import { CheckEmailDto, EmailChangeConfirmDto, EmailChangedDto, EmailChangeRequestDto, PasswordResetDto, PasswordResetRequestDto } from './auth.dto.js';

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

const LINK_REQUIRED = {
  status: 409,
  type: ErrorResponse,
  description: 'auth.link_required: an account with this e-mail exists and the token\'s provider did not verify the e-mail; '
    + 'sign in to that account and link the identity with POST /v1/auth/identities',
};
const CSRF = {
  status: 403,
  type: ErrorResponse,
  description: 'auth.csrf_rejected (AUTH_COOKIES=true only): a cookie-mode write must be JSON and come from an origin in CORS_ORIGINS',
};

@ApiTags('auth')
@Controller('v1/auth')
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly accountMail: AccountMailService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Public()
  @Post('password-reset')
  @HttpCode(202)
  @ApiOperation({
    operationId: 'requestPasswordReset', summary: 'Mail a link to reset the password (valid 30 minutes, single use)',
    description: `Answers the same 202 whether or not the address has an account; at most ${PASSWORD_RESET_MAILS_PER_HOUR} reset e-mails per account per hour.`,
  })
  @ApiAcceptedResponse({ type: CheckEmailDto, example: RESET_REQUESTED })
  @ApiErrors(400)
  @ApiResponse(CSRF)
  requestPasswordReset(@Body() dto: PasswordResetRequestDto, @Req() req: FastifyRequest): Promise<CheckEmailDto> {
    return this.accountMail.requestPasswordReset(dto.email, clientInfo(req));
  }

  @Public()
  @Post('password-reset/confirm')
  @HttpCode(204)
  @ApiOperation({
    operationId: 'resetPassword', summary: 'Set a new password with the token of a reset link; every session of the account ends',
    description: 'The link proves the account\'s e-mail. If nobody had proved it before, the account is claimed as on a verified token exchange: '
      + 'its other identities, pending e-mail change and API keys are removed and its pending invitations revoked; in the organizations only it is in '
      + '(its personal one, its solo ones) its enabled webhook endpoints are disabled, its AI provider key removed and the agent '
      + 'triggers it set up stopped; its own integrations are disabled and its provider page made private. Its memberships stay: the address is '
      + 'mailed a security notice (account_claimed) listing its organizations with its role, saying to leave any it does not recognise, and what was cleared.',
  })
  @ApiNoContentResponse()
  @ApiErrorCodes('auth.reset_invalid')
  @ApiResponse(CSRF)
  async resetPassword(@Body() dto: PasswordResetDto, @Req() req: FastifyRequest): Promise<void> {
    await this.accountMail.resetPassword(dto.token, dto.password, clientInfo(req));
  }

  @Public()
  @Post('email-change/confirm')
  @HttpCode(200)
  @ApiOperation({
    operationId: 'confirmEmailChange', summary: 'Confirm a new e-mail address with the token of the link mailed to it; the old address is told',
    description: 'A link whose address is already the account\'s (asked before addresses were compared in Unicode NFC) is used up '
      + 'and changes no address: 200 with the current address, no notice; like any change\'s link, it proves that address (the account\'s e-mail is verified).',
  })
  @ApiOkResponse({ type: EmailChangedDto })
  @ApiErrorCodes('auth.email_change_invalid', 'auth.email_taken')
  @ApiResponse(CSRF)
  confirmEmailChange(@Body() dto: EmailChangeConfirmDto, @Req() req: FastifyRequest): Promise<EmailChangedDto> {
    return this.accountMail.confirmEmailChange(dto.token, clientInfo(req));
  }

  @Public()
  @Post('register')
  @HttpCode(202)
  @ApiErrorCodes('auth.rate_limited')
  @ApiOperation({
    operationId: 'register', summary: 'Create an account with e-mail and password (and a personal organization); the e-mail starts unverified',
    description: 'Answers the same 202 whether or not the e-mail already has an account. A verification link goes to the '
      + 'address (until the notifications module sends mail, development logs it); then sign in with POST /v1/auth/login. '
      + 'Limited per client address (REGISTER_MAX_PER_ADDRESS per REGISTER_WINDOW_SECONDS; 429 auth.rate_limited).',
  })
  @ApiAcceptedResponse({ type: RegistrationAcceptedDto, example: REGISTRATION_ACCEPTED })
  @ApiErrors(400, 429)
  @ApiResponse(CSRF)
  register(@Body() dto: RegisterDto, @Req() req: FastifyRequest): Promise<RegistrationAcceptedDto> {
    return this.auth.register(dto, clientInfo(req));
  }

  @Public()
  @Post('login')
  @HttpCode(200)
  @ApiErrorCodes('auth.locked')
  @ApiOperation({
    operationId: 'logIn', summary: 'Log in with e-mail and password',
    description: 'Each attempt is counted before the password is checked: LOGIN_MAX_FAILURES per account and address per '
      + 'LOGIN_LOCKOUT_SECONDS (5 / 15 min), LOGIN_ACCOUNT_MAX_FAILURES per account per LOGIN_ACCOUNT_WINDOW_SECONDS '
      + '(30 / hour), 4 x LOGIN_MAX_FAILURES per address (20 / 15 min). A success resets the first and gives its attempt '
      + 'back to the others. Over a limit: 429 auth.locked with details.retryAfterSeconds.',
  })
  @ApiOkResponse({ type: TokensDto, example: TOKENS_EXAMPLE })
  @ApiErrors(400, 401, 429)
  @ApiResponse(CSRF)
  async login(@Body() dto: LoginDto, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<TokensDto> {
    const tokens = await this.auth.login(dto.email, dto.password, clientInfo(req));
    setAuthCookies(this.config, res, tokens);
    return tokens;
  }

  @Public()
  @Post('refresh')
  @HttpCode(200)
  @ApiErrorCodes('auth.refresh_token_missing')
  @ApiOperation({
    operationId: 'refreshTokens', summary: 'Rotate a refresh token',
    description: 'A token used again within REFRESH_GRACE_SECONDS (10 s; two tabs refreshing at once) gets the same new refresh '
      + 'token again; used again later, it revokes the whole session and ends the account\'s pending e-mail change (as a password reset '
      + 'does: someone else held the session), audited as auth.refresh_token_reused.',
  })
  @ApiOkResponse({ type: TokensDto })
  @ApiErrors(400, 401)
  @ApiResponse(CSRF)
  async refresh(@Body() dto: RefreshDto, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<TokensDto> {
    const token = dto.refreshToken ?? req.cookies?.[REFRESH_COOKIE];
    if (!token) throw AuthErrors.error('auth.refresh_token_missing', 'refreshToken is required');
    const tokens = await this.auth.refresh(token, clientInfo(req));
    setAuthCookies(this.config, res, tokens);
    return tokens;
  }

  @Public()
  @Post('exchange')
  @HttpCode(200)
  @ApiErrorCodes('auth.link_required')
  @ApiOperation({
    operationId: 'exchangeToken', summary: 'Exchange a Hub / NextAuth session JWT or a Supabase access token for our tokens',
    description: 'The user is found by the identity (provider, subject). A new identity is joined to an existing account of '
      + 'the same e-mail only when its provider verified the e-mail (an email_verified: true claim; for Supabase otherwise '
      + 'the project\'s GET /auth/v1/user: email_confirmed_at). If that account\'s own e-mail was never verified, the verified identity claims it: its password, '
      + 'sessions, other identities, pending e-mail change and API keys are removed and its pending invitations revoked; in the organizations only it '
      + 'is in (its personal one, its solo ones) its enabled webhook endpoints are disabled, its AI provider key removed and the '
      + 'agent triggers it set up stopped; its own integrations are disabled and its provider page made private. Its memberships stay: the address '
      + 'is mailed a security notice (account_claimed) listing its organizations with its role, saying to leave any it does not recognise, and what '
      + 'was cleared. An identity joined to an account whose e-mail was verified is mailed to its address (sign_in_method_added). '
      + 'An account the Hub made before identities existed (nothing claimed since, no Supabase sign-in linked to it) is joined by the first '
      + 'Hub / NextAuth sign-in of its e-mail, with or without email_verified, and without a claim: nothing is removed, closed or revoked; the '
      + 'address is mailed (sign_in_method_added); joined without email_verified, its identity stays unverified, so a later verified sign-in '
      + 'still claims the account. '
      + 'Otherwise 409 auth.link_required. Unknown identity and e-mail: a new user.',
  })
  @ApiOkResponse({ type: TokensDto })
  @ApiErrors(400, 401)
  @ApiResponse(LINK_REQUIRED)
  @ApiResponse(CSRF)
  async exchange(@Body() dto: ExchangeDto, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<TokensDto> {
    const tokens = await this.auth.exchange(dto.token, dto.provider, clientInfo(req));
    setAuthCookies(this.config, res, tokens);
    return tokens;
  }

  @Public()
  @Post('app-token/redeem')
  @HttpCode(200)
  @ApiOperation({
    operationId: 'redeemAppToken', summary: 'The app\'s side of the Hub -> app handshake: check an app token made for this app and use it up',
    description: 'Each app token is accepted once, here only, and only for the app named in it. The answer names the user; it is no API token. '
      + 'The session the token was made in must still be live: after a sign-out, a revocation of that session or a password reset, '
      + '401 "the session that made this app token has ended", and nothing is recorded.',
  })
  @ApiOkResponse({ type: AppSessionDto })
  @ApiErrors(400, 401)
  redeemAppToken(@Body() dto: AppTokenRedeemDto, @Req() req: FastifyRequest): Promise<AppSessionDto> {
    return this.auth.redeemAppToken(dto.token, dto.appCode, clientInfo(req));
  }
}

@ApiTags('auth')
@ApiBearerAuth()
@Controller('v1/auth')
export class IdentitiesController {
  constructor(
    private readonly auth: AuthService,
    private readonly accountMail: AccountMailService,
  ) {}

  @Get('identities')
  @ApiErrorCodes('auth.user_required')
  @ApiOperation({
    operationId: 'listIdentities', summary: 'The signed-in user\'s identities (password, Hub, Supabase) and whether each e-mail is verified',
    description: 'The password is listed once the account has one (an account made by a Hub or Supabase sign-in sets one with a reset link).',
  })
  @ApiOkResponse({ type: [IdentityDto] })
  @ApiErrors(401, 403)
  identities(@CurrentPrincipal() principal: Principal): Promise<IdentityDto[]> {
    return this.auth.listIdentities(principal);
  }

  @Post('identities')
  @HttpCode(201)
  @ApiErrorCodes('auth.user_required', 'auth.identity_taken', 'auth.recent_sign_in_required', 'auth.password_incorrect', 'auth.locked')
  @ApiOperation({
    operationId: 'linkIdentity', summary: 'Link a Hub / NextAuth or Supabase identity to the signed-in user (the way out of auth.link_required)',
    description: 'The identity becomes a way to sign in to the account (a password reset keeps it), so this needs re-authentication: the '
      + '`password`, or an access token of a sign-in (password or token exchange) within the last 5 minutes; a refreshed token does not count '
      + '(403 auth.recent_sign_in_required; a wrong password 403 auth.password_incorrect, counted like a login attempt: 429 auth.locked past its limits). '
      + 'The access token\'s session must still be live when the link is written. A new link is audited (auth.identity_linked) and mailed to the '
      + 'account\'s address; remove one with DELETE /v1/auth/identities/{provider}. An identity whose e-mail is another account\'s address '
      + '(compared trimmed, case-insensitively and in Unicode NFC, as the app normalizes addresses) is linked with that e-mail unverified, '
      + 'whatever its provider says (emailVerified: false in the answer): it proves nothing of that address to this account, and stays so while the address is the other account\'s. '
      + 'Re-linking an identity that is already this account\'s keeps the e-mail and verification it had, whatever the token asserts '
      + '(the answer shows them; audited as auth.identity_linked with added: false).',
  })
  @ApiCreatedResponse({ type: [IdentityDto] })
  @ApiErrors(400, 401, 403, 429)
  @ApiResponse({ status: 409, type: ErrorResponse, description: 'auth.identity_taken: the identity already signs in to another account' })
  linkIdentity(@Body() dto: LinkIdentityDto, @CurrentPrincipal() principal: Principal, @Req() req: FastifyRequest): Promise<IdentityDto[]> {
    return this.auth.linkIdentity(principal, dto.token, dto.provider, dto.password, clientInfo(req));
  }

  @Delete('identities/:provider')
  @HttpCode(200)
  @ApiErrorCodes(
    'auth.user_required', 'auth.identity_not_found', 'auth.last_sign_in_method', 'auth.email_proof_required', 'auth.recent_sign_in_required',
    'auth.password_incorrect', 'auth.locked',
  )
  @ApiOperation({
    operationId: 'removeIdentity', summary: 'Remove the signed-in user\'s Hub / NextAuth or Supabase identity: it no longer signs in to the account',
    description: 'Re-authenticated as a link is (the `password`, or an access token of a sign-in within the last 5 minutes). Refused with 409 '
      + 'auth.last_sign_in_method when nothing else could sign in (no password, no other identity), and with 409 auth.email_proof_required when it '
      + 'is the only identity that verified the account\'s e-mail. The password is not removed here (change it with a reset). Audited '
      + '(auth.identity_unlinked) and mailed to the account\'s address. Answers the identities that remain.',
  })
  @ApiParam({ name: 'provider', enum: EXCHANGE_PROVIDERS, description: 'The issuer whose identity goes (any other value: 404 auth.identity_not_found)' })
  @ApiOkResponse({ type: [IdentityDto] })
  @ApiErrors(400, 401, 403, 404, 409, 429)
  unlinkIdentity(
    @Param('provider') provider: string, @Body() dto: UnlinkIdentityDto, @CurrentPrincipal() principal: Principal, @Req() req: FastifyRequest,
  ): Promise<IdentityDto[]> {
    return this.auth.unlinkIdentity(principal, provider, dto.password, clientInfo(req));
  }

  @Post('verify-email')
  @HttpCode(200)
  @ApiErrorCodes('auth.user_required', 'auth.verification_invalid')
  @ApiOperation({
    operationId: 'verifyEmail', summary: 'Verify the signed-in user\'s e-mail with the token from its verification link (single use, EMAIL_VERIFICATION_TTL_HOURS)',
    description: 'Only the account\'s own session can use its link: whoever receives the mail proves the mailbox, the sign-in proves '
      + 'the password, so a link to someone who never registered (a pre-registered account) verifies nothing. It verifies the account\'s '
      + 'current address however the account signs in (an account made by a Hub or Supabase sign-in too, whose identity there may assert '
      + 'another address or none verified).',
  })
  @ApiOkResponse({ type: EmailVerifiedDto })
  @ApiResponse({ status: 400, type: ErrorResponse,
    description: 'validation_failed, or auth.verification_invalid: the token is unknown, used, expired, another account\'s or for an address the account no longer has' })
  @ApiErrors(401, 403)
  verifyEmail(@Body() dto: VerifyEmailDto, @CurrentPrincipal() principal: Principal, @Req() req: FastifyRequest): Promise<EmailVerifiedDto> {
    return this.auth.verifyEmail(principal, dto.token, clientInfo(req));
  }

  @Post('email-change')
  @HttpCode(202)
  @ApiOperation({
    operationId: 'requestEmailChange', summary: 'Ask to change the e-mail address (current password needed); a link to confirm goes to the new address',
    description: 'The address changes only when the link mailed to it is used (POST /v1/auth/email-change/confirm). An address another '
      + 'account uses gets no mail, and the answer is the same. The password check counts like a login (429 auth.locked past the limits). '
      + `At most ${EMAIL_CHANGE_REQUESTS_PER_HOUR} requests per account per hour, whatever address they name (429 auth.mail_limited with details.retryAfterSeconds).`,
  })
  @ApiAcceptedResponse({ type: CheckEmailDto, example: EMAIL_CHANGE_REQUESTED })
  @ApiErrorCodes('auth.user_required', 'auth.password_incorrect', 'auth.email_unchanged', 'auth.locked', 'auth.mail_limited')
  @ApiErrors(401, 403)
  requestEmailChange(@Body() dto: EmailChangeRequestDto, @CurrentPrincipal() principal: Principal, @Req() req: FastifyRequest): Promise<CheckEmailDto> {
    return this.accountMail.requestEmailChange(principal, dto.newEmail, dto.password, clientInfo(req));
  }

  @Post('email-verification')
  @HttpCode(204)
  @ApiErrorCodes('auth.user_required', 'auth.mail_limited')
  @ApiOperation({
    operationId: 'sendEmailVerification', summary: 'Send a new verification link for the signed-in user\'s e-mail (nothing when it is verified already)',
    description: `At most ${EMAIL_VERIFICATION_MAILS_PER_HOUR} verification e-mails per account per hour, the registration's included `
      + '(429 auth.mail_limited with details.retryAfterSeconds).',
  })
  @ApiNoContentResponse()
  @ApiErrors(401, 403)
  async resendVerification(@CurrentPrincipal() principal: Principal): Promise<void> {
    await this.auth.resendVerification(principal);
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
  @ApiErrorCodes('auth.user_required')
  @ApiOperation({
    operationId: 'createAppToken', summary: 'A 120 s single-use token for opening an app (Hub -> app handshake)',
    description: 'Its audience is app:<appCode>: the API refuses it (it cannot mint another or call any route); the app redeems it once at POST /v1/auth/app-token/redeem. '
      + 'It names the session of the calling access token and is void once the session it was made in ends (sign-out, revocation, password reset).',
  })
  @ApiCreatedResponse({ type: AppTokenDto })
  @ApiErrors(400)
  appToken(@Tx() tx: TenantTx, @Body() dto: AppTokenRequestDto): Promise<AppTokenDto> {
    return this.auth.appToken(tx, dto.appCode);
  }

  @Get('sessions')
  @ApiErrorCodes('auth.user_required')
  @ApiOperation({ operationId: 'listSessions', summary: 'The signed-in user\'s active sessions' })
  @ApiOkResponse({ type: [SessionDto] })
  sessions(@Tx() tx: TenantTx): Promise<SessionDto[]> {
    return this.auth.listSessions(tx);
  }

  @Delete('sessions/:sessionId')
  @HttpCode(204)
  @ApiErrorCodes('auth.user_required', 'session.not_found')
  @ApiOperation({ operationId: 'revokeSession', summary: 'Revoke one of the signed-in user\'s sessions' })
  @ApiNoContentResponse()
  @ApiErrors(404)
  revoke(@Tx() tx: TenantTx, @IdParam('sessionId', 'session') sessionId: string): Promise<void> {
    return this.auth.revokeSession(tx, sessionId);
  }
}
