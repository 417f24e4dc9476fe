import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsEmail, IsIn, IsOptional, IsString, Length, Matches, MaxLength } from 'class-validator';
import { emailInput } from '../../platform/http/email.js';
import { IsEmailAddress } from './email-address.validator.js';
import { EXCHANGE_PROVIDERS, type ExchangeProvider } from './external-token.js';

@ApiSchema({ description: 'A new account: email, password and an optional display name' })
export class RegisterDto {
  @ApiProperty({ description: 'E-mail address to register; trimmed, lower-cased and in Unicode NFC', example: 'ada@example.com' }) @Transform(emailInput) @IsEmailAddress() @MaxLength(320) email: string;
  @ApiProperty({ description: 'Password of 10 to 200 characters; stored only as a hash', minLength: 10, maxLength: 200, format: 'password', example: 'correct horse battery staple' }) @IsString() @Length(10, 200) password: string;
  @ApiPropertyOptional({ description: 'Display name; when absent the name stays null', example: 'Ada Lovelace' }) @IsOptional() @IsString() @Length(1, 200) name?: string;
}

@ApiSchema({ description: 'Email and password of an existing account' })
export class LoginDto {
  @ApiProperty({ description: 'E-mail address of the account; trimmed, lower-cased and in Unicode NFC', example: 'ada@example.com' }) @Transform(emailInput) @IsEmail() email: string;
  @ApiProperty({ description: 'The account password', format: 'password', example: 'correct horse battery staple' }) @IsString() @Length(1, 200) password: string;
}

@ApiSchema({ description: 'The refresh token to rotate (or none, when it comes from the httpOnly cookie)' })
export class RefreshDto {
  @ApiPropertyOptional({ description: 'The refresh token; may come from the httpOnly cookie instead' })
  @IsOptional() @IsString() @Length(20, 200) refreshToken?: string;
}

@ApiSchema({ description: "The signed-in user's profile" })
export class UserDto {
  @ApiProperty({ description: 'The user id (core."User".id)', format: 'uuid' }) id: string;
  @ApiProperty({ description: 'The user\'s e-mail address, lower-case' }) email: string;
  @ApiProperty({ description: 'Display name; null when none was given', type: String, nullable: true }) name: string | null;
  @ApiProperty({ description: 'URL of the profile picture; null when none is set', type: String, nullable: true }) image: string | null;
  @ApiProperty({ description: 'personal or business; null when the account type was never set', type: String, enum: ['personal', 'business'], nullable: true }) accountType: string | null;
}

@ApiSchema({ description: 'The tokens of a session: a short-lived bearer access token and a single-use refresh token' })
export class TokensDto {
  @ApiProperty({ description: 'Bearer access token (HS256, Supabase-compatible claims)' }) accessToken: string;
  @ApiProperty({ description: 'Always Bearer: send the access token as Authorization: Bearer <token>', example: 'Bearer' }) tokenType: 'Bearer';
  @ApiProperty({ description: 'Seconds until the access token expires' }) expiresIn: number;
  @ApiProperty({ description: 'Single-use refresh token; rotated on every refresh' }) refreshToken: string;
  @ApiProperty({ description: 'The signed-in user', type: UserDto }) user: UserDto;
  @ApiProperty({ format: 'uuid', description: 'The user\'s personal organization' }) personalOrgId: string;
}

@ApiSchema({ description: 'One active session (a refresh token family) of the signed-in user' })
export class SessionDto {
  @ApiProperty({ description: 'The session id', format: 'uuid' }) id: string;
  @ApiProperty({ description: 'User-Agent header of the sign-in request; null when none was sent', type: String, nullable: true }) userAgent: string | null;
  @ApiProperty({ description: 'Client IP address of the sign-in request; null when unknown', type: String, nullable: true }) ip: string | null;
  @ApiProperty({ description: 'When the session was created (sign-in time)' }) createdAt: Date;
  @ApiProperty({ description: 'When a refresh token of the session was last used' }) lastUsedAt: Date;
  @ApiProperty({ description: 'When the session expires; refreshing does not extend it' }) expiresAt: Date;
  @ApiProperty({ description: 'true for the session of the calling token' }) current: boolean;
}

