import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** The codes of the user's integrations and their secrets. */
export const IntegrationsErrors = defineErrorCodes({
  'integration.not_found': { status: 404, description: 'no integration of that id for the caller' },
  'integration_secret.not_found': { status: 404, description: 'the integration has no secret' },
  'integration.exists': { status: 409, description: 'the caller already has an integration of that type' },
  'integration.secret_invalid': { status: 400, description: 'the credentials do not fit the integration type (fields, server URL)' },
  'secrets.not_configured': { status: 503, description: 'no encryption key for secrets is configured (SECRETS_KEYS)' },
});
