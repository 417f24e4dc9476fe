import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';

/** What went wrong, in a stable code a client can branch on and a message a person can read. */
@ApiSchema({ description: 'What went wrong: a stable code to branch on and a message naming the problem' })
export class ErrorDetail {
  @ApiProperty({ description: 'Stable machine-readable code: `<area>.<problem>` or a generic HTTP code', example: 'organization.not_found' }) code: string;
  @ApiProperty({ description: 'Human-readable explanation naming the problem', example: 'organization 3f0c... was not found' }) message: string;
  @ApiPropertyOptional({
    description: 'validation_failed: one { field, problems } per invalid field; other codes: structured context',
    oneOf: [{ type: 'array', items: { type: 'object', additionalProperties: true } }, { type: 'object', additionalProperties: true }],
    example: [{ field: 'name', problems: ['name must be shorter than or equal to 200 characters'] }],
  })
  details?: unknown;
}

/** The one shape of every error the API answers. */
@ApiSchema({ description: 'The one shape of every error the API answers' })
export class ErrorResponse {
  @ApiProperty({ description: 'The error: its code, message and details', type: ErrorDetail }) error: ErrorDetail;
  @ApiProperty({ description: 'The id of this request (also in the X-Request-Id header); quote it when reporting a problem', example: '6c1f2b1e-6f0e-4c55-9b87-2a4d8e1b7f3a' }) requestId: string;
}