@ApiSchema({ description: 'A token from another issuer (Hub / NextAuth, Supabase) to exchange for our tokens' })
export class ExchangeDto {
  @ApiProperty({ description: 'A Hub / NextAuth session JWT or a Supabase access token (HS256)' })
  @IsString() @Length(20, 8192) token: string;
  @ApiPropertyOptional({ enum: EXCHANGE_PROVIDERS, description: 'Which issuer signed the token; detected from the signature when absent' })
  @IsOptional() @IsIn(EXCHANGE_PROVIDERS) provider?: ExchangeProvider;
}

const REAUTH_PASSWORD = {
  description: 'The account password, for re-authentication. Without it, the access token must be of a sign-in (password or token exchange) '
    + 'within the last 5 minutes; a refreshed token does not count. Checked like a login attempt (429 auth.locked past its limits).',
  format: 'password', example: 'correct horse battery staple',
} as const;

@ApiSchema({ description: 'A Hub / NextAuth or Supabase token whose identity becomes a way to sign in to the signed-in user\'s account, and the re-authentication' })
export class LinkIdentityDto extends ExchangeDto {
  @ApiPropertyOptional(REAUTH_PASSWORD)
  @IsOptional() @IsString() @Length(1, 200) password?: string;
}

@ApiSchema({ description: 'Re-authentication for removing a sign-in method: the password, or nothing with the access token of a recent sign-in' })
export class UnlinkIdentityDto {
  @ApiPropertyOptional(REAUTH_PASSWORD)
  @IsOptional() @IsString() @Length(1, 200) password?: string;
}

export const APP_CODE = /^[a-z][a-z0-9_]{1,62}$/;

@ApiSchema({ description: 'Which app the short-lived token is for' })
export class AppTokenRequestDto {
  @ApiProperty({ description: 'Code of the app to open (lowercase letters, digits, underscores)', example: 'app_securevault', pattern: APP_CODE.source })
  @IsString() @Matches(APP_CODE, { message: 'appCode must be lowercase letters, digits and underscores, starting with a letter (2-63 characters)' })
  appCode: string;
}

@ApiSchema({ description: "A short-lived token for opening an app, and the query string to append to the app's login URL" })
export class AppTokenDto {
  @ApiProperty({ description: 'Short-lived, single-use token for the app (audience app:<appCode>); the API refuses it, the app redeems it at POST /v1/auth/app-token/redeem while the session that made it is live' }) accessToken: string;
  @ApiProperty({ description: 'Always Bearer', example: 'Bearer' }) tokenType: 'Bearer';
  @ApiProperty({ description: 'Seconds until the token expires', example: 120 }) expiresIn: number;
  @ApiProperty({ description: 'Code of the app the token is for', example: 'app_securevault' }) appCode: string;
  @ApiProperty({ description: 'Query string to append to the app\'s login URL (seed 000 handshake: /login?token=...)', example: 'token=eyJ...' })
  redirectQuery: string;
}

@ApiSchema({ description: 'The answer to every registration, whether or not the e-mail already has an account' })
export class RegistrationAcceptedDto {
  @ApiProperty({ enum: ['check_email'], description: 'The same for every registration, whether or not the e-mail already has an account' })
  status: 'check_email';
  @ApiProperty({ description: 'Human-readable next step for the user', example: 'If this e-mail can be registered, a verification link has been sent to it. Then sign in with your password.' })
  message: string;
}

@ApiSchema({ description: 'The token from an e-mail verification link' })
export class VerifyEmailDto {
  @ApiProperty({ description: 'The token from the verification link (?token=...)' })
  @IsString() @Length(20, 200) token: string;
}

@ApiSchema({ description: 'The e-mail that is now verified' })
export class EmailVerifiedDto {
  @ApiProperty({ description: 'The e-mail address that was verified', example: 'ada@example.com' }) email: string;
  @ApiProperty({ description: 'Always true', enum: [true], type: Boolean }) verified: true;
}

