import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsEmail, IsIn, IsOptional, IsString, Length, Matches, MaxLength } from 'class-validator';
import { EXCHANGE_PROVIDERS, type ExchangeProvider } from './external-token.js';

const lower = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim().toLowerCase() : value);

export class RegisterDto {
  @ApiProperty({ example: 'ada@example.com' }) @Transform(lower) @IsEmail() @MaxLength(320) email: string;
  @ApiProperty({ minLength: 10, maxLength: 200 }) @IsString() @Length(10, 200) password: string;
  @ApiPropertyOptional({ example: 'Ada Lovelace' }) @IsOptional() @IsString() @Length(1, 200) name?: string;
}

export class LoginDto {
  @ApiProperty({ example: 'ada@example.com' }) @Transform(lower) @IsEmail() email: string;
  @ApiProperty() @IsString() @Length(1, 200) password: string;
}

export class RefreshDto {
  @ApiPropertyOptional({ description: 'The refresh token; may come from the httpOnly cookie instead' })
  @IsOptional() @IsString() @Length(20, 200) refreshToken?: string;
}

export class UserDto {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiProperty() email: string;
  @ApiPropertyOptional() name: string | null;
  @ApiPropertyOptional() image: string | null;
  @ApiProperty({ enum: ['personal', 'business'] }) accountType: string | null;
}

export class TokensDto {
  @ApiProperty({ description: 'Bearer access token (HS256, Supabase-compatible claims)' }) accessToken: string;
  @ApiProperty({ example: 'Bearer' }) tokenType: 'Bearer';
  @ApiProperty({ description: 'Seconds until the access token expires' }) expiresIn: number;
  @ApiProperty({ description: 'Single-use refresh token; rotated on every refresh' }) refreshToken: string;
  @ApiProperty({ type: UserDto }) user: UserDto;
  @ApiProperty({ format: 'uuid', description: 'The user\'s personal organization' }) personalOrgId: string;
}

export class SessionDto {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiPropertyOptional() userAgent: string | null;
  @ApiPropertyOptional() ip: string | null;
  @ApiProperty() createdAt: Date;
  @ApiProperty() lastUsedAt: Date;
  @ApiProperty() expiresAt: Date;
  @ApiProperty({ description: 'true for the session of the calling token' }) current: boolean;
}

export class ExchangeDto {
  @ApiProperty({ description: 'A Hub / NextAuth session JWT or a Supabase access token (HS256)' })
  @IsString() @Length(20, 8192) token: string;
  @ApiPropertyOptional({ enum: EXCHANGE_PROVIDERS, description: 'Which issuer signed the token; detected from the signature when absent' })
  @IsOptional() @IsIn(EXCHANGE_PROVIDERS) provider?: ExchangeProvider;
}

export const APP_CODE = /^[a-z][a-z0-9_]{1,62}$/;

export class AppTokenRequestDto {
  @ApiProperty({ example: 'app_securevault', pattern: APP_CODE.source })
  @IsString() @Matches(APP_CODE, { message: 'appCode must be lowercase letters, digits and underscores, starting with a letter (2-63 characters)' })
  appCode: string;
}

export class AppTokenDto {
  @ApiProperty({ description: 'Short-lived, single-use token for the app (audience app:<appCode>); the API refuses it, the app redeems it at POST /v1/auth/app-token/redeem' }) accessToken: string;
  @ApiProperty({ example: 'Bearer' }) tokenType: 'Bearer';
  @ApiProperty({ description: 'Seconds until the token expires', example: 120 }) expiresIn: number;
  @ApiProperty({ example: 'app_securevault' }) appCode: string;
  @ApiProperty({ description: 'Query string to append to the app\'s login URL (seed 000 handshake: /login?token=...)', example: 'token=eyJ...' })
  redirectQuery: string;
}

export class RegistrationAcceptedDto {
  @ApiProperty({ enum: ['check_email'], description: 'The same for every registration, whether or not the e-mail already has an account' })
  status: 'check_email';
  @ApiProperty({ example: 'If this e-mail can be registered, a verification link has been sent to it. Then sign in with your password.' })
  message: string;
}

export class VerifyEmailDto {
  @ApiProperty({ description: 'The token from the verification link (?token=...)' })
  @IsString() @Length(20, 200) token: string;
}

export class EmailVerifiedDto {
  @ApiProperty({ example: 'ada@example.com' }) email: string;
  @ApiProperty({ enum: [true] }) verified: true;
}

export class IdentityDto {
  @ApiProperty({ enum: ['password', ...EXCHANGE_PROVIDERS] }) provider: string;
  @ApiProperty({ description: 'The e-mail this identity last asserted' }) email: string;
  @ApiProperty() emailVerified: boolean;
  @ApiProperty() createdAt: Date;
  @ApiProperty() lastUsedAt: Date;
}

export class AppTokenRedeemDto {
  @ApiProperty({ description: 'The app token from the handshake URL (?token=...)' })
  @IsString() @Length(20, 8192) token: string;
  @ApiProperty({ example: 'app_securevault', pattern: APP_CODE.source, description: 'The app redeeming it: must be the app the token was made for' })
  @IsString() @Matches(APP_CODE, { message: 'appCode must be lowercase letters, digits and underscores, starting with a letter (2-63 characters)' })
  appCode: string;
}

export class AppSessionDto {
  @ApiProperty({ description: 'core."User".id of the user the Hub sent' }) userId: string;
  @ApiProperty() email: string;
  @ApiProperty({ format: 'uuid', description: 'The organization the app works in' }) orgId: string;
  @ApiProperty({ format: 'uuid' }) personalOrgId: string;
  @ApiProperty({ example: 'app_securevault' }) appCode: string;
}
