import { Body, Controller, Get, HttpCode, Param, Post, Req } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import type { TenantTx } from '../../platform/database/database.service.js';
import { CurrentPrincipal, DoesNotWrite, OrgPreflightRoute, OrgRoute, Tx } from '../../platform/http/tenant.js';
import { RequiresScope } from '../../platform/auth/api-key-scopes.js';
import type { Principal } from '../../platform/auth/principal.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { SemanticQueryDto, SemanticResultDto, SemanticViewDto } from './semantic.dto.js';
import { SemanticService } from './semantic.service.js';
import { UUID } from '../../platform/http/uuid.js';


@ApiTags('semantic')
@OrgRoute()
@Controller('v1/orgs/:orgId/semantic')
export class SemanticViewsController {
  constructor(private readonly semantic: SemanticService) {}

  @Get('views')
  @RequiresScope('semantic:read')
  @ApiOperation({ operationId: 'listSemanticViews', summary: 'The semantic views you may query, with their documented columns' })
  @ApiOkResponse({ type: [SemanticViewDto] })
  @ApiErrorCodes('organization.not_found')
  views(@Tx() tx: TenantTx): Promise<SemanticViewDto[]> {
    return this.semantic.views(tx);
  }
}

/**
 * Not an @OrgRoute: the query gets its own READ ONLY transaction that is always rolled back (the request
 * transaction of an @OrgRoute commits). The preflight decides membership (404) before the body is validated.
 */
@ApiTags('semantic')
@OrgPreflightRoute()
@Controller('v1/orgs/:orgId/semantic')
export class SemanticQueryController {
  constructor(private readonly semantic: SemanticService) {}

