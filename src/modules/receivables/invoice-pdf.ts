import type { CustomerDto, InvoiceDto } from './receivables.dto.js';

/** Renders an issued invoice (or credit note) as a PDF: organization, customer, number, dates, lines, tax per rate, totals, amount due; a void one marked VOID, nothing due. */
export async function renderInvoicePdf(org: { name: string }, customer: CustomerDto, invoice: InvoiceDto): Promise<Buffer> {
  // loaded on the first PDF, not at start-up: pdfkit and its fonts are ~0.25 s of every test file's boot under Jest
  const { default: PDFDocument } = await import('pdfkit');
  return new Promise((resolve, reject) => {
    const doc = new PDFDocument({ size: 'A4', margin: 50, info: { Title: invoice.number ?? 'Invoice', Author: org.name } });
    const chunks: Buffer[] = [];
    doc.on('data', (c: Buffer) => chunks.push(c));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);

    const title = invoice.kind === 'credit_note' ? 'Credit note' : 'Invoice';
    const voided = invoice.status === 'void';
    doc.fontSize(18).text(org.name);
    doc.moveDown(0.5).fontSize(14).text(`${title} ${invoice.number ?? '(draft)'}${voided ? ' - VOID' : ''}`);
    // a void invoice's copy must not pass for one to pay: marked under its title, nothing due
    if (voided) doc.moveDown(0.5).fillColor('red').text(`VOID${invoice.voidedOn ? ` (voided on ${invoice.voidedOn})` : ''}: this ${title.toLowerCase()} is cancelled; nothing is due`).fillColor('black');
    doc.moveDown(0.5).fontSize(10);
    doc.text(`Invoice date: ${invoice.invoiceDate}`);
    doc.text(`Due date: ${invoice.dueDate}`);
    doc.text(`Currency: ${invoice.currency}`);
    doc.moveDown();
    doc.text('Bill to:');
    doc.text(customer.name);
    if (customer.contactPerson) doc.text(customer.contactPerson);
    if (customer.billingAddress) doc.text(customer.billingAddress);
    if (customer.taxId) doc.text(`Tax id: ${customer.taxId}`);
    doc.moveDown();

    // one line per invoice line: text extraction keeps each on one line, so the figures can be checked
    doc.font('Helvetica-Bold').text('Description | Quantity | Unit price | Discount % | Net | Tax | Gross');
    doc.font('Helvetica');
    for (const l of invoice.lines) {
      const period = l.serviceStart ? ` (${l.serviceStart} to ${l.serviceEnd})` : '';
      doc.text(`${l.description}${period} | ${trim(l.quantity)} | ${trim(l.unitPrice)} | ${trim(l.discountPercent)} | ${l.netAmount} | ${l.taxAmount} | ${l.grossAmount}`);
    }
    doc.moveDown();
    for (const t of invoice.taxes) doc.text(`Tax ${t.code} ${trim(t.rate)}% on ${t.net}: ${t.tax}`);
    doc.moveDown();
    doc.text(`Subtotal: ${invoice.subtotal} ${invoice.currency}`);
    doc.text(`Tax total: ${invoice.taxTotal} ${invoice.currency}`);
    doc.font('Helvetica-Bold').text(`Total: ${invoice.total} ${invoice.currency}`);
    if (invoice.kind === 'invoice' && !voided) doc.text(`Amount due: ${invoice.openAmount} ${invoice.currency}`);
    doc.font('Helvetica');
    if (invoice.memo) doc.moveDown().text(invoice.memo);
    doc.end();
  });
}

/** 10.0000 → 10, 12.5000 → 12.5 */
const trim = (v: string) => (v.includes('.') ? v.replace(/0+$/, '').replace(/\.$/, '') : v);
