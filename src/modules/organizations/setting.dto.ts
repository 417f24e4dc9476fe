import { ANY_JSON } from '../../platform/http/openapi.js';
import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { IsBoolean, IsDefined, IsObject } from 'class-validator';

@ApiSchema({ description: 'The value of one setting' })
export class SettingValueDto {
  @ApiProperty({
    ...ANY_JSON,
    description: "Any JSON value except null. Scope 'org' accepts only the known keys (locale, timezone, base_currency, " +
      'fiscal_year_start_month, branding) in their shapes; app scopes accept up to 16 KB of JSON.',
    example: 'Europe/Berlin',
  })
  @IsDefined()
  value: unknown;
}

@ApiSchema({ description: 'Several settings of one scope, validated together and written together' })
export class SettingValuesDto {
  @ApiProperty({ type: 'object', additionalProperties: true, description: 'key → value; all are validated before any is written', example: { timezone: 'Europe/Berlin', base_currency: 'EUR' } })
  @IsObject()
  values: Record<string, unknown>;
}

@ApiSchema({ description: "One setting: a JSON value under a key, in the organization's scope or an app's" })
export class SettingDto {
  @ApiProperty({ example: 'org', description: "'org' or an app code" }) scope: string;
  @ApiProperty({ description: 'The setting key within its scope', example: 'timezone' }) key: string;
  @ApiProperty({ ...ANY_JSON, description: 'The JSON value' }) value: unknown;
  @ApiProperty({ description: 'When the value was last written' }) updatedAt: Date;
}

@ApiSchema({ description: 'Whether the feature flag is on' })
export class FeatureFlagInputDto {
  @ApiProperty({ description: 'true turns the flag on, false turns it off' }) @IsBoolean() enabled: boolean;
}

@ApiSchema({ description: 'A feature flag of the organization' })
export class FeatureFlagDto {
  @ApiProperty({ description: 'Name of the feature flag', example: 'ledger.multi_currency' }) flag: string;
  @ApiProperty({ description: 'Whether the flag is on for the organization' }) enabled: boolean;
  @ApiProperty({ description: 'When the flag was last set' }) updatedAt: Date;
}
