import type { FastifyReply, FastifyRequest } from 'fastify';

/** Whether the caller asked for CSV: ?format=csv or Accept: text/csv. */
export function wantsCsv(req: FastifyRequest, format?: string): boolean {
  return format === 'csv' || (format === undefined && /\btext\/csv\b/.test(req.headers.accept ?? ''));
}

const cell = (v: unknown): string => {
  let s = v === null || v === undefined ? '' : String(v);
  // a text a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading apostrophe, which
  // spreadsheets show as text; quoting alone does not stop the formula. Numbers (-12.50) stay numbers.
  if (/^[=+\-@\t\r]/.test(s) && !/^-?\d+(\.\d+)?$/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** RFC 4180 CSV; user text that a spreadsheet would run as a formula is neutralized. */
export function toCsv(header: string[], rows: unknown[][]): string {
  return [header, ...rows].map((r) => r.map(cell).join(',')).join('\r\n') + '\r\n';
}

export function sendCsv(res: FastifyReply, filename: string, body: string): string {
  res.header('Content-Type', 'text/csv; charset=utf-8');
  res.header('Content-Disposition', `attachment; filename="${filename}"`);
  return body;
}
