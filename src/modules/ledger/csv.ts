import type { FastifyReply, FastifyRequest } from 'fastify';

/** Whether the caller asked for CSV: ?format=csv or Accept: text/csv. */
export function wantsCsv(req: FastifyRequest, format?: string): boolean {
  return format === 'csv' || (format === undefined && /\btext\/csv\b/.test(req.headers.accept ?? ''));
}

const cell = (v: unknown): string => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) || /^[=+\-@]/.test(s) && !/^-?\d/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** RFC 4180 CSV; cells that a spreadsheet would run as formulas are quoted. */
export function toCsv(header: string[], rows: unknown[][]): string {
  return [header, ...rows].map((r) => r.map(cell).join(',')).join('\r\n') + '\r\n';
}

export function sendCsv(res: FastifyReply, filename: string, body: string): string {
  res.header('Content-Type', 'text/csv; charset=utf-8');
  res.header('Content-Disposition', `attachment; filename="${filename}"`);
  return body;
}
