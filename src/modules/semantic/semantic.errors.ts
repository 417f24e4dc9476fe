import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** Every code the semantic layer answers with. */
export const SemanticErrors = defineErrorCodes({
  'semantic.syntax_error': { status: 400, description: 'the query is not valid PostgreSQL: refused by the parser before it runs, or by the server when it runs (syntax of a newer PostgreSQL than the server\'s: details.sqlState 42601)' },
  'semantic.query_refused': { status: 400, description: 'the query is not a single SELECT over semantic.* views with allow-listed functions, within the bounds on nesting, value and row growth, FROM items and output columns (details.reason says what was refused)' },
  'semantic.query_failed': { status: 400, description: 'PostgreSQL rejected the query (unknown column, division by zero, ...), or the query needed more memory or temporary disk than the server has or allows (details.sqlState 53000, 53100, 53200 or 53400)' },
  'semantic.query_timeout': { status: 422, description: 'the query ran longer than the statement timeout and was cancelled' },
  'semantic.busy': { status: 503, description: 'too many semantic queries run at once (SEMANTIC_MAX_CONCURRENT_QUERIES in the process, SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG of the organization; details.limit and details.running say which) and the organization\'s queue of waiting queries was full (SEMANTIC_QUEUED_QUERIES_PER_ORG) or the wait reached the query\'s timeout; the query did not run: retry after Retry-After seconds' },
});
