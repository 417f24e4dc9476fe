import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, ApiResponse } from '@nestjs/swagger';

export class ErrorDetail {
  @ApiProperty({ example: 'organization.not_found' }) code: string;
  @ApiProperty({ example: 'organization 3f0c... was not found' }) message: string;
  @ApiPropertyOptional({ description: 'Per-field problems for validation errors, or other structured context' }) details?: unknown;
}

export class ErrorResponse {
  @ApiProperty({ type: ErrorDetail }) error: ErrorDetail;
  @ApiProperty({ example: '6c1f2b1e-6f0e-4c55-9b87-2a4d8e1b7f3a' }) requestId: string;
}

const DESCRIPTIONS: Record<number, string> = {
  400: 'The input is invalid: the message names each field',
  401: 'No valid access token',
  402: 'The plan does not include this, or a plan limit is reached',
  403: 'The caller may not do this in this organization',
  404: 'Not found, or not visible to the caller',
  409: 'Conflicts with existing data',
  422: 'Rejected by a business rule',
  429: 'Too many attempts',
};

export function ApiErrors(...statuses: number[]): MethodDecorator & ClassDecorator {
  return applyDecorators(...statuses.map((status) => ApiResponse({ status, description: DESCRIPTIONS[status], type: ErrorResponse })));
}

export class PageInfo {
  @ApiPropertyOptional({ description: 'Pass as ?cursor= to get the next page; absent on the last page' })
  nextCursor?: string;
}
