import { defineErrorCodes } from '../../platform/errors/catalog.js';

export const AnalyticsErrors = defineErrorCodes({
  'analytics.range': { status: 400, description: 'from is after to, or the range is longer than 400 days' },
  'analytics.service_required': { status: 403, description: 'the cross-organization report is for a service-role key only' },
});
