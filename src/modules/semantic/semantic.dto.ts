import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { IsString, Length } from 'class-validator';

@ApiSchema({ description: 'A read of the semantic layer: one SELECT over semantic.* views' })
export class SemanticQueryDto {
  @ApiProperty({
    description: 'One PostgreSQL SELECT (CTEs allowed) reading only semantic.* views and allow-listed functions; runs read-only under your claims, rolled back, with a statement timeout, a row cap and a byte cap',
    example: "SELECT account_code, sum(base_amount) AS balance FROM semantic.v_gl_fact GROUP BY account_code ORDER BY account_code",
    minLength: 1, maxLength: 100000,
  })
  @IsString() @Length(1, 100_000) sql: string;
}

@ApiSchema({ description: 'A column of a semantic query result' })
export class SemanticColumnDto {
  @ApiProperty({ description: 'Column name as the query named it', example: 'balance' }) name: string;
  @ApiProperty({ description: 'PostgreSQL type of the column', example: 'numeric' }) type: string;
}

@ApiSchema({ description: 'The answer of a semantic query: columns, rows as arrays in column order, and whether a cap cut it' })
export class SemanticResultDto {
  @ApiProperty({ type: [SemanticColumnDto], description: 'Columns in order', example: [{ name: 'account_code', type: 'text' }, { name: 'balance', type: 'numeric' }] })
  columns: SemanticColumnDto[];
  @ApiProperty({
    type: 'array', items: { type: 'array', items: { description: 'One value, as its column\'s type gives it (see rows); null for NULL' } },
    description: 'Rows, each an array in column order. numeric values are strings, exactly as PostgreSQL prints them, their scale kept (10.50 and 0.00 of a numeric(12,2), never 10.5 or 0; NaN, Infinity, -Infinity as such); int8 values are numbers when exact, strings beyond 2^53; '
      + 'real and double precision values are numbers (as exact as PostgreSQL prints them), or the strings Infinity, -Infinity and NaN; '
      + 'interval values are PostgreSQL\'s text in its default style (IntervalStyle postgres): 1 day 02:00:00, 1 year 2 mons -3 days, -00:00:01.5; '
      + 'date values are PostgreSQL\'s text: YYYY-MM-DD, or infinity, -infinity, 0044-03-15 BC, 10000-01-01; '
      + 'timestamp and timestamptz values are ISO 8601 in UTC with milliseconds (2026-01-15T10:20:30.123Z) for instants of years 1-9999, else PostgreSQL\'s text (infinity, -infinity, 0044-03-15 10:00:00 BC, 10000-01-01 00:00:00); '
      + 'json and jsonb values are their JSON text as PostgreSQL prints it (a string, its numbers exact); arrays are arrays of such values; bytea is base64',
    example: [['1100', '1500.0000'], ['4000', '-1500.0000']],
  })
  rows: unknown[][];
  @ApiProperty({ description: 'Rows answered', example: 2 }) rowCount: number;
  @ApiProperty({ description: 'true when a cap cut the answer: only the first rows within both caps are answered', example: false }) truncated: boolean;
  @ApiProperty({
    enum: ['rows', 'bytes', null], type: String, nullable: true, example: null,
    description: 'Which cap cut the answer: `rows` (the query had more rows than the row cap) or `bytes` (the rows\' text form, as PostgreSQL prints them, passed the byte cap, AI_SEMANTIC_BYTE_CAP); null when nothing was cut',
  })
  truncatedBy: 'rows' | 'bytes' | null;
}

@ApiSchema({ description: 'A documented column of a semantic view' })
export class SemanticViewColumnDto {
  @ApiProperty({ description: 'Column name', example: 'base_amount' }) name: string;
  @ApiProperty({ description: 'PostgreSQL type', example: 'numeric' }) type: string;
  @ApiProperty({ type: String, nullable: true, description: 'What the column holds (its COMMENT); null when undocumented', example: 'debit minus credit in the base currency' })
  description: string | null;
}

@ApiSchema({ description: 'A view of the semantic layer the caller may read' })
export class SemanticViewDto {
  @ApiProperty({ description: 'Qualified view name, as a query names it', example: 'semantic.v_gl_fact' }) name: string;
  @ApiProperty({ type: String, nullable: true, description: 'What the view holds (its COMMENT)', example: 'General ledger lines with their entry, account and fiscal period' })
  description: string | null;
  @ApiProperty({ type: [SemanticViewColumnDto], description: 'Columns in order', example: [{ name: 'base_amount', type: 'numeric', description: 'debit minus credit in the base currency' }] })
  columns: SemanticViewColumnDto[];
}
