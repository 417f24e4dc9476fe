import { defineErrorCodes } from '../../platform/errors/catalog.js';
import { HORIZON_DAYS } from './availability.js';

/** The codes of provider profiles and their public booking pages. */
export const ProvidersErrors = defineErrorCodes({
  'provider.not_found': { status: 404, description: 'no public provider of that slug' },
  'provider.slug_reserved': { status: 400, description: 'the publicSlug is reserved' },
  'provider.slug_required': { status: 400, description: 'a public profile needs a publicSlug' },
  'provider.slug_taken': { status: 409, description: 'another provider has the publicSlug' },
  'provider.working_hours_invalid': { status: 400, description: 'working hours start after they end' },
  'availability.duration_invalid': { status: 400, description: 'duration is not between 15 and 240 minutes' },
  'availability.from_invalid': { status: 400, description: 'from is not a calendar date' },
  'availability.to_invalid': { status: 400, description: 'to is not a calendar date' },
  'availability.range_invalid': { status: 400, description: 'to is before from' },
  'availability.range_too_long': { status: 400, description: 'the range covers too many days' },
  'availability.from_past': { status: 400, description: 'from is before yesterday (UTC)' },
  'availability.to_beyond_horizon': { status: 400, description: `to is more than ${HORIZON_DAYS} days after today (UTC)` },
  'availability.calendar_unavailable': { status: 503, description: 'the provider\'s calendar could not be read' },
});
