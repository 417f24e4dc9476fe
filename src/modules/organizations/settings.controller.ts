import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Put } from '@nestjs/common';
import { ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { OrgRoute, RequireRole, Tx } from '../../platform/http/tenant.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { ADMIN_ROLES } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { SettingsService } from './settings.service.js';
import { FeatureFlagDto, FeatureFlagInputDto, SettingDto, SettingValueDto, SettingValuesDto } from './setting.dto.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import './organizations.errors.js'; // registers OrganizationsErrors
import '../../platform/errors/platform.errors.js'; // registers PlatformErrors
import '../billing/billing.errors.js'; // registers BillingErrors

const SCOPE = { name: 'scope', description: "'org' for organization-level settings, or an app code for app-level ones", example: 'org' };
const KEY = { name: 'key', example: 'timezone' };
/** What writing the organization's branding needs (SettingsService.put, PLAN_GATED_ORG_SETTINGS). */
const WHITE_LABEL = "Changing the organization's branding (scope 'org', key branding: a field set that was not stored, or set to another "
  + 'value) needs a plan with white-label options (white_label: enterprise or custom): otherwise 402 billing.feature_not_in_plan '
  + '(details.feature white_label, details.upgradeTo the cheapest plan that has it), or 402 billing.subscription_inactive while the '
  + 'subscription is read-only. Nothing is written then. The branding sent back as stored, or with fields left out (which clears '
  + 'them), needs no plan, so after a downgrade a form that sends every setting back still saves; the other settings need no plan, '
  + 'and deleting the branding needs none either.';

@ApiTags('settings')
@OrgRoute()
@Controller('v1/orgs/:orgId/settings/:scope')
export class SettingsController {
  constructor(private readonly settings: SettingsService) {}

  @Get()
  @ApiErrorCodes('organization.not_found', 'settings.invalid_scope')
  @ApiOperation({
    operationId: 'listSettings', summary: 'Settings of one scope',
    description: "Answers the values as stored: the organization's branding too when its plan no longer includes white-label options (see getSetting).",
  })
  @ApiParam(SCOPE)
  @ApiOkResponse({ type: [SettingDto] })
  @ApiErrors(400)
  list(@Tx() tx: TenantTx, @Param('scope') scope: string): Promise<SettingDto[]> {
    return this.settings.list(tx, scope);
  }

  @Patch()
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'settings.invalid_scope', 'settings.invalid_key', 'settings.empty', 'settings.invalid',
    'billing.feature_not_in_plan', 'billing.subscription_inactive')
  @ApiOperation({
    operationId: 'setSettings', summary: 'Set several settings of one scope at once (admin); nothing is written if any is invalid',
    description: `${WHITE_LABEL} A request that changes the branding is refused whole.`,
  })
  @ApiParam(SCOPE)
  @ApiOkResponse({ type: [SettingDto] })
  @ApiErrors(400)
  putMany(@Tx() tx: TenantTx, @Param('scope') scope: string, @Body() dto: SettingValuesDto): Promise<SettingDto[]> {
    return this.settings.put(tx, scope, dto.values);
  }

  @Get(':key')
  @ApiErrorCodes('organization.not_found', 'settings.invalid_scope', 'settings.invalid_key', 'setting.not_found')
  @ApiOperation({
    operationId: 'getSetting', summary: 'Read one setting',
    description: "Answers the value as stored. The organization's branding is returned even when its plan no longer includes "
      + 'white-label options (after a downgrade): it stays stored, and changing it needs the feature (see setSetting).',
  })
  @ApiParam(SCOPE)
  @ApiParam(KEY)
  @ApiOkResponse({ type: SettingDto })
  @ApiErrors(400)
  get(@Tx() tx: TenantTx, @Param('scope') scope: string, @Param('key') key: string): Promise<SettingDto> {
    return this.settings.get(tx, scope, key);
  }

  @Put(':key')
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'settings.invalid_scope', 'settings.invalid_key', 'settings.invalid',
    'billing.feature_not_in_plan', 'billing.subscription_inactive')
  @ApiOperation({ operationId: 'setSetting', summary: 'Set one setting (admin)', description: WHITE_LABEL })
  @ApiParam(SCOPE)
  @ApiParam(KEY)
  @ApiOkResponse({ type: SettingDto })
  @ApiErrors(400)
  async put(@Tx() tx: TenantTx, @Param('scope') scope: string, @Param('key') key: string, @Body() dto: SettingValueDto): Promise<SettingDto> {
    const [saved] = await this.settings.put(tx, scope, { [key]: dto.value });
    return saved;
  }

  @Delete(':key')
  @HttpCode(204)
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'settings.invalid_scope', 'settings.invalid_key', 'setting.not_found')
  @ApiOperation({ operationId: 'deleteSetting', summary: 'Remove one setting (admin)' })
  @ApiParam(SCOPE)
  @ApiParam(KEY)
  @ApiNoContentResponse()
  @ApiErrors(400)
  delete(@Tx() tx: TenantTx, @Param('scope') scope: string, @Param('key') key: string): Promise<void> {
    return this.settings.delete(tx, scope, key);
  }
}

@ApiTags('feature flags')
@OrgRoute()
@Controller('v1/orgs/:orgId/feature-flags')
export class FeatureFlagsController {
  constructor(private readonly settings: SettingsService) {}

  @Get()
  @ApiErrorCodes('organization.not_found')
  @ApiOperation({ operationId: 'listFeatureFlags', summary: 'Feature flags of the organization (absent flags are off)' })
  @ApiOkResponse({ type: [FeatureFlagDto] })
  list(@Tx() tx: TenantTx): Promise<FeatureFlagDto[]> {
    return this.settings.listFlags(tx);
  }

  @Put(':flag')
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'feature_flag.invalid_name')
  @ApiOperation({ operationId: 'setFeatureFlag', summary: 'Turn a feature flag on or off (admin)' })
  @ApiParam({ name: 'flag', example: 'ledger.multi_currency' })
  @ApiOkResponse({ type: FeatureFlagDto })
  @ApiErrors(400)
  set(@Tx() tx: TenantTx, @Param('flag') flag: string, @Body() dto: FeatureFlagInputDto): Promise<FeatureFlagDto> {
    return this.settings.setFlag(tx, flag, dto.enabled);
  }

  @Delete(':flag')
  @HttpCode(204)
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'feature_flag.invalid_name', 'feature_flag.not_found')
  @ApiOperation({ operationId: 'deleteFeatureFlag', summary: 'Remove a feature flag (admin); it reads as off' })
  @ApiParam({ name: 'flag', example: 'ledger.multi_currency' })
  @ApiNoContentResponse()
  @ApiErrors(400)
  delete(@Tx() tx: TenantTx, @Param('flag') flag: string): Promise<void> {
    return this.settings.deleteFlag(tx, flag);
  }
}
