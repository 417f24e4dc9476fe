import dgram from 'node:dgram';
import { isIP } from 'node:net';

/**
 * TEST DOUBLE of a name server: DNS over UDP on 127.0.0.1. Names in `records` are answered with their A and AAAA
 * addresses (none of a type: an empty answer); any other name is never answered (a name whose authoritative
 * server stays silent). `queries` records each question as `<type> <name>`.
 */
export interface DnsDouble {
  /** host:port, for Resolver.setServers */
  server: string;
  records: Map<string, string[]>;
  queries: string[];
  close(): Promise<void>;
}

const A = 1;
const AAAA = 28;

const addressBytes = (ip: string): Buffer => {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 255]));
};

export async function startDnsDouble(records: Record<string, string[]> = {}): Promise<DnsDouble> {
  const socket = dgram.createSocket('udp4');
  const double = { records: new Map(Object.entries(records)), queries: [] as string[] } as DnsDouble;
  socket.on('message', (msg, from) => {
    // the question: labels up to a zero length, then its type and class
    let at = 12;
    const labels: string[] = [];
    while (msg[at] !== 0) {
      labels.push(msg.subarray(at + 1, at + 1 + msg[at]).toString('latin1'));
      at += 1 + msg[at];
    }
    at += 1;
    const type = msg.readUInt16BE(at);
    const question = msg.subarray(12, at + 4);
    const name = labels.join('.').toLowerCase();
    double.queries.push(`${type === A ? 'A' : type === AAAA ? 'AAAA' : type} ${name}`);
    const known = double.records.get(name);
    if (!known) return; // never answered
    const answers = known.filter((ip) => isIP(ip) === (type === A ? 4 : type === AAAA ? 6 : -1)).map((ip) => {
      const rdata = addressBytes(ip);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // the question's name
      rr.writeUInt16BE(type, 2);
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(60, 6);
      rr.writeUInt16BE(rdata.length, 10);
      return Buffer.concat([rr, rdata]);
    });
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // the query's id
    header.writeUInt16BE(0x8180, 2); // a response, recursion desired and available, no error
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    socket.send(Buffer.concat([header, question, ...answers]), from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  double.server = `127.0.0.1:${socket.address().port}`;
  double.close = () => new Promise<void>((resolve) => socket.close(() => resolve()));
  return double;
}
