import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createDeflate } from 'node:zlib';
import { extractText, getDocumentProxy } from 'unpdf';
import { CallTimer } from '../../src/platform/clock/clock.js';
import { PDF_LIMITS, PdfTextExtractor } from '../../src/modules/knowledge/pdf-text-extraction.js';
import { onEnterprisePlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/** A stream's bytes and dictionary entries (besides /Length). */
interface PdfStream {
  bytes: Buffer;
  dict?: string;
}

/**
 * A PDF whose pages have these content streams (Helvetica as /F1), with a correct cross-reference table. `fontFile`: /F1
 * is a TrueType font with this font program instead.
 */
function pdfOf(pages: (string | PdfStream)[], fontFile?: PdfStream): Buffer {
  const objects: (string | PdfStream)[] = [];
  const add = (o: string | PdfStream) => objects.push(o);
  add('<< /Type /Catalog /Pages 2 0 R >>');
  add(''); // the page tree, once the pages' numbers are known
  add(fontFile
    ? '<< /Type /Font /Subtype /TrueType /BaseFont /Embedded /FirstChar 32 /LastChar 126 /FontDescriptor 4 0 R >>'
    : '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>');
  if (fontFile) {
    add('<< /Type /FontDescriptor /FontName /Embedded /Flags 32 /FontBBox [0 0 1000 1000] /ItalicAngle 0 /Ascent 800 /Descent -200 /CapHeight 700 /StemV 80 /FontFile2 5 0 R >>');
    add(fontFile);
  }
  const kids: number[] = [];
  for (const content of pages) {
    add(typeof content === 'string' ? { bytes: Buffer.from(content, 'latin1') } : content);
    add(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents ${objects.length} 0 R /Resources << /Font << /F1 3 0 R >> >> >>`);
    kids.push(objects.length);
  }
  objects[1] = `<< /Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(' ')}] /Count ${kids.length} >>`;
  const parts: Buffer[] = [Buffer.from('%PDF-1.4\n', 'latin1')];
  let offset = parts[0].length;
  const offsets: number[] = [];
  objects.forEach((o, i) => {
    const part = typeof o === 'string'
      ? Buffer.from(`${i + 1} 0 obj\n${o}\nendobj\n`, 'latin1')
      : Buffer.concat([Buffer.from(`${i + 1} 0 obj\n<< /Length ${o.bytes.length} ${o.dict ?? ''} >>\nstream\n`, 'latin1'), o.bytes, Buffer.from('\nendstream\nendobj\n', 'latin1')]);
    offsets.push(offset);
    parts.push(part);
    offset += part.length;
  });
  parts.push(Buffer.from(`xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`
    + `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${offset}\n%%EOF\n`, 'latin1'));
  return Buffer.concat(parts);
}

/** A Flate stream of `head`, then `block` `times` over: a few hundred KB that inflate to `times` × the block. */
async function flateBomb(head: string, block: string, times: number): Promise<PdfStream> {
  const deflate = createDeflate({ level: 9 });
  const out: Buffer[] = [];
  deflate.on('data', (c: Buffer) => out.push(c));
  const ended = new Promise((resolve) => deflate.on('end', resolve));
  deflate.write(Buffer.from(head, 'latin1'));
  const bytes = Buffer.from(block, 'latin1');
  for (let i = 0; i < times; i++) deflate.write(bytes);
  deflate.end();
  await ended;
  return { bytes: Buffer.concat(out), dict: '/Filter /FlateDecode' };
}

const line = (text: string) => `BT /F1 12 Tf 72 720 Td (${text}) Tj ET\n`;

/**
 * A PDF's text is extracted in a worker thread within limits of pages, memory and time (PdfTextExtractor): a small
 * upload whose streams inflate to hundreds of MB is refused with knowledge.extraction_limit naming the limit, without
 * tying up the process, and nothing is stored; an ordinary PDF's text is what unpdf's extractText gives.
 */
describe('knowledge: PDF text extraction within limits', () => {
  let t: KnowledgeApp;
  let org: OrgWithRoles;
  let collection: string;
  let extractor: PdfTextExtractor;
  const url = (p: string) => `/v1/orgs/${org.orgId}/knowledge/${p}`;
  const upload = (name: string, content: Buffer) =>
    t.http.post(url(`collections/${collection}/documents`)).set(org.users.owner.auth).attach('file', content, { filename: name, contentType: 'application/pdf' });
  const stored = async () => (await t.db.admin.query(
    'SELECT (SELECT count(*) FROM ai.knowledge_documents WHERE org_id = $1)::int AS documents, (SELECT count(*) FROM ai.knowledge_versions WHERE org_id = $1)::int AS versions',
    [org.orgId])).rows[0];

  beforeAll(async () => {
    t = await startKnowledgeApp();
    org = await orgWithRoles(t, 'Pdf Co');
    await onEnterprisePlan(t, org.orgId);
    collection = (await t.http.post(url('collections')).set(org.users.owner.auth).send({ name: 'Reports', readRoles: ['member'] }).expect(201)).body.id;
    extractor = t.app.get(PdfTextExtractor);
  });
  afterAll(() => t?.close());

  it('extracts an ordinary PDF\'s text as unpdf\'s extractText does, page by page, and stores it', async () => {
    const pdf = pdfOf([
      'BT /F1 12 Tf 72 720 Td 14 TL (Quarterly   report) Tj T* (Revenue rose  by 12 %.) Tj T* T* T* (Costs fell.) Tj ET',
      await flateBomb('BT /F1 12 Tf 72 720 Td 14 TL ', '(Travel is reimbursed within thirty days.) Tj T* ', 20),
      'BT /F1 12 Tf 72 720 Td (  Last page  ) Tj ET',
    ]);
    const expected = (await extractText(await getDocumentProxy(new Uint8Array(pdf), { verbosity: 0 }), { mergePages: true })).text.trim();
    expect(expected).toContain('Revenue rose by 12 %.');
    expect(expected).toContain('Last page');
    const res = await upload('report.pdf', pdf).expect(201);
    expect(res.body).toMatchObject({ status: 'pending', latestVersion: 1, title: 'report.pdf' });
    const version = (await t.http.get(url(`documents/${res.body.id}/versions/1`)).set(org.users.owner.auth).expect(200)).body;
    expect(version.text).toBe(expected);
    const [row] = (await t.db.admin.query('SELECT text FROM ai.knowledge_versions WHERE document_id = $1', [res.body.id])).rows;
    expect(row.text).toBe(expected);
    expect(extractor.running).toBe(0);
  });

  it('refuses a PDF whose stream inflates past the memory limit (a decompression bomb), ends the worker and stores nothing', async () => {
    // the reviewer's bomb at a smaller scale: 300 KB whose content stream inflates to 200 MB; the limit lowered to
    // 64 MB on this app's extractor, so the bomb passes it early (the default, 256 MB, is passed the same way)
    const bomb = pdfOf([await flateBomb(line('Quarterly report'), `%${'A'.repeat(1022)}\n`.repeat(1024), 200)]);
    expect(bomb.length).toBeLessThan(1024 * 1024);
    const before = await stored();
    extractor.limits.memoryMb = 64;
    try {
      const res = await upload('bomb.pdf', bomb).expect(422);
      expect(res.body.error).toEqual({
        code: 'knowledge.extraction_limit',
        message: 'the PDF\'s text could not be extracted within the limits: it needs more than 64 MB of memory',
        details: { maxPages: PDF_LIMITS.maxPages, memoryMb: 64, timeoutMs: PDF_LIMITS.timeoutMs },
      });
    } finally {
      extractor.limits.memoryMb = PDF_LIMITS.memoryMb;
    }
    expect(extractor.running).toBe(0);
    expect(await stored()).toEqual(before);
  });

  it('refuses a PDF whose extraction outlasts the time limit (the CallTimer fires while the worker reads), ends the worker', async () => {
    // a PDF that takes the worker seconds (a content stream inflating to 100 MB of comments): the timer is the test's,
    // fired as soon as the extraction has started its worker
    const slow = pdfOf([await flateBomb(line('Quarterly report'), `%${'A'.repeat(1022)}\n`.repeat(1024), 100)]);
    const before = await stored();
    const timer = t.app.get(CallTimer);
    const start = timer.start;
    const fired: { ms: number; running: number }[] = [];
    timer.start = (ms, expire) => {
      fired.push({ ms, running: extractor.running });
      expire();
      return () => undefined;
    };
    try {
      const res = await upload('slow.pdf', slow).expect(422);
      expect(res.body.error).toMatchObject({
        code: 'knowledge.extraction_limit',
        message: `the PDF's text could not be extracted within the limits: it takes longer than ${PDF_LIMITS.timeoutMs / 1000} s`,
      });
    } finally {
      timer.start = start;
    }
    expect(fired).toEqual([{ ms: PDF_LIMITS.timeoutMs, running: 1 }]);
    expect(extractor.running).toBe(0);
    expect(await stored()).toEqual(before);
  });

  it('refuses a PDF with more pages than the cap before reading any, and stores nothing', async () => {
    const pages = Array.from({ length: PDF_LIMITS.maxPages + 1 }, () => line('Page'));
    const before = await stored();
    const res = await upload('long.pdf', pdfOf(pages)).expect(422);
    expect(res.body.error).toMatchObject({
      code: 'knowledge.extraction_limit',
      message: `the PDF's text could not be extracted within the limits: it has ${PDF_LIMITS.maxPages + 1} pages, more than ${PDF_LIMITS.maxPages}`,
    });
    expect(extractor.running).toBe(0);
    expect(await stored()).toEqual(before);
  });

  it('stops reading once the text is longer than a document may hold, and says so with knowledge.text_too_large', async () => {
    // four pages of 400,500 characters (4,500 lines of 89 on the page, drawn over each other: pdf.js drops the text
    // outside the page): the limit (1,000,000) is passed on the third, the fourth is never read
    const page = await flateBomb('', 'BT /F1 12 Tf 36 720 Td (word word word word word word word word word word word word word word word word word word) Tj ET\n', 4500);
    const before = await stored();
    const res = await upload('minutes.pdf', pdfOf([page, page, page, page])).expect(413);
    expect(res.body.error).toEqual({
      code: 'knowledge.text_too_large', details: { limitChars: 1_000_000 },
      message: 'the text extracted from the file is longer than the limit of 1000000 characters (as for a note; the extraction stopped at page 3 of 4): split it into several documents',
    });
    expect(extractor.running).toBe(0);
    expect(await stored()).toEqual(before);
  });
});