@ApiSchema({ description: 'One way the signed-in user signs in (password, Hub, Supabase), with the e-mail it asserted' })
export class IdentityDto {
  @ApiProperty({ description: 'The sign-in method: password, or the issuer of an exchanged token', enum: ['password', ...EXCHANGE_PROVIDERS] }) provider: string;
  @ApiProperty({ description: 'The e-mail this identity last asserted' }) email: string;
  @ApiProperty({ description: 'Whether the e-mail this identity asserted is verified (never while it is another account\'s address)' }) emailVerified: boolean;
  @ApiProperty({ description: 'When this identity was first linked to the user' }) createdAt: Date;
  @ApiProperty({ description: 'When the user last signed in with this identity' }) lastUsedAt: Date;
}

@ApiSchema({ description: 'An app token from the handshake URL and the app redeeming it' })
export class AppTokenRedeemDto {
  @ApiProperty({ description: 'The app token from the handshake URL (?token=...)' })
  @IsString() @Length(20, 8192) token: string;
  @ApiProperty({ example: 'app_securevault', pattern: APP_CODE.source, description: 'The app redeeming it: must be the app the token was made for' })
  @IsString() @Matches(APP_CODE, { message: 'appCode must be lowercase letters, digits and underscores, starting with a letter (2-63 characters)' })
  appCode: string;
}

@ApiSchema({ description: 'The user an app token was made for, for the app that redeemed it' })
export class AppSessionDto {
  @ApiProperty({ description: 'core."User".id of the user the Hub sent' }) userId: string;
  @ApiProperty({ description: 'E-mail address of the user' }) email: string;
  @ApiProperty({ format: 'uuid', description: 'The organization the app works in' }) orgId: string;
  @ApiProperty({ description: 'The user\'s personal organization', format: 'uuid' }) personalOrgId: string;
  @ApiProperty({ description: 'Code of the app that redeemed the token', example: 'app_securevault' }) appCode: string;
}

@ApiSchema({ description: 'The e-mail address of the account whose password to reset' })
export class PasswordResetRequestDto {
  @ApiProperty({ description: 'E-mail address of the account; trimmed, lower-cased and in Unicode NFC', example: 'ada@example.com' }) @Transform(emailInput) @IsEmail() @MaxLength(320) email: string;
}

@ApiSchema({ description: 'The token from the reset link, and the new password' })
export class PasswordResetDto {
  @ApiProperty({ description: 'The token from the reset link (single use, 30 minutes)', example: 'Zk3v9QmR2xYp7LwT0cN5aB8dE1fG4hJ6kM9nP2qS5uV' }) @IsString() @Length(20, 200) token: string;
  @ApiProperty({ description: 'The new password, 10 to 200 characters', minLength: 10, maxLength: 200, format: 'password', example: 'a new horse battery staple' }) @IsString() @Length(10, 200) password: string;
}

@ApiSchema({ description: 'The new e-mail address, confirmed with the current password' })
export class EmailChangeRequestDto {
  @ApiProperty({ description: 'The new e-mail address; trimmed, lower-cased and in Unicode NFC. A link to confirm it goes there', example: 'ada.lovelace@example.org' })
  @Transform(emailInput) @IsEmailAddress() @MaxLength(320) newEmail: string;
  @ApiProperty({ description: 'The current password of the account', format: 'password', example: 'correct horse battery staple' }) @IsString() @Length(1, 200) password: string;
}

@ApiSchema({ description: 'The token from the link mailed to the new address' })
export class EmailChangeConfirmDto {
  @ApiProperty({ description: 'The token from the confirmation link (single use)', example: 'Zk3v9QmR2xYp7LwT0cN5aB8dE1fG4hJ6kM9nP2qS5uV' }) @IsString() @Length(20, 200) token: string;
}

@ApiSchema({ description: 'The same answer whether or not the address has an account (nothing is revealed)' })
export class CheckEmailDto {
  @ApiProperty({ enum: ['check_email'], description: 'Always check_email', example: 'check_email' }) status: 'check_email';
  @ApiProperty({ description: 'Human-readable next step', example: 'If this address has an account, a link has been sent to it.' }) message: string;
}

@ApiSchema({ description: 'The e-mail address the account now has' })
export class EmailChangedDto {
  @ApiProperty({ description: 'The new e-mail address (verified: the link proved it)', example: 'ada.lovelace@example.org' }) email: string;
}