  @Post('query')
  @HttpCode(200)
  @DoesNotWrite()
  @RequiresScope('semantic:read')
  @ApiOperation({
    operationId: 'querySemanticLayer',
    summary: 'Run one read-only SELECT over the semantic views (any member; the rows are those your claims allow)',
    description: 'Parsed with PostgreSQL\'s parser: one SELECT (CTEs allowed, WITH RECURSIVE not) over semantic.* views and allow-listed functions; everything else is a 400 naming what was refused. '
      + 'Bounds on what a query may build, checked before it runs (400 semantic.query_refused naming the expression): at most 8 SELECTs nested in or reading each other (CTE chains count); '
      + 'at most 20,000 parse-tree nodes nested at most 200 deep; at most 100 FROM items in one SELECT (each side of a join counts) and 1,664 output columns in one SELECT or VALUES row (PostgreSQL\'s own limit); no NUL character (\\u0000); '
      + 'no expression may build a value (as text) more than 64 times the largest value the query starts from (a semantic view\'s value or row, or the query\'s own text of at most 300,000 bytes): concat and || add up their arguments, '
      + 'arrays and rows printed as text count 2x their parts (ARRAY[...], ROW(...), ARRAY(SELECT ...), array_agg, a whole row), JSON building 6x (escaping; JSON arguments 1.5x), '
      + 'replace, regexp_replace and array_to_string multiply by the length of their replacement or separator (which must be string literals, as must regexp_match\'s pattern), translate 4x, to_char 8x its format, values aggregated across rows count at least 1, '
      + 'casts count what their text can become (char(n) padding; a number\'s exponent: 1e1000 prints 1,001 digits; a cast to json/jsonb takes only a string literal or a JSON value), and a CTE\'s or subquery\'s columns carry their weight into the queries reading them. '
      + 'A row of a SELECT, CTE, subquery or VALUES list is held to 512 times (the statement\'s own row counts 5 times: the answer holds it again, with its text): every value evaluated for it is held until the row is done, so their weights add up: its columns, '
      + 'its WHERE, JOIN ... ON, GROUP BY, HAVING, ORDER BY, DISTINCT and window (PARTITION BY, ORDER BY) expressions, and every value built on the way (a comparison, AND / OR / NOT '
      + 'or a function of a fixed-size result such as length or num_nonnulls counts 1, its arguments theirs; 1,000 columns, or 20 conditions, of a large value each are refused). '
      + 'A value built across rows (string_agg, array_agg, json_agg, jsonb_agg, json_object_agg, jsonb_object_agg, ARRAY(SELECT ...)) may add for each row it reads at most one view value '
      + '(each column read once, not repeated by concat, ||, replace, regexp_replace or array_to_string) and at most 256 bytes that are not a view\'s values (literals, the separator, the text of numbers, dates and other constants); '
      + 'its size is then bounded by the rows read before the statement timeout (views joined with each other by an equality of their columns are bounded by it alone; views joined by none, a cross join or ON b.id >= a.id, are refused where a value is built across their rows or their rows are sorted, grouped or windowed, and so is a correlated subquery building a value across a view\'s rows for each of many outer rows unless an equality of its column and the outer row\'s ties them); a view\'s value may be read into it at most 32 times through the rows of no view it is joined with (generate_series, unnest, VALUES: '
      + 'string_agg(memo, \'\') FROM semantic.v_gl_fact, generate_series(1, 100000) is refused) unless an equality between the series\' column (itself, or cast to date) and the view\'s holds each view row to one row of the series '
      + '(a date spine: FROM generate_series(...) d LEFT JOIN semantic.v_gl_fact f ON f.entry_date = d::date), times the grouping sets of the SELECT that aggregates it (GROUPING SETS, CUBE (2^n), ROLLUP (n + 1): ROLLUP of 3 columns is 4, CUBE of 6 is refused). '
      + 'generate_series takes a literal step and literal bounds (numbers, counted exactly, of at most 1,000 digits, not cast to an integer type from a fraction nor to numeric(p, s); or dates / timestamps \'YYYY-MM-DD[ HH:MM[:SS[.ffffff]]][+HH[:MM]]\' of years 0001-9999 AD, read as PostgreSQL reads them '
      + '(a date drops the time of day, a timestamp ignores a UTC offset, a timestamptz honours it; a time of the session\'s time zone counted anywhere within 16 hours of UTC), with an interval step such as \'1 month\' or \'1.5 hours\' '
      + '(not ISO 8601 nor of mixed signs); not infinity, epoch, now, BC or a named time zone), or bounds of one anchor (current_date; now(), current_timestamp, current_timestamp(p); localtimestamp, localtimestamp(p)) '
      + 'plus or minus literal days or intervals, each possibly truncated by date_trunc(\'<unit up to year>\', ...) or cast to date or a timestamp (generate_series(current_date - 30, current_date, interval \'1 day\'), generate_series(date_trunc(\'month\', current_date), current_date, interval \'1 day\'); '
      + 'months counted as 31 days in the span, 28 in the step, a truncation as a whole unit; a span from a literal date to an anchor is refused), '
      + 'and the rows a query makes without reading a view (generate_series, unnest, VALUES; multiplied where joined or read again through CTEs and subqueries, and by the grouping sets of GROUPING SETS, CUBE (2^n) and ROLLUP (n + 1)) are at most 100,000; '
      + 'unnest takes only arrays whose elements can be counted (literals, ARRAY[...], ARRAY(SELECT ...), array_agg, percentile_cont / percentile_disc of an array of fractions, and CTE or subquery columns of those; a cast of text to an array, through another cast too, is refused). '
      + 'Operators are pg_catalog\'s (OPERATOR(other_schema.op), also in ORDER BY ... USING, is refused). '
      + 'SQL/JSON syntax (JSON_VALUE, JSON_ARRAY, IS JSON...), concat_ws with VARIADIC and rel.function notation (x.row_to_json) are refused. '
      + 'Runs as written but with every CTE AS MATERIALIZED and every subquery in FROM given OFFSET 0 (each level is planned on its own), in a READ ONLY transaction that is rolled back, with a statement timeout (422 when exceeded) and a row cap (truncated: true). '
      + 'At most SEMANTIC_MAX_CONCURRENT_QUERIES (default 4) semantic queries run at once in a server process, at most SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG (default 2) of one organization (agents\' query_semantic calls included): '
      + 'past either, the query waits for a slot, first come first served, as one of at most SEMANTIC_QUEUED_QUERIES_PER_ORG (default 8) of its organization and for at most its own statement timeout; '
      + 'else, or once that wait is over, it is refused without running: 503 semantic.busy with Retry-After (details.limit: organization or process).',
  })
  @ApiOkResponse({ type: SemanticResultDto })
  @ApiErrorCodes('semantic.syntax_error', 'semantic.query_refused', 'semantic.query_failed', 'semantic.query_timeout', 'semantic.busy')
  query(@Param('orgId') orgId: string, @CurrentPrincipal() principal: Principal, @Req() req: FastifyRequest, @Body() dto: SemanticQueryDto): Promise<SemanticResultDto> {
    if (!UUID.test(orgId)) throw PlatformErrors.notFound('organization', orgId);
    return this.semantic.query(principal, orgId, { requestId: String(req.id), ip: req.ip }, dto.sql);
  }
}
